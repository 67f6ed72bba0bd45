"""Study runs through the CLI: resume, SIGKILL, Ctrl-C, parallel workers, failures, stage cache reuse."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml

from ablate.cli import main

TINY = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 1, "batch_size": 16},
}


def write_study(folder: Path, name: str = "tiny", **search) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "config": search.pop("config", TINY), **search}))
    return path


def trials(out: Path, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out}/study.db").get_trials()


def completed_identities(out: Path, name: str = "tiny") -> Counter:
    return Counter(t.user_attrs["identity"] for t in trials(out, name) if t.state.name == "COMPLETE")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))


def run_cli(*args: str) -> int:
    return main(["run", *args, "--quiet", "--no-report"])


def test_grid_runs_each_pair_once_and_resume_skips_them(tmp_path, capsys):
    study = write_study(tmp_path, grid={"transfer.lambda": [0.5, 1.0]}, seeds=2)
    out = tmp_path / "out"
    assert run_cli(str(study), "--out", str(out)) == 0
    done = completed_identities(out)
    assert len(done) == 4 and set(done.values()) == {1}
    # the teacher is shared by both lambdas of a seed: 2 seeds x (teacher + 2 students) = 6 trainings
    assert sum(t.user_attrs["trainings"] for t in trials(out)) == 6
    assert run_cli(str(study), "--out", str(out)) == 0
    assert len(trials(out)) == 4  # nothing re-run
    assert "4/4 done, 0 queued" in capsys.readouterr().out


def test_stored_trials_carry_each_metric_the_curves_and_load_into_pandas(tmp_path):
    import ablate

    study = write_study(
        tmp_path,
        config={**TINY, "paradigm": {"name": "single"}, "train": {"epochs": 2, "batch_size": 16}},
        grid={"train.lr": [1e-3, 2e-3]},
    )
    out = tmp_path / "out"
    assert run_cli(str(study), "--out", str(out)) == 0
    for trial in trials(out):
        attrs = trial.user_attrs
        assert attrs["metric.smoke_iou"] == attrs["metrics"]["smoke_iou"] == trial.value  # sortable in the dashboard
        assert [(h["tag"], h["epoch"]) for h in attrs["history"]] == [("student", 1), ("student", 2)]
        assert all(h["lr"] >= 0 and "loss" in h for h in attrs["history"])
        assert trial.intermediate_values == {i: h["loss"] for i, h in enumerate(attrs["history"])}
    frame = ablate.load_results(study, out=out)
    assert len(frame) == 2 and set(frame["state"]) == {"COMPLETE"} and sorted(frame["train.lr"]) == [1e-3, 2e-3]
    assert list(frame["metric.smoke_iou"]) == [t.value for t in sorted(trials(out), key=lambda t: t.number)]
    assert {"seed", "configuration", "metric.accuracy"} <= set(frame.columns) and "per_image_iou" not in frame


def test_changed_search_space_is_refused_and_new_starts_beside(tmp_path, capsys):
    out = tmp_path / "out"
    study = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"transfer.lambda": [1.0]})
    assert run_cli(str(study), "--out", str(out)) == 0
    write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"transfer.lambda": [1.0, 0.5]})
    assert run_cli(str(study), "--out", str(out)) == 2
    assert "search space" in capsys.readouterr().err
    gallery = (out / "artifacts" / "trial-0.npz").read_bytes()
    capsys.readouterr()
    assert run_cli(str(study), "--out", str(out), "--new") == 0
    assert "tiny.2: 2/2 trials completed" in capsys.readouterr().out
    assert len(completed_identities(out, "tiny.2")) == 2
    assert len(completed_identities(out)) == 1  # the old study is kept
    # and so are its gallery images: the new study's trials, numbered from 0 again, have their own files
    assert (out / "artifacts" / "trial-0.npz").read_bytes() == gallery
    stored = sorted(p.name for p in (out / "artifacts").iterdir())
    assert stored == ["tiny.2-trial-0.npz", "tiny.2-trial-1.npz", "trial-0.npz"]
    # the file changed back opens its own study again (it was refused: the newest, tiny.2, has another grid)
    write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"transfer.lambda": [1.0]})
    capsys.readouterr()
    assert run_cli(str(study), "--out", str(out)) == 0
    assert "1/1 done, 0 queued" in capsys.readouterr().out
    assert len(trials(out)) == 1 and len(trials(out, "tiny.2")) == 2
    write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"transfer.lambda": [0.3]})
    assert run_cli(str(study), "--out", str(out)) == 2  # a third search space matches neither: refused
    assert "since study 'tiny.2'" in capsys.readouterr().err


def test_a_second_file_with_a_studys_name_is_told_which_file_owns_the_study(tmp_path, capsys):
    out = tmp_path / "out"
    owner = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"train.lr": [1e-3]})
    assert run_cli(str(owner), "--out", str(out)) == 0
    other = tmp_path / "other.yaml"
    other.write_text(owner.read_text().replace("0.001", "0.002"))  # the same `name: tiny`, another grid
    capsys.readouterr()
    assert run_cli(str(other), "--out", str(out)) == 2
    assert capsys.readouterr().err.strip() == (
        f"ablate: error: {other}: study 'tiny' in sqlite:///{out}/study.db was created from {owner}, another file "
        f"with `name: tiny` and another search space; give {other} a name of its own, or run "
        f"`ablate run {other} --new` to start study 'tiny.2' beside it"
    )


NAN_DISTANCE = '''
import torch
from ablate import DISTANCES

@DISTANCES.register("nan_distance")
def nan_distance():
    """Always NaN (tests divergence handling)."""
    return lambda a, b: torch.full(a.shape[:1], float("nan"))
'''


def test_failed_trial_keeps_its_error_and_the_study_goes_on(tmp_path, monkeypatch, capsys):
    (tmp_path / "nan_plugin.py").write_text(NAN_DISTANCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    study = write_study(tmp_path, grid={"transfer.distance": ["cosine", "nan_distance"]}, plugins=["nan_plugin"])
    out = tmp_path / "out"
    assert run_cli(str(study), "--out", str(out), "--retries", "1") == 1
    states = Counter((t.params["transfer.distance"], t.state.name) for t in trials(out))
    assert states == {("cosine", "COMPLETE"): 1, ("nan_distance", "FAIL"): 2}  # one retry
    failed = [t for t in trials(out) if t.state.name == "FAIL"]
    assert all(t.user_attrs["error"] == "student diverged at epoch 1, step 1 (loss nan)" for t in failed)
    captured = capsys.readouterr()
    assert "FAILED trial" in captured.out and "1/2 trials completed" in captured.err
    assert f"see `ablate status {study} --out {out}`" in captured.err  # a command that finds this study


def test_the_progress_counter_moves_on_after_a_failed_trial(tmp_path, monkeypatch, capsys):
    (tmp_path / "nan_plugin.py").write_text(NAN_DISTANCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    study = write_study(tmp_path, grid={"transfer.distance": ["nan_distance", "cosine"]}, plugins=["nan_plugin"])
    assert run_cli(str(study), "--out", str(tmp_path / "out"), "--retries", "1", "--no-report") == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    # after the failed first pair the next one is the second (it was shown as 1 of 2 again); the retry, queued last,
    # is the second pair to settle after the other one completed
    assert [line.split(":")[0] for line in lines] == ["[1/2] trial 0", "[2/2] trial 1", "[2/2] trial 2"]
    assert "nan_distance" in lines[0] and "cosine" in lines[1] and "nan_distance" in lines[2]


def test_a_resume_counts_the_failed_pairs_it_runs_again_once_each(tmp_path, monkeypatch, capsys):
    (tmp_path / "nan_plugin.py").write_text(NAN_DISTANCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    grid = {"transfer.distance": ["nan_distance", "cosine"]}
    study = write_study(tmp_path, grid=grid, seeds=2, plugins=["nan_plugin"])
    for _ in range(2):
        assert run_cli(str(study), "--out", str(tmp_path / "out")) == 1
    resumed = capsys.readouterr().out.split("study 'tiny'")[-1].splitlines()
    assert "2/4 done, 2 queued" in resumed[1]
    # both failed pairs were counted before either ran again: [4/4] twice
    assert [line.split()[0] for line in resumed if line.startswith("[")] == ["[3/4]", "[4/4]"]


def _default_sigint() -> None:
    # a suite started in the background (`pytest &` in a script) ignores SIGINT, and children inherit that
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell's `ablate run ... &` starts it


def _spawn(study: Path, out: Path, *extra: str, background: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ablate", "run", str(study), "--out", str(out), "--quiet", "--no-report", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
        preexec_fn=_ignore_sigint if background else _default_sigint,
    )


def _wait_for_running(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
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


def test_sigkill_at_any_moment_loses_at_most_the_trial_in_progress(tmp_path, capsys):
    # trials of a few seconds (80 steps), so the second kill lands inside one
    config = {**TINY, "paradigm": {"name": "single"}, "train": {"epochs": 20, "batch_size": 8}}
    study = write_study(tmp_path, config=config, grid={"train.lr": [1e-3, 2e-3, 3e-3]}, seeds=1)
    out = tmp_path / "out"
    for delay in (0.0, 0.5):  # kill while a trial of the new process runs, at two different points of it
        proc = _spawn(study, out)
        _wait_for_running(out, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert any(t.state.name == "RUNNING" for t in trials(out))  # left behind by the killed process
    capsys.readouterr()
    assert main(["status", str(study), "--out", str(out)]) == 0
    shown = capsys.readouterr().out  # it showed the killed run's trial RUNNING, as if it still ran
    assert re.search(r"RUNNING\s.*stale: worker \S+:\d+ stopped; the next ablate run runs it again", shown), shown
    assert "RUNNING 1 (1 stale: no live worker; the next ablate run runs them again)" in shown
    proc = _spawn(study, out)
    assert proc.wait(timeout=300) == 0, proc.stdout.read()
    done = completed_identities(out)
    assert len(done) == 3 and set(done.values()) == {1}
    assert not [t for t in trials(out) if t.state.name in ("RUNNING", "WAITING")]
    interrupted = [t for t in trials(out) if t.state.name == "FAIL"]
    assert interrupted and all("interrupted: worker" in t.user_attrs["error"] for t in interrupted)


def test_a_running_trial_is_stale_once_its_worker_process_is_gone_or_its_heartbeat_stops():
    from ablate._runner import STALE_AFTER, WORKER, stale_reason

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


def test_ctrl_c_marks_the_trial_and_resume_reruns_it(tmp_path, monkeypatch):
    (tmp_path / "hold_step.py").write_text(SLOW_STEP)  # beside the study file: importable from there
    config = {**TINY, "paradigm": {"name": "single"}, "postprocess": ["test_hold", "threshold"]}
    study = write_study(tmp_path, config=config, grid={"train.lr": [1e-3, 2e-3]}, plugins=["hold_step"])
    out, hold = tmp_path / "out", tmp_path / "hold"
    hold.touch()  # the first trial stays in its post-processing step until the interrupt
    monkeypatch.setenv("ABLATE_TEST_HOLD", str(hold))
    proc = _spawn(study, out)
    _wait_for_running(out, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert [t.user_attrs["error"] for t in trials(out) if t.state.name == "FAIL"] == [
        "interrupted (Ctrl-C or SIGTERM); it runs again on resume"
    ]
    hold.unlink()
    assert _spawn(study, out).wait(timeout=300) == 0
    assert len(completed_identities(out)) == 2


def test_sigterm_to_the_parent_of_workers_run_in_the_background_stops_every_worker(tmp_path, monkeypatch):
    """``kill -TERM`` of ``ablate run --workers 2 &`` alone (no terminal signalling the group) stops both workers.

    In the background the workers inherit an ignored SIGINT: the parent passed SIGINT on, and they ran to the end.
    A Ctrl-C or ``kill -INT`` of the parent takes the same path (its KeyboardInterrupt)."""
    (tmp_path / "hold_step.py").write_text(SLOW_STEP)
    config = {**TINY, "paradigm": {"name": "single"}, "postprocess": ["test_hold", "threshold"]}
    study = write_study(tmp_path, config=config, grid={"train.lr": [1e-3, 2e-3, 3e-3, 4e-3]}, plugins=["hold_step"])
    out, hold = tmp_path / "out", tmp_path / "hold"
    hold.touch()  # both workers' first trials wait in their post-processing step
    monkeypatch.setenv("ABLATE_TEST_HOLD", str(hold))
    proc = _spawn(study, out, "--workers", "2", background=True)
    deadline = time.time() + 120
    while time.time() < deadline and sum(t.state.name == "RUNNING" for t in _trials_or_none(out)) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=90) == 130
    finally:
        hold.unlink()  # a worker that missed the signal finishes, so the suite does not hang
    states = Counter(t.state.name for t in trials(out))
    assert states == {"FAIL": 2, "WAITING": 2}, proc.stdout.read()  # the two unstarted trials stay queued


def test_workers_stop_when_their_parent_is_killed(tmp_path, monkeypatch):
    """``kill -9`` of ``ablate run --workers 2`` (or of its process group): the workers, in sessions of their own,
    ran the rest of the study under pid 1, and no report was written."""
    (tmp_path / "hold_step.py").write_text(SLOW_STEP)
    config = {**TINY, "paradigm": {"name": "single"}, "postprocess": ["test_hold", "threshold"]}
    study = write_study(tmp_path, config=config, grid={"train.lr": [1e-3, 2e-3, 3e-3, 4e-3]}, plugins=["hold_step"])
    out, hold = tmp_path / "out", tmp_path / "hold"
    hold.touch()  # both workers' first trials wait in their post-processing step
    monkeypatch.setenv("ABLATE_TEST_HOLD", str(hold))
    proc = _spawn(study, out, "--workers", "2")
    try:
        deadline = time.time() + 120
        while time.time() < deadline and sum(t.state.name == "RUNNING" for t in _trials_or_none(out)) < 2:
            time.sleep(0.2)
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


def _trials_or_none(out: Path) -> list[optuna.trial.FrozenTrial]:
    try:
        return trials(out)
    except Exception:  # storage not created yet
        return []


def test_sigterm_stops_the_run_as_ctrl_c_does(tmp_path, monkeypatch):
    # a cluster's time limit sends SIGTERM: the trial stayed RUNNING until the stale-worker timeout
    from ablate import _runner

    study = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"train.lr": [1e-3, 2e-3]})
    out = tmp_path / "out"

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises in here

    monkeypatch.setattr(_runner, "run_trial", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert run_cli(str(study), "--out", str(out)) == 130
    assert signal.getsignal(signal.SIGTERM) is before  # the run's handler is not left behind
    states = Counter(t.state.name for t in trials(out))
    assert states == {"FAIL": 1, "WAITING": 1}
    assert [t.user_attrs["error"] for t in trials(out) if t.state.name == "FAIL"] == [
        "interrupted (Ctrl-C or SIGTERM); it runs again on resume"
    ]


@pytest.mark.parametrize("moment", ["_is_duplicate", "_suggest", "_record"])
def test_ctrl_c_between_claim_and_result_marks_the_claimed_trial(tmp_path, monkeypatch, moment):
    from ablate import _runner

    study = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"train.lr": [1e-3, 2e-3]})
    out = tmp_path / "out"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_runner.StudyRunner, moment, interrupt)  # claimed, not yet told
    assert run_cli(str(study), "--out", str(out)) == 130
    states = Counter(t.state.name for t in trials(out))
    assert states == {"FAIL": 1, "WAITING": 1}
    assert [t.user_attrs["error"] for t in trials(out) if t.state.name == "FAIL"] == [
        "interrupted (Ctrl-C or SIGTERM); it runs again on resume"
    ]


def test_an_error_of_the_harness_itself_marks_the_claimed_trial_and_resume_reruns_it(tmp_path, monkeypatch, capsys):
    """A full disk while the gallery is written left the trial RUNNING until the stale-worker timeout."""
    from ablate import _runner

    study = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"train.lr": [1e-3, 2e-3]})
    out = tmp_path / "out"
    record = _runner.StudyRunner._record

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_runner.StudyRunner, "_record", disk_full)
    assert run_cli(str(study), "--out", str(out)) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert Counter(t.state.name for t in trials(out)) == {"FAIL": 1, "WAITING": 1}
    assert [t.user_attrs["error"] for t in trials(out) if t.state.name == "FAIL"] == [
        "stopped by OSError: [Errno 28] No space left on device; it runs again on resume"
    ]
    monkeypatch.setattr(_runner.StudyRunner, "_record", record)
    assert run_cli(str(study), "--out", str(out)) == 0
    assert sum(completed_identities(out).values()) == 2


@pytest.mark.parametrize("round_", range(2))
def test_four_workers_and_two_more_processes_run_each_trial_exactly_once(tmp_path, monkeypatch, shared_cache, round_):
    """The stress test of the README's promise: 4 ``--workers`` children and 2 independent processes start together.

    The rounds share the session's stage cache, so from the second round on most trials are cache hits
    that finish in well under a second: claims then come fast and close together, where races happen.
    """
    monkeypatch.setenv("ABLATE_CACHE", str(shared_cache.root))
    config = {**TINY, "paradigm": {"name": "single"}}
    lrs = [round(1e-3 * k, 4) for k in range(1, 13)]
    study = write_study(tmp_path, config=config, grid={"train.lr": lrs}, seeds=1)
    out = tmp_path / "out"
    procs = [_spawn(study, out, "--workers", "4"), _spawn(study, out), _spawn(study, out)]
    logs = [proc.communicate(timeout=400)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], logs
    assert "Traceback" not in "".join(logs) and "database is locked" not in "".join(logs)
    stored = trials(out)
    assert Counter(t.state.name for t in stored) == {"COMPLETE": 12}  # queued once, nothing failed or pruned
    assert set(completed_identities(out).values()) == {1} and len(completed_identities(out)) == 12
    # which process got how many trials depends on start-up times (not asserted); each names the one that ran it
    assert all(t.user_attrs["worker"].rpartition(":")[2].isdigit() for t in stored)


def test_a_study_found_before_its_creator_stored_its_signature_is_waited_for(tmp_path, monkeypatch):
    """The race the stress test met on a busy machine: a process finds the study between its creation by
    another process and that process storing the signature; it must wait, not refuse the study."""
    import threading

    import ablate._runner
    from ablate._config import ConfigError
    from ablate._runner import StudyRunner
    from ablate._study import load_study

    path = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"train.lr": [0.001]})
    runner = StudyRunner(load_study(path), out=tmp_path / "out")
    created = optuna.create_study(study_name="tiny", storage=runner.url)  # the signature comes 0.5 s later
    later = threading.Timer(0.5, created.set_user_attr, ("signature", runner.study.signature()))
    later.start()
    runner.open()
    later.join()
    assert runner.optuna_study.study_name == "tiny"

    other = write_study(tmp_path, name="plain")  # a study created by plain Optuna never gets a signature
    optuna.create_study(study_name="plain", storage=runner.url)
    monkeypatch.setattr(ablate._runner, "SIGNATURE_WAIT", 0.2)
    with pytest.raises(ConfigError, match="the search space .* changed since study 'plain'"):
        StudyRunner(load_study(other), out=tmp_path / "out").open()


def test_postprocessing_only_study_trains_once_per_seed(tmp_path):
    chains = [[{"name": "threshold", "value": 0.3}], [{"name": "threshold", "value": 0.5}], [{"name": "bg_power"}]]
    study = write_study(
        tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"postprocess": chains}, seeds=2
    )
    out = tmp_path / "out"
    assert run_cli(str(study), "--out", str(out)) == 0
    done = [t for t in trials(out) if t.state.name == "COMPLETE"]
    assert len(done) == 6
    assert sum(t.user_attrs["trainings"] for t in done) == 2


def _waiting_study(tmp_path: Path, n: int) -> tuple[str, optuna.Study]:
    url = f"sqlite:///{tmp_path}/claims.db"
    study = optuna.create_study(study_name="claims", storage=url)
    for i in range(n):
        study.enqueue_trial({}, user_attrs={"i": i}, skip_if_exists=False)
    return url, study


def test_a_waiting_trial_is_claimed_once_and_names_its_worker(tmp_path):
    from ablate._storage import claim_waiting, open_storage

    url, study = _waiting_study(tmp_path, 1)
    storage = open_storage(url)
    (trial,) = study.get_trials()
    assert claim_waiting(storage, trial._trial_id, "host:1")
    assert not claim_waiting(storage, trial._trial_id, "host:2")  # already RUNNING: the second loses
    (claimed,) = study.get_trials()
    assert claimed.state.name == "RUNNING" and claimed.user_attrs["worker"] == "host:1"
    assert claimed.datetime_start is not None


CLAIMER = """
import json, sys, time
from pathlib import Path
import optuna
from ablate._storage import claim_waiting, open_storage
url, go, worker = sys.argv[1:]
storage = open_storage(url)
study = optuna.load_study(study_name="claims", storage=storage)
ids = [t._trial_id for t in study.get_trials()]
while not Path(go).exists():
    time.sleep(0.01)
print(json.dumps([i for i in ids if claim_waiting(storage, i, worker)]))
"""


def test_processes_racing_for_the_same_trials_claim_each_exactly_once(tmp_path):
    """The race Optuna's read-then-write transition loses on SQLite: 4 processes claim 60 trials at once."""
    url, study = _waiting_study(tmp_path, 60)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, url, str(go), f"w{k}"], stdout=subprocess.PIPE, text=True)
        for k in range(4)
    ]
    time.sleep(8)  # every process has imported and listed the trials (they wait for "go" otherwise)
    go.touch()
    won = [yaml.safe_load(proc.communicate(timeout=120)[0]) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    claimed = [i for ids in won for i in ids]
    assert sorted(claimed) == sorted(t._trial_id for t in study.get_trials())  # each exactly once
    workers = {t._trial_id: t.user_attrs["worker"] for t in study.get_trials()}
    assert all(workers[i] == f"w{k}" for k, ids in enumerate(won) for i in ids)


QUEUER = """
import sys, time
from pathlib import Path
from ablate._runner import StudyRunner
from ablate._study import load_study
path, out, go = sys.argv[1:]
runner = StudyRunner(load_study(path, check_configs=False), out=out)
runner.open()
while not Path(go).exists():
    time.sleep(0.01)
print(runner.enqueue_missing())
"""


def test_processes_queueing_one_grid_at_once_queue_each_pair_once(tmp_path):
    study = write_study(tmp_path, grid={"transfer.lambda": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}, seeds=2)
    out, go = tmp_path / "out", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", QUEUER, str(study), str(out), str(go)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    time.sleep(8)  # every process has opened the study and waits for "go"
    go.touch()
    queued = [int(proc.communicate(timeout=120)[0].split()[-1]) for proc in procs]
    assert sum(queued) == 16 and len(trials(out)) == 16
    assert len({t.user_attrs["identity"] for t in trials(out)}) == 16
    assert all(t.state.name == "WAITING" for t in trials(out))
    stored = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out}/study.db")
    assert "ablate:queue-lock" not in stored._storage.get_study_system_attrs(stored._study_id)  # released


def test_resumed_tuning_with_a_larger_budget_never_repeats_a_configuration(tmp_path, capsys):
    tune = {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}}
    config = {**TINY, "paradigm": {"name": "single"}}
    out = tmp_path / "out"
    for n_trials in (2, 3):
        study = write_study(tmp_path, config=config, tune=tune, sampler="random", n_trials=n_trials)
        assert run_cli(str(study), "--out", str(out)) == 0
    done = [t for t in trials(out) if t.state.name == "COMPLETE"]
    assert len(done) == 3 and len({t.params["train.lr"] for t in done}) == 3
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert [line.split()[0] for line in lines] == ["[1/2]", "[2/2]", "[3/3]"]


def test_the_budget_count_reads_trials_other_workers_write_while_it_runs(tmp_path):
    from ablate._runner import StudyRunner
    from ablate._storage import identity
    from ablate._study import load_study

    tune = {"transfer.lambda": {"low": 0.0, "high": 2.0}}
    study = load_study(write_study(tmp_path, tune=tune, sampler="random", n_trials=3))
    runner = StudyRunner(study, out=tmp_path / "out", quiet=True)
    runner.open()
    other = optuna.load_study(study_name="tiny", storage=runner.storage)  # another worker on the same storage

    def primary(value: float) -> dict:
        return {"identity": identity({"transfer.lambda": value}, 0), "primary": True, "seed": 0}

    first = other.ask()
    for key, value in primary(0.1).items():
        first.set_user_attr(key, value)
    just_asked = other.ask()  # its identity is written a moment after the ask
    third = other.ask()
    for key, value in primary(0.3).items():
        third.set_user_attr(key, value)
    assert len(runner._primary_identities()) == 2 and not runner._budget_spent()
    assert runner._primaries_read == 1  # the trials from the one still without an identity are read again
    for key, value in primary(0.2).items():
        just_asked.set_user_attr(key, value)
    other.enqueue_trial({"transfer.lambda": 0.1}, user_attrs={**primary(0.1), "primary": False, "seed": 1})
    assert len(runner._primary_identities()) == 3 and runner._budget_spent()
    assert runner._primaries_read == 4


def test_the_progress_count_sees_a_failed_pair_another_worker_runs_again_after_this_one_started(tmp_path):
    from ablate._runner import StudyRunner
    from ablate._study import load_study

    study = load_study(write_study(tmp_path, grid={"train.lr": [1e-3, 2e-3]}))
    runner = StudyRunner(study, out=tmp_path / "out", quiet=True)
    runner.open()
    runner.enqueue_missing()
    failed = runner._claim()
    runner.storage.set_trial_state_values(failed._trial_id, optuna.trial.TrialState.FAIL)
    mine = runner.storage.get_trial(runner._claim()._trial_id)
    time.sleep(0.01)  # start times apart
    runner._enqueue(failed.user_attrs["params"], 0, True)  # another worker's resume queues it again and runs it
    again = runner._claim()
    assert again.user_attrs["identity"] == failed.user_attrs["identity"]
    done, pruned, failed_for_good, running_before = runner._settled(before=mine)
    assert not failed_for_good  # it runs again: not a pair failed for good ahead of this one
    assert not running_before  # started after this one
    assert runner._settled(before=runner.storage.get_trial(again._trial_id))[3] == {mine.user_attrs["identity"]}


def test_asking_for_a_tuning_trial_leaves_a_trial_another_worker_queued_to_the_atomic_claim(tmp_path, monkeypatch):
    import ablate._runner
    from ablate._runner import StudyRunner
    from ablate._storage import identity
    from ablate._study import load_study

    tune = {"transfer.lambda": {"low": 0.0, "high": 2.0}}
    study = load_study(write_study(tmp_path, tune=tune, sampler="random", n_trials=3, seeds=2))
    runner = StudyRunner(study, out=tmp_path / "out", quiet=True)
    runner.open()
    other = optuna.load_study(study_name="tiny", storage=runner.storage)
    params = {"transfer.lambda": 0.5}
    attrs = {"identity": identity(params, 1), "primary": False, "seed": 1, "params": params}
    other.enqueue_trial(params, user_attrs=attrs)
    # the other worker's seed 1 lands after this worker's claim found the queue empty, before it asks
    monkeypatch.setattr(ablate._runner, "waiting_trial_ids", lambda storage, study_id: [])
    trial, sampled, seed = runner._next()
    # the queued trial still waits for a claim instead of running as a sampled configuration
    assert other.get_trials()[0].state == optuna.trial.TrialState.WAITING
    assert trial.number == 1 and seed == 0 and sampled != params


def test_a_worker_runs_the_seed_another_worker_queued_for_its_tuned_configuration(tmp_path):
    from ablate._runner import StudyRunner
    from ablate._study import load_study

    tune = {"transfer.lambda": {"low": 0.0, "high": 2.0}}
    study = load_study(write_study(tmp_path, tune=tune, sampler="random", n_trials=3, seeds=2))
    runner, other = (StudyRunner(study, out=tmp_path / "out", quiet=True) for _ in range(2))  # two processes' own
    runner.open()
    other.open()
    _, params, _ = other._next()  # the other worker asks a configuration and queues its seed 1
    # this worker's Optuna cache has never seen that queued trial: registering its parameters raised KeyError
    claimed, claimed_params, seed = runner._next()
    assert (claimed_params, seed) == (params, 1) and claimed.params == other.optuna_study.get_trials()[0].params


def test_retries_count_a_pairs_attempts_whichever_worker_ran_them(tmp_path):
    from ablate._runner import StudyRunner
    from ablate._study import load_study

    study = load_study(write_study(tmp_path, grid={"train.lr": [1e-3]}))
    runner, other = (StudyRunner(study, out=tmp_path / "out", quiet=True, retries=1) for _ in range(2))
    runner.open()
    other.open()
    runner.enqueue_missing()
    first = runner._claim()
    params, seed = first.user_attrs["params"], first.user_attrs["seed"]
    runner._fail(first, "boom", None)
    runner._maybe_retry(first, params, seed)
    retry = other._claim()  # the retry runs on the other worker, and fails again
    other._fail(retry, "boom", None)
    other._maybe_retry(retry, params, seed)
    # --retries 1: one retry in all (each worker's own count let every worker retry it once more)
    assert other._claim() is None and runner._claim() is None
    assert [t.state.name for t in trials(tmp_path / "out")] == ["FAIL", "FAIL"]


def test_export_hands_on_the_best_trials_weights_config_and_metrics(tmp_path, capsys):
    import json

    import torch

    import ablate
    from ablate._models import build_network

    study = write_study(tmp_path, grid={"transfer.lambda": [0.5, 1.0]})
    out, to = tmp_path / "out", tmp_path / "handed"
    assert run_cli(str(study), "--out", str(out)) == 0
    capsys.readouterr()
    assert main(["export", str(study), "--out", str(out), "--best", "--to", str(to)]) == 0
    best = max((t for t in trials(out)), key=lambda t: t.value)
    assert capsys.readouterr().out.startswith(f"trial {best.number} (smoke_iou {best.value:.4f}): {to}")
    config = yaml.safe_load((to / "config.yaml").read_text())
    assert (
        config == best.user_attrs["config"]
        and config["transfer"]["lambda"] == best.user_attrs["params"]["transfer.lambda"]
    )
    undefined_as_null = {k: None if v != v else v for k, v in best.user_attrs["metrics"].items()}  # strict JSON
    assert json.loads((to / "metrics.json").read_text(), parse_constant=pytest.fail)["metrics"] == undefined_as_null
    states = torch.load(to / "weights.pt", weights_only=True)
    assert set(states) == {"teacher", "student"}
    for role, state in states.items():
        build_network(ablate.TrialConfig.from_dict(config).network(role)).load_state_dict(
            state
        )  # strict: every key of the trained network
    teacher = {**config["teacher"]["backbone"], "checkpoint": str(to / "teacher_backbone.pt")}
    ablate.BACKBONES.build(teacher)  # a later config's backbone.checkpoint takes it as it is
    assert main(["export", str(study), "--out", str(out), "--trial", "99"]) == 2
    assert "--trial 99: study 'tiny' has no such trial" in capsys.readouterr().err
    blocked = tmp_path / "a file"
    blocked.write_text("")
    assert main(["export", str(study), "--out", str(out), "--best", "--to", str(blocked / "x")]) == 2
    assert capsys.readouterr().err == f"ablate: error: --to {blocked / 'x'}: Not a directory\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_terminal_a_study_bar_counts_trials_above_the_epoch_bars(tmp_path, monkeypatch, capsys):
    study = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"train.lr": [1e-3, 2e-3]})
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    drawn = terminal.getvalue()
    assert "study tiny:   0%|" in drawn and "study tiny: 100%|" in drawn and "| 2/2 [" in drawn
    assert "student epoch 1/1" in drawn  # the trainer's bar, drawn while the study bar is open
    assert "[2/2] trial 1" in capsys.readouterr().out  # the log lines still reach stdout


def test_outside_a_terminal_no_bar_is_drawn(tmp_path, capfd):
    study = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}})
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    err = capfd.readouterr().err
    assert "study tiny" not in err and "\r" not in err
    assert "student epoch 1/1: loss" in err  # one line per epoch instead


def test_a_pruned_configuration_stops_at_its_first_seed_and_the_others_run_every_seed(tmp_path, monkeypatch, capsys):
    import ablate._runner as runner_module

    losses = {1e-3: 0.2, 2e-3: 0.3, 3e-3: 2.0, 4e-3: 3.0}  # per-epoch L_cls scripted by learning rate
    real = runner_module.run_trial

    def scripted(config, *, on_epoch=None, **kwargs):
        for epoch in (1, 2):
            if on_epoch is not None:
                on_epoch({"tag": "student", "epoch": epoch, "loss": 1.0, "cls": losses[config["train"]["lr"]]})
        return real(config, **kwargs)

    monkeypatch.setattr(runner_module, "run_trial", scripted)
    study = write_study(
        tmp_path,
        config={**TINY, "paradigm": {"name": "single"}},
        tune={"train.lr": {"choices": list(losses)}},
        sampler="grid",
        n_trials=4,
        seeds=2,
        pruner={"name": "median", "n_startup_trials": 1},
    )
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0
    stored = trials(out)
    by_lr: dict[float, list[str]] = {}
    for t in stored:
        by_lr.setdefault(t.user_attrs["params"]["train.lr"], []).append(t.state.name)
    pruned = [lr for lr, states in by_lr.items() if "PRUNED" in states]
    assert pruned and set(pruned) <= {3e-3, 4e-3}  # only the configurations whose loss stays high
    assert all(states == ["PRUNED"] for lr, states in by_lr.items() if lr in pruned)  # no second seed run
    assert all(states == ["COMPLETE", "COMPLETE"] for lr, states in by_lr.items() if lr not in pruned)
    first = min((t for t in stored if t.state.name == "PRUNED"), key=lambda t: t.number)
    # reported with its sign turned: the study maximises smoke_iou, so a higher value must be the better one
    assert first.intermediate_values == {1: -losses[first.user_attrs["params"]["train.lr"]]}
    printed = capsys.readouterr()
    assert f"pruned trial {first.number}: at epoch 1 (cls " in printed.out
    assert f"trials completed, {len(pruned)} pruned" in printed.out
    assert f"trials completed, {len(pruned)} pruned" in (out / "summary.md").read_text()
    assert main(["status", str(study), "--out", str(out)]) == 0
    status = capsys.readouterr().out.splitlines()[-1]
    assert status.startswith(f"{len(stored)}/{len(stored)} (configuration, seed) pairs done (completed or pruned)")
    assert f"PRUNED {len(pruned)}" in status
    # resuming queues nothing: pruned configurations are finished
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert len(trials(out)) == len(stored)


def test_a_pruner_needs_a_tuning_study(tmp_path, capsys):
    study = write_study(tmp_path, grid={"train.lr": [1e-3, 2e-3]}, pruner="median")
    assert main(["validate", str(study)]) == 2
    assert "pruner: only a tuning study (tune:) prunes" in capsys.readouterr().err


def test_a_grid_sampler_over_tuned_choices_runs_every_seed_and_stops_at_the_end_of_its_grid(tmp_path, capsys):
    # Optuna's grid sampler asked Study.stop (refused outside optimize) and read a grid id the queued seeds lack
    study = write_study(
        tmp_path,
        config={**TINY, "paradigm": {"name": "single"}},
        tune={"train.lr": {"choices": [1e-3, 2e-3]}},
        sampler="grid",
        n_trials=5,  # more than the grid holds
        seeds=2,
    )
    assert run_cli(str(study), "--out", str(tmp_path / "out")) == 0
    assert len(completed_identities(tmp_path / "out")) == 4
    assert "tiny: 4/4 trials completed" in capsys.readouterr().out


def test_a_tpe_study_over_fewer_configurations_than_its_budget_stops_when_each_has_run(tmp_path, capsys):
    # it asked the sampler for ever, storing hundreds of pruned duplicates; the timeout bounds the test if it regresses
    study = write_study(
        tmp_path,
        config={**TINY, "paradigm": {"name": "single"}},
        tune={"train.lr": {"choices": [1e-3, 2e-3]}},
        n_trials=3,
        timeout=120,
    )
    assert run_cli(str(study), "--out", str(tmp_path / "out")) == 0
    assert len(completed_identities(tmp_path / "out")) == 2
    assert "tiny: 2/2 trials completed" in capsys.readouterr().out


def test_a_sampler_that_proposes_only_configurations_already_run_is_stopped(tmp_path, monkeypatch, capsys):
    # a finite space caps the budget, but a sampler stuck on what it has run would still be asked for ever
    from ablate._runner import MAX_REPEATS, StudyRunner

    suggest = StudyRunner._suggest
    monkeypatch.setattr(StudyRunner, "_suggest", lambda self, trial: {**suggest(self, trial), "train.lr": 1e-3})
    config = {**TINY, "paradigm": {"name": "single"}}
    study = write_study(tmp_path, config=config, tune={"train.lr": {"choices": [1e-3, 2e-3]}}, n_trials=2)
    assert run_cli(str(study), "--out", str(tmp_path / "out")) == 1  # one of the two configurations never ran
    assert len(completed_identities(tmp_path / "out")) == 1
    assert sum(t.state.name == "PRUNED" for t in trials(tmp_path / "out")) == MAX_REPEATS
    out = capsys.readouterr()
    assert f"stopped asking the tpe sampler: its last {MAX_REPEATS} proposals had all run already" in out.out
    assert "tiny: 1/2 trials completed, 1 failed or missing" in out.err


SCALED_L1 = """
from ablate import DISTANCES


@DISTANCES.register("warn_l1")
def warn_l1():
    return lambda a, b: {scale} * (a - b).abs().mean(dim=-1)
"""


def test_run_and_status_warn_when_stored_trials_came_from_code_changed_since(tmp_path, ablate_process):
    # a fixed loss left the study "24/24 done" with the buggy code's numbers, and nothing said so
    (tmp_path / "warn_distance.py").write_text(SCALED_L1.format(scale=1.0))
    study = write_study(tmp_path, config={**TINY, "transfer": {"distance": "warn_l1"}}, plugins=["warn_distance"])
    args, cache = ("--out", tmp_path / "out"), {"ABLATE_CACHE": str(tmp_path / "cache")}
    first = ablate_process("run", study, *args, "--no-report", "--quiet", **cache)
    assert first.returncode == 0 and "warning" not in first.stderr, first.stderr
    (tmp_path / "warn_distance.py").write_text(SCALED_L1.format(scale=2.0))
    warning = "warning: 1 of 1 completed trials were computed by code that has changed since (warn_distance);"
    for command in (["run", study, *args, "--no-report", "--quiet"], ["status", study, *args]):
        again = ablate_process(*command, **cache)
        assert again.returncode == 0 and warning in again.stderr, again.stderr


def test_a_pruned_configuration_proposed_again_is_a_duplicate_not_a_new_run(tmp_path):
    from ablate._runner import StudyRunner
    from ablate._storage import identity
    from ablate._study import load_study

    path = write_study(tmp_path, tune={"train.lr": {"choices": [1e-3, 2e-3]}}, n_trials=2, pruner="median")
    runner = StudyRunner(load_study(path, check_configs=False), out=tmp_path / "out")
    runner.open()
    key = identity({"train.lr": 1e-3}, 0)
    pruned = runner.optuna_study.ask()
    pruned.set_user_attr("identity", key)
    runner.optuna_study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    again = runner.optuna_study.ask()
    assert runner._is_duplicate(again, key) == pruned.number
    assert runner._is_duplicate(again, identity({"train.lr": 2e-3}, 0)) is None


def test_a_pruner_watching_a_value_the_training_lacks_stops_the_run_with_one_line(tmp_path, capsys):
    study = write_study(
        tmp_path,
        config={**TINY, "paradigm": {"name": "single"}},
        tune={"train.lr": {"choices": [1e-3, 2e-3]}},
        n_trials=2,
        pruner={"name": "median", "on": "tf"},  # a single network has no L_tf
    )
    assert run_cli(str(study), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"ablate: error: {study}: pruner.on: 'tf' is not a per-epoch value of trial 0's training (it has loss, cls, lr)"
    ]
    assert [t.state.name for t in trials(tmp_path / "out")] == ["FAIL"]  # marked, not left RUNNING
