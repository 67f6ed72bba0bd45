"""Progress: the [k/N] counter under failures, resumes and other workers, and the study bar in a terminal."""

from __future__ import annotations

import io
import sys
import time

import optuna

from ablate.cli import main
from tests.ablate.study.studies import (
    NAN_DISTANCE,
    TINY,
    run_cli,
    write_study,
)


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


def test_the_progress_count_sees_a_failed_pair_another_worker_runs_again_after_this_one_started(tmp_path):
    from ablate.storage import trial_id
    from ablate.study import StudyRunner, load_study

    study = load_study(write_study(tmp_path, grid={"train.lr": [1e-3, 2e-3]}))
    runner = StudyRunner(study, out=tmp_path / "out", quiet=True)
    runner.open()
    queue, stored = runner.queue, runner.stored
    queue.enqueue_missing()
    failed = queue.claim()
    stored.storage.set_trial_state_values(trial_id(failed), optuna.trial.TrialState.FAIL)
    mine = stored.storage.get_trial(trial_id(queue.claim()))
    time.sleep(0.01)  # start times apart
    queue.enqueue(failed.user_attrs["params"], 0, True)  # another worker's resume queues it again and runs it
    again = queue.claim()
    assert again.user_attrs["identity"] == failed.user_attrs["identity"]
    done, pruned, failed_for_good, running_before = stored.settled(before=mine)
    assert not failed_for_good  # it runs again: not a pair failed for good ahead of this one
    assert not running_before  # started after this one
    assert stored.settled(before=stored.storage.get_trial(trial_id(again)))[3] == {mine.user_attrs["identity"]}


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
