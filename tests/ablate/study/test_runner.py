"""The runner's loop and error policy through the CLI: resume, SIGKILL, Ctrl-C and SIGTERM, failed trials,
errors of the harness itself, retries, the stage cache across trials."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter

import pytest
import yaml

from ablate.cli import main
from tests.ablate.study.studies import (
    HELD,
    NAN_DISTANCE,
    TINY,
    completed_identities,
    run_cli,
    spawn,
    trials,
    wait_for_running,
    write_study,
)


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


def test_sigkill_at_any_moment_loses_at_most_the_trial_in_progress(tmp_path, capsys):
    # trials of a few seconds (80 steps), so the second kill lands inside one
    config = {**TINY, "paradigm": {"name": "single"}, "train": {"epochs": 20, "batch_size": 8}}
    study = write_study(tmp_path, config=config, grid={"train.lr": [1e-3, 2e-3, 3e-3]}, seeds=1)
    out = tmp_path / "out"
    for delay in (0.0, 0.5):  # kill while a trial of the new process runs, at two different points of it
        proc = spawn(study, out)
        wait_for_running(out, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert any(t.state.name == "RUNNING" for t in trials(out))  # left behind by the killed process
    capsys.readouterr()
    assert main(["status", str(study), "--out", str(out)]) == 0
    shown = capsys.readouterr().out  # it showed the killed run's trial RUNNING, as if it still ran
    assert re.search(r"RUNNING\s.*stale: worker \S+:\d+ stopped; the next ablate run runs it again", shown), shown
    assert "RUNNING 1 (1 stale: no live worker; the next ablate run runs them again)" in shown
    proc = spawn(study, out)
    assert proc.wait(timeout=300) == 0, proc.stdout.read()
    done = completed_identities(out)
    assert len(done) == 3 and set(done.values()) == {1}
    assert not [t for t in trials(out) if t.state.name in ("RUNNING", "WAITING")]
    interrupted = [t for t in trials(out) if t.state.name == "FAIL"]
    assert interrupted and all("interrupted: worker" in t.user_attrs["error"] for t in interrupted)


def test_ctrl_c_marks_the_trial_and_resume_reruns_it(tmp_path, hold):
    study = write_study(tmp_path, config=HELD, grid={"train.lr": [1e-3, 2e-3]}, plugins=["hold_step"])
    out = tmp_path / "out"  # the first trial stays in its post-processing step until the interrupt
    proc = spawn(study, out)
    wait_for_running(out, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert [t.user_attrs["error"] for t in trials(out) if t.state.name == "FAIL"] == [
        "interrupted (Ctrl-C or SIGTERM); it runs again on resume"
    ]
    hold.unlink()
    assert spawn(study, out).wait(timeout=300) == 0
    assert len(completed_identities(out)) == 2


def test_sigterm_stops_the_run_as_ctrl_c_does(tmp_path, monkeypatch):
    # a cluster's time limit sends SIGTERM: the trial stayed RUNNING until the stale-worker timeout
    from ablate.study import _runner

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


@pytest.mark.parametrize("moment", ["_queue.TrialQueue.duplicate_of", "_runner.suggest", "_runner.StudyRunner._record"])
def test_ctrl_c_between_claim_and_result_marks_the_claimed_trial(tmp_path, monkeypatch, moment):
    study = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"train.lr": [1e-3, 2e-3]})
    out = tmp_path / "out"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(f"ablate.study.{moment}", interrupt)  # claimed, not yet told
    assert run_cli(str(study), "--out", str(out)) == 130
    states = Counter(t.state.name for t in trials(out))
    assert states == {"FAIL": 1, "WAITING": 1}
    assert [t.user_attrs["error"] for t in trials(out) if t.state.name == "FAIL"] == [
        "interrupted (Ctrl-C or SIGTERM); it runs again on resume"
    ]


def test_an_error_of_the_harness_itself_marks_the_claimed_trial_and_resume_reruns_it(tmp_path, monkeypatch, capsys):
    """A full disk while the gallery is written left the trial RUNNING until the stale-worker timeout."""
    from ablate.study import _runner

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


def test_retries_count_a_pairs_attempts_whichever_worker_ran_them(tmp_path):
    from ablate.study import StudyRunner, load_study

    study = load_study(write_study(tmp_path, grid={"train.lr": [1e-3]}))
    runner, other = (StudyRunner(study, out=tmp_path / "out", quiet=True, retries=1) for _ in range(2))
    runner.open()
    other.open()
    runner.enqueue_missing()
    first = runner.queue.claim()
    params, seed = first.user_attrs["params"], first.user_attrs["seed"]
    runner._fail(first, "boom", None)
    runner._maybe_retry(first, params, seed)
    retry = other.queue.claim()  # the retry runs on the other worker, and fails again
    other._fail(retry, "boom", None)
    other._maybe_retry(retry, params, seed)
    # --retries 1: one retry in all (each worker's own count let every worker retry it once more)
    assert other.queue.claim() is None and runner.queue.claim() is None
    assert [t.state.name for t in trials(tmp_path / "out")] == ["FAIL", "FAIL"]


def test_export_hands_on_the_best_trials_weights_config_and_metrics(tmp_path, capsys):
    import json

    import torch

    import ablate
    from ablate.pipeline._models import build_network

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
