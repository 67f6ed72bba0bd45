"""The SLURM recipe of ``examples/slurm/``, played on one machine: two array tasks joining one PostgreSQL study at
different times, the first preempted (SIGTERM) in a trial and requeued, then the report job."""

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

from tests.ablate.study.studies import HELD, SLOW_STEP

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "slurm"


def _running(postgres: str, count: int, timeout: float = 120) -> None:
    """Until ``count`` trials of the study run at once (each held by a task of its own)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            trials = optuna.load_study(study_name="slurm", storage=postgres).get_trials()
            if sum(t.state.name == "RUNNING" for t in trials) >= count:
                return
        except KeyError:  # not created yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"{count} trials never ran at once")


def test_array_tasks_preempted_and_requeued_run_every_pair_once_and_the_report_job_writes_it(
    postgres: str, tmp_path: Path, shared_cache
) -> None:
    (tmp_path / "hold_step.py").write_text(SLOW_STEP)
    hold = tmp_path / "hold"  # trials wait in post-processing while it exists: the preemption lands in a trial
    hold.touch()
    study = tmp_path / "slurm.yaml"
    grid = {"train.lr": [1e-3, 2e-3, 3e-3]}
    study.write_text(
        yaml.safe_dump({"name": "slurm", "config": HELD, "grid": grid, "seeds": 2, "plugins": ["hold_step"]})
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    requeued = tmp_path / "requeued"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {requeued}\n')  # SLURM's, as far as the recipe uses it
    (bin_dir / "scontrol").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STUDY": str(study),
        "ABLATE_STORAGE": postgres,
        "ABLATE": str(Path(sys.executable).parent / "ablate"),
        "ABLATE_CACHE": str(shared_cache.root),
        "ABLATE_TEST_HOLD": str(hold),
        "SLURM_ARRAY_JOB_ID": "77",
        "SLURM_JOB_ID": "78",
    }

    def task(index: int) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", str(RECIPE / "array.sbatch")],
            cwd=tmp_path,
            env={**env, "SLURM_ARRAY_TASK_ID": str(index)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    first = task(0)
    _running(postgres, 1)
    second = task(1)  # joins later
    _running(postgres, 2)
    first.send_signal(signal.SIGTERM)  # preemption: SLURM signals the batch shell
    log = first.communicate(timeout=120)[0]
    assert first.returncode == 130, log
    assert requeued.read_text().split() == ["requeue", "77_0"]
    tasks = [task(0), second]  # the requeued task joins the study where it stands
    hold.unlink()
    logs = [t.communicate(timeout=400)[0] for t in tasks]
    assert [t.returncode for t in tasks] == [0, 0], logs
    trials = optuna.load_study(study_name="slurm", storage=postgres).get_trials()
    done = Counter(t.user_attrs["identity"] for t in trials if t.state.name == "COMPLETE")
    assert len(done) == 6 and set(done.values()) == {1}  # every (configuration, seed) completed exactly once
    assert not (tmp_path / "reports" / "slurm" / "report.pdf").exists()  # no task wrote the report

    report = subprocess.run(
        ["bash", str(RECIPE / "report.sbatch")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stdout + report.stderr
    assert (tmp_path / "reports" / "slurm" / "report.pdf").is_file()
    assert "6 of 6 trials completed" in (tmp_path / "reports" / "slurm" / "summary.md").read_text()
