"""Worker processes: trials per hour of ``ablate run --workers N`` on a small grid study, N = 1, 2 (CPU) or
1, 2, 4, 8 (CUDA: every worker on the one GPU, where the CPU-sized default trial uses a sliver of it).

The study (written to a temporary folder) trains the default student alone over a learning-rate grid,
so every trial trains and no two trials share a model. Each run gets its own ``--out`` folder and an
empty stage cache sharing warm data; threads per worker are the CLI's (cores / workers). Measured:

- ``trials_per_hour``: completed trials / the command's wall time (process start-up and queueing included).
- ``trials_per_hour_span``: completed trials / (last trial end - first trial start) from the study's
  Optuna storage (start-up excluded).
- ``speedup_N``, ``speedup_span_N``: N workers / 1 worker, for both.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import yaml
from _common import (
    device_name,
    fresh_cache,
    interleave,
    median,
    paired_ratio,
    parse_args,
    print_table,
    thread_env,
    warm_data,
    write_result,
)

NAME = "bench-workers"
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "config": {
            "data": {"name": "synthetic-smoke", "image_size": 32, "n_train": 16, "n_val": 4, "n_test": 4},
            "train": {"epochs": 1, "batch_size": 8},
        },
        "grid": {"train.lr": [1.0e-3, 2.0e-3]},
        "seeds": 1,
    },
    "default": {
        "config": {"data": {"name": "synthetic-smoke"}},  # default training: trials as long as the lambda study's
        "grid": {"train.lr": [5.0e-4, 1.0e-3, 2.0e-3, 4.0e-3]},
        "seeds": 2,
    },
}
# worker counts per device; on CUDA the grid gets this many seeds, so that 8 workers have 4 trials each
COUNTS = {"cpu": "1,2", "cuda": "1,2,4,8"}
CUDA_SEEDS = 8


def run_study(study: Path, workers: int, parent: Path, datasets: Path, env: dict[str, str]) -> dict[str, float]:
    """One ``ablate run`` from scratch (new --out folder, empty model cache) and its throughput."""
    cache = fresh_cache(parent, datasets)
    out = cache.root.parent / f"{cache.root.name}-study"
    command = [sys.executable, "-m", "ablate", "run", str(study), "--workers", str(workers), "--out", str(out)]
    command += ["--no-report", "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(command, env={**env, "ABLATE_CACHE": str(cache.root)}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    trials = optuna.load_study(study_name=NAME, storage=f"sqlite:///{out}/study.db").get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
    )
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return {
        "seconds": seconds,
        "trials": len(trials),
        "span_s": span,
        "trials_per_hour": 3600 * len(trials) / seconds,
        "trials_per_hour_span": 3600 * len(trials) / span,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--counts", help=f"comma-separated worker counts (default {COUNTS})")

    args = parse_args("Trials per hour with N worker processes.", {"tiny": 1, "default": 3}, argv, options)
    device = device_name()
    counts = [int(n) for n in (args.counts or COUNTS[device]).split(",")]
    size = SIZES[args.size]
    seeds = CUDA_SEEDS if device == "cuda" and args.size == "default" else size["seeds"]
    study = {
        "name": NAME,
        "config": {**size["config"], "paradigm": {"name": "single", "network": "student"}, "device": device},
        "grid": size["grid"],
        "seeds": seeds,
    }
    with tempfile.TemporaryDirectory(prefix="ablate-workers-") as tmp:
        parent = Path(tmp)
        path = parent / f"{NAME}.yaml"
        path.write_text(yaml.safe_dump(study, sort_keys=False))
        datasets = warm_data([study["config"]], parent / "warm")
        env = thread_env(args)
        variants = {f"workers_{n}": partial(run_study, path, n, parent, datasets, env) for n in counts}
        runs = interleave(variants, args.repeats)
    summary = {f"{name}_{key}": median([r[key] for r in rs]) for name, rs in runs.items() for key in rs[0]}
    for n in counts[1:]:
        for suffix in ("", "_span"):
            key = f"trials_per_hour{suffix}"
            ratio = paired_ratio([r[key] for r in runs[f"workers_{n}"]], [r[key] for r in runs[f"workers_{counts[0]}"]])
            summary[f"speedup{suffix}_{n}"] = ratio
    summary["best_workers"] = max(counts, key=lambda n: summary[f"workers_{n}_trials_per_hour"])
    write_result("workers", args, {"study": study, "counts": counts, "summary": summary, "runs": runs})
    print(f"{runs[f'workers_{counts[0]}'][0]['trials']} trials per run, median of {args.repeats}")
    print_table(
        ["workers", "wall s", "trials/h (wall)", "trials/h (first start to last end)", "speedup (wall)", "(span)"],
        [
            [n, summary[f"workers_{n}_seconds"], summary[f"workers_{n}_trials_per_hour"]]
            + [summary[f"workers_{n}_trials_per_hour_span"]]
            + [summary.get(f"speedup_{n}", 1.0), summary.get(f"speedup_span_{n}", 1.0)]
            for n in counts
        ],
    )
    return summary


if __name__ == "__main__":
    main()
