"""TensorBoard: one run per trial with its training curves, config as hparams and test metrics."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ablate import LOGGERS


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted scalar entries of a nested config (TensorBoard's hparams take numbers, strings and booleans)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flat(value, f"{path}.")
        elif isinstance(value, bool | int | float | str):
            out[path] = value
        elif value is not None:
            out[path] = str(value)  # lists (post-processing chains, plugins) as text
    return out


@LOGGERS.register("tensorboard", label="TensorBoard")
class TensorBoard:
    """TensorBoard event files, one run per trial: per-epoch losses and learning rate, config as hparams.

    Args:
        log_dir: where the runs go (default ``<study folder>/tensorboard``); ``tensorboard --logdir`` it.
        folder: the study folder (injected).
    """

    def __init__(self, log_dir: str | None = None, *, folder: Path) -> None:
        self.root = Path(log_dir) if log_dir else Path(folder) / "tensorboard"

    def log(self, run: str, config: dict[str, Any], history: list[dict[str, Any]], metrics: dict[str, float]) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only for studies that log to it

        with SummaryWriter(log_dir=str(self.root / run)) as writer:
            steps: dict[str, int] = {}
            for epoch in history:
                tag = epoch["tag"]
                step = steps[tag] = steps.get(tag, 0) + 1
                for key, value in epoch.items():
                    if key not in ("tag", "epoch"):
                        writer.add_scalar(f"{tag}/{key}", value, step)
            finite = {f"test/{k}": v for k, v in metrics.items() if v is not None and math.isfinite(v)}
            writer.add_hparams(_flat(config), finite, run_name=".")
