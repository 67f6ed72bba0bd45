"""Writing a trial's record in one transaction: what Optuna reads back, and what it refuses."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError

from ablate._storage import open_storage, record_trial

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
