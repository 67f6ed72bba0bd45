"""Start-up: time from launching ``ablate run`` (and ``ablate trial``) to the first training step.

``ablate run`` runs a one-configuration study file (new study folder: it opens a fresh Optuna
storage, validates, queues and claims the trial) and ``ablate trial`` the same configuration, both
on warm data with an empty model cache, so they train; the clock stops when the training loop's
first progress bar appears on stderr (``<role> epoch 1/``), which the trainer draws right before its
first batch; the process is then stopped. ``ablate status`` is timed from launch to exit on a study of
the same configuration with its trial queued (a read-only command: it builds no network). Separately, a fresh
interpreter times ``import torch``, ``import ablate`` (torch included) and ``ablate.load_components()``. Ratios:

- ``import_share``: (import ablate + load_components) / time to the first step of ``ablate run``.
- ``components_share``: load_components / time to the first step of ``ablate run``.
- ``run_vs_trial``: ``ablate run`` / ``ablate trial`` time to the first step (study set-up's cost).
- ``status_vs_run``: ``ablate status`` launch to exit / ``ablate run`` launch to the first step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

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

from ablate import load_components
from ablate.study import StudyRunner, load_study

MARKER = b" epoch 1/"
DATA = {
    "tiny": {"name": "synthetic-smoke", "image_size": 32, "n_train": 16, "n_val": 4, "n_test": 4},
    "default": {"name": "synthetic-smoke"},
}
IMPORTS = """
import json, time
start = time.perf_counter()
import torch
torch_done = time.perf_counter()
import ablate
ablate_done = time.perf_counter()
ablate.load_components()
print(json.dumps({"import_torch": torch_done - start, "import_ablate": ablate_done - start,
                  "load_components": time.perf_counter() - ablate_done}))
"""


def trial_config(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": data,
        "paradigm": {"name": "single", "network": "student"},
        "train": {"epochs": 1},
        "device": device_name(),
    }


def first_step(verb: str, data: dict[str, Any], parent: Path, datasets: Path, env: dict[str, str]) -> float:
    """Seconds from launching ``ablate <verb>`` (``run`` or ``trial``) to its first training progress bar."""
    cache = fresh_cache(parent, datasets)
    folder = cache.root.parent / f"{cache.root.name}-{verb}"  # new each launch: `run` starts a study, not resumes
    folder.mkdir()
    config = trial_config(data)
    if verb == "run":
        path = folder / "startup.yaml"
        path.write_text(yaml.safe_dump({"name": "startup", "config": config}))
        command = [sys.executable, "-m", "ablate", "run", str(path), "--out", str(folder), "--no-report"]
    else:
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "ablate", "trial", str(path)]
    env = {**env, "ABLATE_CACHE": str(cache.root), "PYTHONUNBUFFERED": "1"}
    env.pop("TQDM_DISABLE", None)  # the progress bar is the signal
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = b""
    try:
        while MARKER not in seen:
            chunk = process.stderr.read1(4096)
            if not chunk:
                raise RuntimeError(f"{' '.join(command)} ended before training started:\n{seen.decode()[-2000:]}")
            seen = seen[-4096:] + chunk
        return time.perf_counter() - start
    finally:
        process.kill()  # the rest of the trial is not measured
        process.wait()
        process.stderr.close()


def status_launch(data: dict[str, Any], parent: Path, env: dict[str, str]) -> float:
    """Seconds from launching ``ablate status`` to its exit, on a study holding one queued trial."""
    folder = Path(tempfile.mkdtemp(prefix="status-", dir=parent))
    path = folder / "startup.yaml"
    path.write_text(yaml.safe_dump({"name": "startup", "config": trial_config(data)}))
    runner = StudyRunner(load_study(path), out=folder, quiet=True)
    runner.open()
    runner.enqueue_missing()
    command = [sys.executable, "-m", "ablate", "status", str(path), "--out", str(folder)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or "0/1" not in done.stdout:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-1000:]}{done.stderr[-1000:]}")
    return seconds


def imports(env: dict[str, str]) -> dict[str, float]:
    """Import times inside a fresh interpreter, and its wall time with interpreter start-up."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", IMPORTS], env=env, capture_output=True, text=True, check=True)
    return {**json.loads(done.stdout.splitlines()[-1]), "interpreter_wall": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args("Time to the first training step and import times.", {"tiny": 1, "default": 5}, argv)
    data = DATA[args.size]
    env = thread_env(args)
    load_components()  # the status measure's study file is validated in this process
    with tempfile.TemporaryDirectory(prefix="ablate-startup-") as tmp:
        parent = Path(tmp)
        datasets = warm_data([{"data": data}], parent / "warm")
        runs = interleave(
            {
                "run_first_step": partial(first_step, "run", data, parent, datasets, env),
                "trial_first_step": partial(first_step, "trial", data, parent, datasets, env),
                "status": partial(status_launch, data, parent, env),
                "imports": partial(imports, env),
            },
            args.repeats,
        )
    steps, imported = runs["run_first_step"], runs["imports"]
    summary = {
        "run_first_step_s": median(steps),
        "trial_first_step_s": median(runs["trial_first_step"]),
        **{f"{key}_s": median([r[key] for r in imported]) for key in imported[0]},
        "import_share": paired_ratio([r["import_ablate"] + r["load_components"] for r in imported], steps),
        "components_share": paired_ratio([r["load_components"] for r in imported], steps),
        "run_vs_trial": paired_ratio(steps, runs["trial_first_step"]),
        "status_s": median(runs["status"]),
        "status_vs_run": paired_ratio(runs["status"], steps),
    }
    write_result("startup", args, {"data": data, "summary": summary, "runs": runs})
    print_table(
        ["measure (median)", "seconds", "ratio to `ablate run` launch -> first step"],
        [
            ["`ablate run` launch -> first training step", summary["run_first_step_s"], 1.0],
            ["`ablate trial` launch -> first training step", summary["trial_first_step_s"], None],
            ["`ablate run` / `ablate trial` (paired)", None, summary["run_vs_trial"]],
            ["`ablate status` launch -> exit (one queued trial)", summary["status_s"], summary["status_vs_run"]],
            ["python -c (imports + interpreter)", summary["interpreter_wall_s"], None],
            ["import torch", summary["import_torch_s"], None],
            ["import ablate (torch included)", summary["import_ablate_s"], None],
            ["ablate.load_components()", summary["load_components_s"], summary["components_share"]],
            ["import ablate + load_components", None, summary["import_share"]],
        ],
    )
    return summary


if __name__ == "__main__":
    main()
