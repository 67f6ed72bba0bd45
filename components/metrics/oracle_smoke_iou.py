"""Oracle upper bound: smoke IoU with the best threshold chosen per image against the ground truth."""

from __future__ import annotations

from ablate import METRICS, ORACLE_THRESHOLDS, Evaluation, iou_at_thresholds, mean_defined


@METRICS.register("oracle_smoke_iou")
def oracle_smoke_iou(ev: Evaluation) -> float:
    """Smoke IoU with each smoke image's best CAM threshold (0.00..1.00, step 0.05); an oracle.

    The search thresholds the final ``cams``, so masks set by post-processing steps (CRF, SAM) do not enter it.
    """
    best = iou_at_thresholds(ev.cams, ev.masks, ORACLE_THRESHOLDS).max(axis=1)  # NaN rows stay NaN
    return mean_defined(best)
