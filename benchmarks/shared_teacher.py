"""Shared teacher work: the lambda study with the frozen teacher's outputs cached once vs recomputed per student.

The trials are those of ``studies/lambda.yaml`` (its first ``--seeds`` seeds; at ``--size tiny`` two
configurations on tiny data). Each mode runs them all, in the runner's order, on its own stage cache that
starts empty but for the generated data: ``cached`` at the defaults (``frozen_outputs_mb: 1024``: every student
of one seed reads the teacher's class maps from the stage cache) and ``live`` with ``frozen_outputs_mb: 0`` (the
teacher runs on every batch of every student). The two modes alternate trial by trial (ABBA), so load drift
hits both alike. Ratios:

- ``student_step_ratio``: median seconds of a student's training live / cached (the same steps in both, so
  the ratio of their step times), over the teacher-student trials whose teacher came from the cache (their
  ``train`` stage is the student's training alone);
- ``wall_ratio``: the study's trial seconds live / cached (teacher trainings and evaluation included).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from _common import device_name, fresh_cache, median, parse_args, print_table, warm_data, write_result

from ablate import run_trial
from ablate.study import load_study

MODES = {"cached": {}, "live": {"frozen_outputs_mb": 0}}
STUDY = Path(__file__).resolve().parent.parent / "studies" / "lambda.yaml"
TINY = {
    "configurations": 2,
    "overrides": {
        "data": {"name": "synthetic-smoke", "image_size": 32, "n_train": 32, "n_val": 4, "n_test": 8},
        "train.epochs": 2,
        "train.batch_size": 8,
    },
}


def trials(size: str, seeds: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(grid parameters, trial config) of every trial the benchmark runs, in the runner's queue order."""
    study = load_study(STUDY, check_configs=False)
    configurations = study.configurations()[: TINY["configurations"] if size == "tiny" else None]
    return [(params, study.trial_config(params, seed)) for seed in study.seeds[:seeds] for params in configurations]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    # --repeats: seeds of the study to run (a default seed takes about 4 minutes per mode on 2 CPU cores)
    args = parse_args("The lambda study with vs without the teacher's cached outputs.", {"tiny": 1, "default": 1}, argv)
    overrides = {**(TINY["overrides"] if args.size == "tiny" else {}), "device": device_name(), "threads": args.threads}
    planned = trials(args.size, args.repeats)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ablate-teacher-") as tmp:
        parent = Path(tmp)
        datasets = warm_data([config for _, config in planned], parent / "warm", overrides)
        caches = {mode: fresh_cache(parent, datasets) for mode in MODES}
        for i, (params, config) in enumerate(planned):
            row: dict[str, Any] = {"params": params, "seed": config["seed"]}
            for mode in list(MODES) if i % 2 == 0 else list(MODES)[::-1]:
                start = time.perf_counter()
                result = run_trial(config, {**overrides, **MODES[mode]}, cache=caches[mode], progress=False)
                row[mode] = {
                    "seconds": time.perf_counter() - start,
                    "train_s": result.timings["train"],
                    "trainings": result.trainings,
                    "student_only": [h["tag"] for h in result.history] == ["student"] * len(result.history),
                    "smoke_iou": result.metrics["smoke_iou"],
                }
            rows.append(row)
    students = [r for r in rows if r["cached"]["trainings"] == 1 and r["cached"]["student_only"]]
    summary: dict[str, Any] = {}
    for mode in MODES:
        summary[f"{mode}_seconds"] = sum(r[mode]["seconds"] for r in rows)
        summary[f"{mode}_student_train_s"] = median([r[mode]["train_s"] for r in students])
    summary["student_step_ratio"] = median([r["live"]["train_s"] / r["cached"]["train_s"] for r in students])
    summary["wall_ratio"] = summary["live_seconds"] / summary["cached_seconds"]
    summary["same_smoke_iou"] = all(r["cached"]["smoke_iou"] == r["live"]["smoke_iou"] for r in rows)
    payload = {"study": str(STUDY), "overrides": overrides, "summary": summary, "rows": rows}
    write_result("shared_teacher", args, payload)
    print(f"{len(planned)} trials of {STUDY.name} (size {args.size}, {args.repeats} seed(s)), {len(students)} students")
    print_table(
        ["teacher outputs", "student training s", "study trial seconds"],
        [
            ["cached once per seed", summary["cached_student_train_s"], summary["cached_seconds"]],
            ["recomputed per student", summary["live_student_train_s"], summary["live_seconds"]],
            ["ratio live / cached", summary["student_step_ratio"], summary["wall_ratio"]],
        ],
    )
    print(f"same smoke_iou in both modes: {summary['same_smoke_iou']}")
    return summary


if __name__ == "__main__":
    main()
