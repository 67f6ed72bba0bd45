"""Whether a CAM points at the smoke at all: its correlation with the smoke mask, whatever the threshold."""

from __future__ import annotations

import numpy as np

from ablate import METRICS, Evaluation, mean_defined


@METRICS.register("smoke_cam_correlation", label="CAM-mask correlation")
def smoke_cam_correlation(ev: Evaluation) -> float:
    """Pearson correlation of the CAM with the smoke mask per smoke image, averaged.

    1: the CAM is high on smoke and low elsewhere; 0: it says nothing about where the smoke is; below 0: it marks
    the rest of the image, an inverted map that no threshold turns into smoke. A knowledge-transferred student can
    carry the teacher's map with either sign, so a low smoke_iou may be a map that localises the other way round.
    Images whose CAM or mask is constant have no correlation and are left out.
    """
    smoke = ev.masks.reshape(len(ev.masks), -1).any(axis=1)
    cams = ev.cams.reshape(len(ev.cams), -1)[smoke].astype(np.float64)
    masks = ev.masks.reshape(len(ev.masks), -1)[smoke].astype(np.float64)
    cams -= cams.mean(axis=1, keepdims=True)
    masks -= masks.mean(axis=1, keepdims=True)
    scale = np.sqrt((cams**2).sum(axis=1) * (masks**2).sum(axis=1))
    correlation = np.full(len(cams), np.nan)
    defined = scale > 0
    correlation[defined] = (cams[defined] * masks[defined]).sum(axis=1) / scale[defined]
    return mean_defined(correlation)
