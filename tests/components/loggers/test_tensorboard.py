"""The TensorBoard logger: what a study wrote is read back with TensorBoard's own event reader."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ablate.cli import main

TINY = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 2, "batch_size": 16},
    "paradigm": {"name": "single"},
}


def test_a_study_writes_one_run_per_trial_with_its_curves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_cache
) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))  # trains here: curves exist only for trainings
    study = tmp_path / "tb.yaml"
    study.write_text(yaml.safe_dump({"config": TINY, "grid": {"train.lr": [1e-3, 2e-3]}, "loggers": ["tensorboard"]}))
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-report"]) == 0
    runs = sorted(p.name for p in (out / "tensorboard").iterdir())
    assert runs == ["trial-0", "trial-1"]
    events = EventAccumulator(str(out / "tensorboard" / "trial-0")).Reload()
    assert {"student/loss", "student/lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("student/loss")] == [1, 2]
    assert "test/accuracy" in events.Tags()["scalars"]  # the test metrics, beside the hparams of the run
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def test_an_unknown_logger_is_refused_by_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "bad.yaml"
    study.write_text(yaml.safe_dump({"config": TINY, "loggers": ["tensorbord"]}))
    assert main(["validate", str(study), "--no-files"]) == 2
    err = capsys.readouterr().err
    assert "loggers[0].name: 'tensorbord' is not in the loggers registry (did you mean 'tensorboard'?)" in err
