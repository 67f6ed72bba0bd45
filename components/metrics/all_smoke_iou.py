"""Chance level of the smoke IoU: what a mask that marks every pixel smoke scores on the same images."""

from __future__ import annotations

import numpy as np

from ablate import METRICS, Evaluation, mean_defined, per_image_iou


@METRICS.register("all_smoke_iou", label="all-smoke IoU", chance_of=("smoke_iou", "oracle_smoke_iou"))
def all_smoke_iou(ev: Evaluation) -> float:
    """Smoke IoU of a mask that marks every pixel smoke: the chance level of smoke_iou.

    Each smoke image scores its share of smoke pixels. The value depends on the test masks only, not on the trial:
    a configuration whose smoke_iou is at or below it localises smoke no better than marking the whole image (the
    oracle, which may pick threshold 0, never scores below it).
    """
    return mean_defined(per_image_iou(np.ones(ev.masks.shape, dtype=bool), ev.masks))
