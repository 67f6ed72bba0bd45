"""Workers: stale trials of dead workers, --workers children and their parent, several processes on one study."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna

from tests.ablate.study.studies import (
    HELD,
    TINY,
    completed_identities,
    spawn,
    trials,
    wait_for_trials_running,
    write_study,
)


def test_a_running_trial_is_stale_once_its_worker_process_is_gone_or_its_heartbeat_stops():
    from ablate.study import STALE_AFTER, WORKER, stale_reason

    def running(worker: str, beat_age: float) -> optuna.trial.FrozenTrial:
        attrs = {"worker": worker, "heartbeat": time.time() - beat_age}
        return optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, user_attrs=attrs)

    gone = subprocess.Popen(["true"])
    gone.wait()
    host = WORKER.rpartition(":")[0]
    assert stale_reason(running(WORKER, 0)) is None
    assert stale_reason(running(f"{host}:{gone.pid}", 0)) == f"worker {host}:{gone.pid} stopped"
    assert stale_reason(running("elsewhere:7", STALE_AFTER - 10)) is None  # another host's pid cannot be looked up
    assert stale_reason(running("elsewhere:7", STALE_AFTER + 10)).startswith("no heartbeat from worker elsewhere:7 for")


def test_sigterm_to_the_parent_of_workers_run_in_the_background_stops_every_worker(tmp_path, hold):
    """``kill -TERM`` of ``ablate run --workers 2 &`` alone (no terminal signalling the group) stops both workers.

    In the background the workers inherit an ignored SIGINT: the parent passed SIGINT on, and they ran to the end.
    A Ctrl-C or ``kill -INT`` of the parent takes the same path (its KeyboardInterrupt)."""
    study = write_study(tmp_path, config=HELD, grid={"train.lr": [1e-3, 2e-3, 3e-3, 4e-3]}, plugins=["hold_step"])
    out = tmp_path / "out"  # both workers' first trials wait in their post-processing step
    proc = spawn(study, out, "--workers", "2", background=True)
    wait_for_trials_running(out, 2)
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=90) == 130
    finally:
        hold.unlink()  # a worker that missed the signal finishes, so the suite does not hang
    states = Counter(t.state.name for t in trials(out))
    assert states == {"FAIL": 2, "WAITING": 2}, proc.stdout.read()  # the two unstarted trials stay queued


def test_workers_stop_when_their_parent_is_killed(tmp_path, hold):
    """``kill -9`` of ``ablate run --workers 2`` (or of its process group): the workers, in sessions of their own,
    ran the rest of the study under pid 1, and no report was written."""
    study = write_study(tmp_path, config=HELD, grid={"train.lr": [1e-3, 2e-3, 3e-3, 4e-3]}, plugins=["hold_step"])
    out = tmp_path / "out"  # both workers' first trials wait in their post-processing step
    proc = spawn(study, out, "--workers", "2")
    try:
        wait_for_trials_running(out, 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 60
        while time.time() < deadline and any(t.state.name == "RUNNING" for t in trials(out)):
            time.sleep(0.2)
        time.sleep(2)  # a worker still alive would claim a waiting trial by now
        states = Counter(t.state.name for t in trials(out))
        assert states == {"FAIL": 2, "WAITING": 2}  # not the parent's output: live workers would hold its pipe open
        assert {t.user_attrs["error"] for t in trials(out) if t.state.name == "FAIL"} == {
            "interrupted (Ctrl-C or SIGTERM); it runs again on resume"
        }
    finally:
        hold.unlink()  # a worker that outlived its parent finishes, so the suite does not hang


def test_workers_write_their_epoch_lines_to_a_log_each_line_naming_its_worker(tmp_path):
    config = {**TINY, "paradigm": {"name": "single"}}
    study = write_study(tmp_path, config=config, grid={"train.lr": [1e-3, 2e-3, 3e-3]})
    proc = subprocess.run(
        [sys.executable, "-m", "ablate", "run", str(study), "--out", str(tmp_path / "out"), "--workers", "2",
         "--no-report"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    epochs = [line for line in proc.stderr.splitlines() if "epoch" in line]  # stderr is a pipe here, as a log
    assert len(epochs) == 3  # one student epoch per trial
    assert all(re.fullmatch(r"\[worker [12]/2\] student epoch 1/1: loss .*", line) for line in epochs), epochs
    claims = [line for line in proc.stdout.splitlines() if re.search(r"\] trial \d+: train\.lr=", line)]
    assert len(claims) == 3 and all(re.match(r"\[worker [12]/2\] \[\d/3\] trial", line) for line in claims), claims
    # each worker counted the pairs the other one started before its own (both said [1/3])
    assert sorted(re.search(r"\[(\d)/3\]", line)[1] for line in claims) == ["1", "2", "3"], claims


def test_four_workers_and_two_more_processes_run_each_trial_exactly_once(tmp_path, monkeypatch, shared_cache):
    """The stress test of the README's promise: 4 ``--workers`` children and 2 independent processes start together.

    The configurations differ only in their threshold, so they share one trained model: after the first training
    every trial is a cache hit that finishes in well under a second, and claims come fast and close together,
    where races happen.
    """
    monkeypatch.setenv("ABLATE_CACHE", str(shared_cache.root))
    config = {**TINY, "paradigm": {"name": "single"}, "postprocess": ["threshold"]}
    values = [round(0.05 * k, 2) for k in range(1, 13)]
    study = write_study(tmp_path, config=config, grid={"postprocess.0.value": values}, seeds=1)
    out = tmp_path / "out"
    procs = [spawn(study, out, "--workers", "4"), spawn(study, out), spawn(study, out)]
    logs = [proc.communicate(timeout=400)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], logs
    assert "Traceback" not in "".join(logs) and "database is locked" not in "".join(logs)
    stored = trials(out)
    assert Counter(t.state.name for t in stored) == {"COMPLETE": 12}  # queued once, nothing failed or pruned
    assert set(completed_identities(out).values()) == {1} and len(completed_identities(out)) == 12
    # which process got how many trials depends on start-up times (not asserted); each names the one that ran it
    assert all(t.user_attrs["worker"].rpartition(":")[2].isdigit() for t in stored)
