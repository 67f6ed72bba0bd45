"""The paper's metric: smoke IoU per smoke image, averaged over images."""

from __future__ import annotations

from ablate import METRICS, Evaluation, mean_defined, per_image_iou


@METRICS.register("smoke_iou", label="smoke IoU", default_objective=True, per_image_iou_mean=True)
def smoke_iou(ev: Evaluation) -> float:
    """Smoke IoU of each image with ground-truth smoke, averaged over those images (the paper's "mIoU").

    Smoke images are those whose mask contains smoke; smoke-free images are not scored.
    """
    return mean_defined(per_image_iou(ev.pred, ev.masks))
