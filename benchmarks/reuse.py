"""Stage-cache reuse: a post-processing study with one shared stage cache vs a fresh cache per trial.

The configurations are those of ``studies/postprocess.yaml`` (every chain x every seed at
``--size default``; the first two chains, the first seed and tiny data at ``--size tiny``), or of the study
``--study`` names (``studies/segmentation.yaml``: stage 3, whose segmenters share the classifiers). Each
trial runs twice, back to back: once on the study's shared cache, once on an empty cache (what the
study would cost without the stage cache); only generated data is shared by both. Ratios:

- ``trainings_ratio``: trainings executed without / with the shared cache.
- ``wall_ratio``: total trial seconds without / with the shared cache.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from _common import device_name, fresh_cache, median, paired_ratio, parse_args, print_table, warm_data, write_result

from ablate import StageCache, run_trial
from ablate.study import load_study

MODES = ("shared", "fresh")
STUDY = Path(__file__).resolve().parent.parent / "studies" / "postprocess.yaml"
SEGMENT_TINY = {"segment.epochs": 1, "segment.batch_size": 8}  # the tiny overrides of a study with stage 3
TINY = {
    "configurations": 2,
    "seeds": 1,
    "overrides": {
        "data": {"name": "synthetic-smoke", "image_size": 32, "n_train": 16, "n_val": 4, "n_test": 8},
        "train.epochs": 1,
        "train.batch_size": 8,
    },
}


def trials(size: str, path: Path = STUDY) -> list[tuple[dict[str, Any], dict[str, Any], int]]:
    """(grid parameters, trial config, seed) of every trial the benchmark runs, in the runner's queue order."""
    study = load_study(path, check_configs=False)
    configurations, seeds = study.configurations(), study.seeds
    if size == "tiny":
        configurations, seeds = configurations[: TINY["configurations"]], seeds[: TINY["seeds"]]
    return [(params, study.trial_config(params, seed), seed) for params in configurations for seed in seeds]


def run(config: dict[str, Any], overrides: dict[str, Any], cache: StageCache) -> dict[str, float]:
    start = time.perf_counter()
    result = run_trial(config, overrides, cache=cache, progress=False)
    return {"seconds": time.perf_counter() - start, "trainings": result.trainings}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(
        "Trainings and wall time of a post-processing study with vs without the stage cache.",
        {"tiny": 1, "default": 1},  # the ratio is set by the trainings count; a default round takes long
        argv,
        lambda parser: parser.add_argument("--study", type=Path, default=STUDY, help=f"study file (default {STUDY})"),
    )
    staged = "segment" in load_study(args.study, check_configs=False).config
    overrides = {
        **(TINY["overrides"] if args.size == "tiny" else {}),
        **(SEGMENT_TINY if args.size == "tiny" and staged else {}),
        "device": device_name(),
        "threads": args.threads,
    }
    planned = trials(args.size, args.study)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="ablate-reuse-") as tmp:
        parent = Path(tmp)
        datasets = warm_data([config for _, config, _ in planned], parent / "warm", overrides)
        for round_ in range(args.repeats):
            shared = fresh_cache(parent, datasets)  # the study's cache, empty when the study starts
            rows = []
            for i, (params, config, seed) in enumerate(planned):
                row: dict[str, Any] = {"params": params, "seed": seed}
                for mode in MODES if (i + round_) % 2 == 0 else MODES[::-1]:  # ABBA against load drift
                    cache = shared if mode == "shared" else fresh_cache(parent, datasets)
                    row[mode] = run(config, overrides, cache)
                rows.append(row)
            rounds.append(rows)
    totals = {
        f"{mode}_{key}": [sum(row[mode][key] for row in rows) for rows in rounds]
        for mode in MODES
        for key in ("seconds", "trainings")
    }
    summary = {key: median(values) for key, values in totals.items()}
    summary["trainings_ratio"] = paired_ratio(totals["fresh_trainings"], totals["shared_trainings"])
    summary["wall_ratio"] = paired_ratio(totals["fresh_seconds"], totals["shared_seconds"])
    name = "reuse" if args.study == STUDY else f"reuse-{args.study.stem}"
    write_result(name, args, {"study": str(args.study), "overrides": overrides, "summary": summary, "rounds": rounds})
    print(f"{len(planned)} trials of {args.study.name} (size {args.size}), median of {args.repeats} round(s)")
    print_table(
        ["stage cache", "trainings", "trial seconds"],
        [
            ["shared (the study)", summary["shared_trainings"], summary["shared_seconds"]],
            ["fresh per trial", summary["fresh_trainings"], summary["fresh_seconds"]],
            ["ratio fresh / shared", summary["trainings_ratio"], summary["wall_ratio"]],
        ],
    )
    return summary


if __name__ == "__main__":
    main()
