"""Multi-scale CAM inference: average CAMs over input scales and flips."""

from __future__ import annotations

from ablate import POSTPROCESSORS, PostContext, PostState
from ablate.components.postprocessors.cam_fusion import fuse


@POSTPROCESSORS.register("multiscale", label="multi-scale")
class MultiScale:
    """Multi-scale CAMs: mean over input scales (and optional horizontal flips), renormalised per image.

    Recomputes CAMs from the network, so it replaces the incoming CAMs: put it first in a chain.

    Args:
        scales: Input scale factors; the paper uses 0.5, 1, 1.5 and 2.
        flip: Also average the CAMs of horizontally flipped inputs.
    """

    reads = ()  # its CAMs come from the network anew, not from the state
    writes = ("cams", "mask")

    def __init__(self, scales: list = [0.5, 1.0, 1.5, 2.0], flip: bool = False) -> None:  # noqa: B006  (copied)
        if not scales or not all(isinstance(s, int | float) and s > 0 for s in scales):
            raise ValueError(f"multiscale: scales must be a non-empty list of numbers > 0, got {scales!r}")
        self.settings = [(float(s), f) for s in scales for f in ((False, True) if flip else (False,))]

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        return state.with_(cams=fuse((ctx.cams(scale=s, flip=f) for s, f in self.settings), "mean"), mask=None)
