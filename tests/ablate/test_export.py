"""`ablate export` of one stored trial (the whole path is tested through the CLI in test_runner)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from ablate import ConfigError
from ablate._export import export_trial


def test_a_trial_without_recorded_weights_is_refused_not_exported_as_an_empty_model(tmp_path: Path) -> None:
    trial = optuna.trial.create_trial(value=0.2, user_attrs={"config": {"seed": 0}, "checkpoints": []})
    with pytest.raises(ConfigError, match="no weight files were recorded with it"):
        export_trial(SimpleNamespace(study=SimpleNamespace(name="s")), trial, tmp_path / "out")
    assert not (tmp_path / "out").exists()
