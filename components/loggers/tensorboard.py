"""TensorBoard: one run per trial with its training curves, config as hparams and test metrics."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ablate import LOGGERS
from ablate.components.loggers._flat import flat_config


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
            writer.add_hparams(flat_config(config), finite, run_name=".")
