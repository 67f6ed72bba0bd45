"""Fixed CAM threshold: the paper's pseudo-mask rule."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ablate import POSTPROCESSORS, PostContext, PostState, Range


def apply_threshold(state: PostState, thresholds: float | np.ndarray) -> PostState:
    """``state`` with ``mask = cams >= thresholds``, for one threshold or one per image.

    The thresholds are compared in float32, the CAMs' dtype, so a CAM value equal to the
    threshold is always smoke.
    """
    per_image = np.asarray(thresholds, dtype=np.float32).reshape(-1, 1, 1)
    return state.with_(mask=state.cams >= per_image)


@POSTPROCESSORS.register("threshold", default=True)
class Threshold:
    """Fixed threshold: smoke where the normalised CAM >= value (the paper uses 0.3).

    Args:
        value: The threshold, in [0, 1].
    """

    reads = ("cams",)
    writes = ("mask",)

    def __init__(self, value: Annotated[float, Range(0, 1)] = 0.3) -> None:
        self.value = value

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        return apply_threshold(state, self.value)
