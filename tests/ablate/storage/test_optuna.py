"""Writing a trial's record in one transaction (what Optuna reads back, and what it refuses), and the queries that
find the trials of one identity."""

from __future__ import annotations

import math
import sqlite3

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError

from ablate.storage import (
    identity_holders,
    open_storage,
    record_trial,
    trial_keys_from,
    waiting_trial_ids,
)

RECORD = {"metrics": {"smoke_iou": 0.25, "precision": math.nan}, "per_image_iou": [0.5, math.nan], "note": "x"}


def _running_trial(url: str) -> tuple[optuna.Study, optuna.Trial]:
    storage = open_storage(url) if url != "memory" else optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="record", storage=storage)
    trial = study.ask()
    trial.set_user_attr("note", "before")  # an existing key is replaced, not duplicated
    trial.report(9.0, 0)
    return study, trial


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_record_reads_back_as_optuna_wrote_it(tmp_path, kind: str) -> None:
    url = f"sqlite:///{tmp_path}/record.db" if kind == "sqlite" else "memory"
    study, trial = _running_trial(url)
    record_trial(study._storage, trial._trial_id, RECORD, [0.7, math.nan, math.inf])
    study.tell(trial, 0.25)

    stored = (
        study.get_trials()[0] if kind == "memory" else optuna.load_study(study_name="record", storage=url).trials[0]
    )
    assert stored.user_attrs["note"] == "x" and stored.user_attrs["metrics"]["smoke_iou"] == 0.25
    assert math.isnan(stored.user_attrs["metrics"]["precision"]) and math.isnan(stored.user_attrs["per_image_iou"][1])
    assert stored.intermediate_values[0] == 0.7 and stored.intermediate_values[2] == math.inf
    assert math.isnan(stored.intermediate_values[1]) and stored.value == 0.25


def test_a_finished_trial_is_not_rewritten(tmp_path) -> None:
    study, trial = _running_trial(f"sqlite:///{tmp_path}/record.db")
    study.tell(trial, 1.0)
    with pytest.raises(UpdateFinishedTrialError, match="COMPLETE, not running"):
        record_trial(study._storage, trial._trial_id, {"note": "late"})
    assert study.trials[0].user_attrs["note"] == "before"


def _trial_with(study: optuna.Study, **attrs: object) -> optuna.Trial:
    trial = study.ask()
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial


def _identity_study(url: str, name: str = "identities") -> tuple[optuna.Study, list[optuna.Trial]]:
    storage = open_storage(url) if url != "memory" else optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name=name, storage=storage)
    trials = [
        _trial_with(study, identity="a"),
        _trial_with(study, identity="b"),
        _trial_with(study, identity="a"),
        _trial_with(study, identity="b", duplicate_of=1),  # set aside: held by no one
        _trial_with(study, seed=0),  # no identity yet
    ]
    study.tell(trials[0], 1.0)
    return study, trials


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_identity_lookups_by_query(tmp_path, kind: str, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path}/ids.db" if kind == "sqlite" else request.getfixturevalue("postgres")
    study, trials = _identity_study(url)
    study_id = study._study_id
    running, complete = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE
    assert sorted(identity_holders(study._storage, study_id, "a")) == [(0, complete), (2, running)]
    assert identity_holders(study._storage, study_id, "b") == [(1, running)]
    assert identity_holders(study._storage, study_id, "c") == []
    other = optuna.create_study(study_name="other", storage=study._storage)
    _trial_with(other, identity="a", primary=True)
    assert len(identity_holders(study._storage, study_id, "a")) == 2  # another study's trials do not count


def test_the_identity_index_exists_and_storages_without_sql_get_none(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/ids.db"
    study, _ = _identity_study(url)
    with sqlite3.connect(tmp_path / "ids.db") as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ablate_trial_identity" in names
    memory, _ = _identity_study("memory")
    assert identity_holders(memory._storage, memory._study_id, "a") is None


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_waiting_trials_and_attribute_reads_match_what_optuna_reads(
    tmp_path, kind: str, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path}/ids.db" if kind == "sqlite" else request.getfixturevalue("postgres")
    study, _ = _identity_study(url, "queue")
    for value in (0.1, 0.2):
        study.enqueue_trial({"x": value}, user_attrs={"identity": f"queued-{value}", "primary": False})
    other = optuna.create_study(study_name="other queue", storage=study._storage)
    other.enqueue_trial({"x": 0.3})  # another study's queue is not this one's
    trials = study.get_trials(deepcopy=False)
    waiting = [t._trial_id for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert waiting_trial_ids(study._storage, study._study_id) == waiting and len(waiting) == 2

    keys = ("identity", "primary", "duplicate_of")
    read = trial_keys_from(study._storage, study._study_id, 2, keys)
    assert read == [
        (t.number, t.state, t.datetime_start, {k: v for k, v in t.user_attrs.items() if k in keys}) for t in trials[2:]
    ]
    assert read[2][1:] == (optuna.trial.TrialState.RUNNING, trials[4].datetime_start, {})  # one with none of the keys
    assert read[-1].start is None and read[-1].attrs == {"identity": "queued-0.2", "primary": False}  # not started
    memory, _ = _identity_study("memory")
    assert waiting_trial_ids(memory._storage, memory._study_id) is None
    assert trial_keys_from(memory._storage, memory._study_id, 0, keys) is None
