"""Handing a trained model on: a trial's weights, resolved config and metrics copied to a folder.

What a user takes from an ablation to stage 3 (a segmentation network trained on its pseudo-masks) or to
another study: ``weights.pt`` (every trained network's state dict by role, as the harness saves them),
``<role>_backbone.pt`` (the backbone's timm model alone, which a config's ``backbone.checkpoint`` loads),
``config.yaml`` (the resolved trial config) and ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from optuna.trial import FrozenTrial, TrialState

from ablate._results import strict_json
from ablate.config._resolve import ConfigError
from ablate.storage import StoredStudy

BACKBONE_PREFIX = "backbone.model."  # Network -> its backbone -> the timm model


def chosen_trial(stored: StoredStudy, number: int | None) -> FrozenTrial:
    """Trial ``number``, or (None) the best completed one by the study's first objective."""
    done = stored.trials(states=(TrialState.COMPLETE,))
    if number is not None:
        found = [t for t in stored.trials() if t.number == number]
        if not found:
            raise ConfigError(f"--trial {number}: study '{stored.study.name}' has no such trial")
        if found[0].state != TrialState.COMPLETE:
            raise ConfigError(f"--trial {number}: the trial is {found[0].state.name}, not COMPLETE")
        return found[0]
    if not done:
        raise ConfigError(f"--best: study '{stored.study.name}' has no completed trial")
    sign = 1 if stored.study.objectives[0].direction == "maximize" else -1
    return max(done, key=lambda t: sign * t.values[0])


def export_trial(stored: StoredStudy, trial: FrozenTrial, folder: str | Path) -> Path:
    """Write ``trial``'s model files into ``folder`` (created); returns the folder.

    Raises:
        ConfigError: the trial predates stored configs, or its weights are gone from the stage cache.
    """
    attrs = trial.user_attrs
    if "config" not in attrs or "checkpoints" not in attrs:
        raise ConfigError(f"trial {trial.number}: stored without its config and weights (run by an older ablate)")
    states: dict[str, dict[str, torch.Tensor]] = {}
    for path in attrs["checkpoints"]:
        if not Path(path).is_file():
            raise ConfigError(
                f"trial {trial.number}: its weights {path} are no longer in the stage cache (pruned?); "
                f"`ablate run` with a new study folder retrains them"
            )
        states |= torch.load(path, map_location="cpu", weights_only=True)
    if not states:  # its maps came from cache entries written before they recorded the weights they were made by
        raise ConfigError(
            f"trial {trial.number}: no weight files were recorded with it (its CAMs came from the stage cache); "
            "export a trial of the same networks that trained or loaded them (`ablate status`: trainings)"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(states, folder / "weights.pt")
    for role, state in states.items():
        backbone = {k.removeprefix(BACKBONE_PREFIX): v for k, v in state.items() if k.startswith(BACKBONE_PREFIX)}
        torch.save(backbone, folder / f"{role}_backbone.pt")
    (folder / "config.yaml").write_text(yaml.safe_dump(attrs["config"], sort_keys=False))
    summary = {
        "study": stored.study.name,
        "trial": trial.number,
        "seed": attrs.get("seed"),
        "params": attrs.get("params"),
        "metrics": attrs.get("metrics"),
        "ablate": attrs.get("ablate_version"),
    }
    (folder / "metrics.json").write_text(strict_json(summary))
    return folder
