"""Background-power mask: smoke where the CAM beats a sharpened background score."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ablate import POSTPROCESSORS, PostContext, PostState, Range


def background_score(cams: np.ndarray, power: float) -> np.ndarray:
    """The background score ``(1 - cam) ** power`` (PSA/IRN style; high powers shrink the background)."""
    return (1.0 - cams) ** power


@POSTPROCESSORS.register("bg_power")
class BgPower:
    """Background power: smoke where cam > (1 - cam)^alpha (the CRF's unary decision alone).

    Equivalent to a threshold t solving t = (1 - t)^alpha: about 0.058 for the default 48, 0.32
    for alpha = 3, 0.5 for alpha = 1. The default equals the CRF's ``bg_power``, so comparing
    ``bg_power`` with ``crf`` isolates what the CRF's pairwise terms add.

    Args:
        alpha: Power applied to the background score; > 0.
    """

    reads = ("cams",)
    writes = ("mask",)

    def __init__(self, alpha: Annotated[float, Range(low=0, low_open=True)] = 48.0) -> None:
        self.alpha = alpha

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        return state.with_(mask=state.cams > background_score(state.cams, self.alpha))
