"""Oracle per-image threshold: an upper bound that reads the ground truth."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import numpy as np

from ablate import POSTPROCESSORS, PostContext, PostState, Range
from ablate.components.postprocessors.threshold import apply_threshold


def best_threshold(cam: np.ndarray, truth: np.ndarray, grid: np.ndarray) -> float:
    """The threshold in ``grid`` whose mask ``cam >= t`` has the highest smoke IoU with ``truth``.

    An empty prediction of an empty truth counts as IoU 1. Ties go to the highest threshold,
    i.e. the smallest mask, so smoke-free images get the emptiest mask the grid allows.
    """
    truth = truth.astype(bool)
    ious = []
    for t in grid:
        mask = cam >= t
        union = np.count_nonzero(mask | truth)
        ious.append(np.count_nonzero(mask & truth) / union if union else 1.0)
    return float(grid[len(grid) - 1 - int(np.argmax(ious[::-1]))])


@POSTPROCESSORS.register("oracle_threshold", label="oracle threshold")
class OracleThreshold:
    """ORACLE: per-image threshold chosen against the ground truth (an upper bound, not a method).

    Tries thresholds 0, step, 2*step, ..., 1 on each test image and keeps the one with the
    best smoke IoU, like the paper's "optimal threshold" rows (57.15 / 53.92 mIoU).

    Args:
        step: Spacing of the threshold grid on [0, 1].
    """

    uses_ground_truth = True

    def __init__(self, step: Annotated[float, Range(0, 1, low_open=True)] = 0.05) -> None:
        # float32 like the CAMs, so a grid value equals the threshold that apply_threshold compares with.
        self.grid = np.arange(0.0, 1.0 + step / 2, step).clip(max=1.0).astype(np.float32)

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        thresholds = ctx.map_images(partial(best_threshold, grid=self.grid), state.cams, ctx.ground_truth())
        return apply_threshold(state, np.array(thresholds))
