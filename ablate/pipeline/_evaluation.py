"""What metrics receive (trial path step: metrics)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Evaluation:
    """Everything a metric may look at, for the whole test split.

    Attributes:
        cams: float32 ``[N, H, W]`` final continuous maps in [0, 1] (after post-processing).
        pred: bool ``[N, H, W]`` pseudo-masks (smoke = True).
        masks: uint8 ``[N, H, W]`` ground-truth smoke masks (0/1).
        labels: int64 ``[N]`` image-level ground truth, 1 = smoke.
        smoke_prob: float ``[N]`` the classifier's smoke probability per image.
        cooccur_masks: uint8 ``[N, H, W]`` co-occurring object (chimney) masks, or None.
        val_labels: int64 ``[M]`` labels of the dataset's val split (train distribution), or None without one.
        val_smoke_prob: float ``[M]`` the classifier's smoke probability per val image, or None.
    """

    cams: np.ndarray
    pred: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    smoke_prob: np.ndarray
    cooccur_masks: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    val_smoke_prob: np.ndarray | None = None
