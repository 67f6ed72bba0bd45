"""Helpers of the study tests: a tiny study file, its stored trials, the CLI in this process or in a child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import yaml

from ablate.cli import main

TINY = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 1, "batch_size": 16},
}


#: A config whose trials wait in their post-processing step while the ``hold`` fixture's file exists.
HELD = {**TINY, "paradigm": {"name": "single"}, "postprocess": ["test_hold", "threshold"]}


def write_study(folder: Path, name: str = "tiny", **search) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "config": search.pop("config", TINY), **search}))
    return path


def trials(out: Path, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out}/study.db").get_trials()


def completed_identities(out: Path, name: str = "tiny") -> Counter:
    return Counter(t.user_attrs["identity"] for t in trials(out, name) if t.state.name == "COMPLETE")


def run_cli(*args: str) -> int:
    return main(["run", *args, "--quiet", "--no-report"])


def _default_sigint() -> None:
    # a suite started in the background (`pytest &` in a script) ignores SIGINT, and children inherit that
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell's `ablate run ... &` starts it


def spawn(study: Path, out: Path, *extra: str, background: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ablate", "run", str(study), "--out", str(out), "--quiet", "--no-report", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
        preexec_fn=_ignore_sigint if background else _default_sigint,
    )


def wait_for_running(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until ``proc`` runs a trial of its own (not one a killed process left RUNNING)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if any(
                t.state.name == "RUNNING" and t.user_attrs.get("worker", "").endswith(f":{proc.pid}")
                for t in trials(out)
            ):
                return
        except Exception:  # storage not created yet
            pass
        time.sleep(0.2)


def trials_or_none(out: Path) -> list[optuna.trial.FrozenTrial]:
    try:
        return trials(out)
    except Exception:  # storage not created yet
        return []


NAN_DISTANCE = '''
import torch
from ablate import DISTANCES

@DISTANCES.register("nan_distance")
def nan_distance():
    """Always NaN (tests divergence handling)."""
    return lambda a, b: torch.full(a.shape[:1], float("nan"))
'''


SLOW_STEP = """
import os, time
from ablate import POSTPROCESSORS

@POSTPROCESSORS.register("test_hold")
def test_hold():
    \"\"\"Holds the trial while the file named by $ABLATE_TEST_HOLD exists.\"\"\"
    def step(state, ctx):
        while os.path.exists(os.environ.get("ABLATE_TEST_HOLD", "")):
            time.sleep(0.05)
        return state
    return step
"""


def wait_for_trials_running(out: Path, count: int, timeout: float = 120) -> None:
    """Until ``count`` trials of the study in ``out`` run at once (each held by a worker of its own)."""
    deadline = time.time() + timeout
    while time.time() < deadline and sum(t.state.name == "RUNNING" for t in trials_or_none(out)) < count:
        time.sleep(0.2)
