"""Standard semantic-segmentation mIoU over background and smoke."""

from __future__ import annotations

import numpy as np

from ablate import METRICS, Evaluation, confusion_matrix, mean_defined


@METRICS.register("miou", label="mIoU")
def miou(ev: Evaluation) -> float:
    """Mean of background and smoke IoU from one confusion matrix over all test pixels.

    A class absent from both prediction and ground truth (empty union) is left out of the mean.
    """
    cm = confusion_matrix(ev.pred, ev.masks)
    hits = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - hits
    return mean_defined(np.divide(hits, union, out=np.full(2, np.nan), where=union > 0))
