"""CAM fusion: combine the Grad-CAMs of several layers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np

from ablate import POSTPROCESSORS, PostContext, PostState, minmax

_COMBINE = {"mean": np.add, "max": np.maximum}


def fuse(maps: Iterable[np.ndarray], mode: str) -> np.ndarray:
    """Pixel-wise ``mode`` ("mean" or "max") of ``[N, H, W]`` maps, min-max renormalised per image.

    Maps are folded in one at a time so that only two full-size arrays live at once.
    """
    total = None
    for cams in maps:
        total = np.array(cams, dtype=np.float32) if total is None else _COMBINE[mode](total, cams, out=total)
    if total is None:
        raise ValueError("fuse: no maps to combine")
    return minmax(total)  # for "mean" the sum suffices: min-max removes the 1/count factor


@POSTPROCESSORS.register("cam_fusion", label="CAM fusion")
class CamFusion:
    """CAM fusion: mean or max of Grad-CAMs from several layers (paper: ViT blocks 8, 9, 11, 12).

    Recomputes CAMs from the network, so it replaces the incoming CAMs: put it first in a chain.
    Layers are module paths inside the backbone; negative block indices keep the defaults valid
    for ViTs of 5 blocks or more (-5, -4, -2, -1 are blocks 8, 9, 11, 12 of a 12-block ViT-B).

    Args:
        layers: Module paths of the layers whose Grad-CAMs are fused.
        mode: "mean" or "max".
    """

    reads = ()  # its CAMs come from the network anew, not from the state
    writes = ("cams", "mask")

    def __init__(
        self,
        layers: list = ["blocks.-5", "blocks.-4", "blocks.-2", "blocks.-1"],  # noqa: B006  (copied, never mutated)
        mode: Literal["mean", "max"] = "mean",
    ) -> None:
        if not layers or not all(isinstance(layer, str) for layer in layers):
            raise ValueError(f"cam_fusion: layers must be a non-empty list of module paths, got {layers!r}")
        self.cam_layers = tuple(layers)  # the harness checks them against the CAM network before training
        self.mode = mode

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        return state.with_(cams=fuse((ctx.cams(layer=layer) for layer in self.cam_layers), self.mode), mask=None)
