"""The MLflow logger: what a study wrote is read back with ``mlflow.search_runs``."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml

from ablate.cli import main

TINY = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 2, "batch_size": 16},
    "paradigm": {"name": "single"},
}


def test_a_study_writes_one_mlflow_run_per_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))  # trains here: curves exist only for trainings
    study = tmp_path / "ml.yaml"
    study.write_text(yaml.safe_dump({"config": TINY, "grid": {"train.lr": [1e-3, 2e-3]}, "loggers": ["mlflow"]}))
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert (out / "mlflow.db").is_file()  # the default store: in the study folder
    mlflow.set_tracking_uri(f"sqlite:///{out.resolve() / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(experiment_names=["out"]).sort_values("tags.mlflow.runName")
        assert list(runs["tags.mlflow.runName"]) == ["trial-0", "trial-1"]
        assert sorted(runs["params.train.lr"].astype(float)) == [1e-3, 2e-3]
        assert runs["metrics.test.accuracy"].between(0, 1).all()
        history = mlflow.tracking.MlflowClient().get_metric_history(runs["run_id"].iloc[0], "student.loss")
        assert [m.step for m in history] == [1, 2]
    finally:
        mlflow.set_tracking_uri(None)
