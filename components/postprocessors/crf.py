"""Dense CRF refinement of the CAM (Krähenbühl & Koltun, via pydensecrf)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_softmax

from ablate import POSTPROCESSORS, PostContext, PostState, Range
from ablate.components.postprocessors.bg_power import background_score


def dense_crf(
    image: np.ndarray,
    cam: np.ndarray,
    *,
    iterations: int,
    gaussian_sxy: float,
    gaussian_compat: float,
    bilateral_sxy: float,
    bilateral_srgb: float,
    bilateral_compat: float,
    bg_power: float,
) -> np.ndarray:
    """Posterior ``[2, H, W]`` (background, smoke) of a two-label dense CRF on one image.

    Args:
        image: uint8 ``[H, W, 3]``.
        cam: float ``[H, W]`` in [0, 1]; the smoke probability before normalisation.
        iterations: Mean-field iterations.
        gaussian_sxy, gaussian_compat: Appearance-free smoothness kernel.
        bilateral_sxy, bilateral_srgb, bilateral_compat: Colour-sensitive kernel.
        bg_power: Background probability is ``(1 - cam) ** bg_power`` before normalisation.
    """
    height, width = cam.shape
    prob = np.stack([background_score(cam, bg_power), cam]).astype(np.float32)
    prob /= prob.sum(axis=0, keepdims=True)
    crf = dcrf.DenseCRF2D(width, height, 2)
    crf.setUnaryEnergy(unary_from_softmax(prob))
    crf.addPairwiseGaussian(sxy=gaussian_sxy, compat=gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=bilateral_sxy, srgb=bilateral_srgb, rgbim=np.ascontiguousarray(image), compat=bilateral_compat
    )
    return np.asarray(crf.inference(iterations), dtype=np.float32).reshape(2, height, width)


@POSTPROCESSORS.register("crf", label="CRF")
class Crf:
    """Dense CRF: smoke = argmax of the CRF posterior; CAMs become the posterior smoke probability.

    Defaults are the paper's: 5 mean-field iterations, Gaussian kernel sxy=3 compat=5, bilateral
    kernel sxy=60 srgb=5 compat=15, and background probability (1 - cam)^48 against cam.

    Args:
        iterations: Mean-field iterations.
        gaussian_sxy: Spatial standard deviation of the smoothness kernel, in pixels.
        gaussian_compat: Weight of the smoothness kernel.
        bilateral_sxy: Spatial standard deviation of the colour kernel, in pixels.
        bilateral_srgb: Colour standard deviation of the colour kernel, in 0-255 units.
        bilateral_compat: Weight of the colour kernel.
        bg_power: Power sharpening the background probability (1 - cam)^bg_power.
    """

    reads = ("cams",)
    writes = ("cams", "mask")

    def __init__(
        self,
        iterations: Annotated[int, Range(low=1)] = 5,
        gaussian_sxy: float = 3.0,
        gaussian_compat: float = 5.0,
        bilateral_sxy: float = 60.0,
        bilateral_srgb: float = 5.0,
        bilateral_compat: float = 15.0,
        bg_power: float = 48.0,
    ) -> None:
        self.run_one = partial(
            dense_crf,
            iterations=iterations,
            gaussian_sxy=gaussian_sxy,
            gaussian_compat=gaussian_compat,
            bilateral_sxy=bilateral_sxy,
            bilateral_srgb=bilateral_srgb,
            bilateral_compat=bilateral_compat,
            bg_power=bg_power,
        )

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        posterior = np.stack(ctx.map_images(self.run_one, state.images, state.cams))
        # argmax keeps exact ties as background, like the usual np.argmax(Q, axis=0)
        return state.with_(cams=posterior[:, 1], mask=posterior[:, 1] > posterior[:, 0])
