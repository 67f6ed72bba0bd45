"""Oracle per-image threshold: an upper bound that reads the ground truth."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ablate import POSTPROCESSORS, PostContext, PostState, Range, iou_at_thresholds
from ablate.components.postprocessors.threshold import apply_threshold


def best_thresholds(cams: np.ndarray, truth: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per image, the threshold in ``grid`` whose mask ``cam >= t`` has the highest smoke IoU with ``truth``.

    Ties go to the highest threshold, i.e. the smallest mask. An image without smoke gets the top of the grid:
    its best mask is the emptiest one (an empty prediction of an empty truth counts as IoU 1).

    Args:
        cams: ``[N, H, W]`` continuous maps.
        truth: ``[N, H, W]`` ground-truth smoke (nonzero = smoke).
        grid: the thresholds to try, ascending.
    """
    ious = iou_at_thresholds(cams, truth, grid)  # NaN rows: images without smoke
    best = len(grid) - 1 - np.argmax(np.nan_to_num(ious, nan=0.0)[:, ::-1], axis=1)
    return np.where(np.isnan(ious).all(axis=1), grid[-1], grid[best])


@POSTPROCESSORS.register("oracle_threshold", label="oracle threshold")
class OracleThreshold:
    """ORACLE: per-image threshold chosen against the ground truth (an upper bound, not a method).

    Tries thresholds 0, step, 2*step, ..., 1 on each test image and keeps the one with the
    best smoke IoU, like the paper's "optimal threshold" rows (57.15 / 53.92 mIoU).

    Args:
        step: Spacing of the threshold grid on [0, 1].
    """

    uses_ground_truth = True
    reads = ("cams",)
    writes = ("mask",)

    def __init__(self, step: Annotated[float, Range(0, 1, low_open=True)] = 0.05) -> None:
        # float32 like the CAMs, so a grid value equals the threshold that apply_threshold compares with.
        self.grid = np.arange(0.0, 1.0 + step / 2, step).clip(max=1.0).astype(np.float32)

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        return apply_threshold(state, best_thresholds(state.cams, ctx.ground_truth(), self.grid))
