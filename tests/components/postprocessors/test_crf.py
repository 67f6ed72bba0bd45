import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
from pydensecrf.utils import unary_from_softmax
from scipy.ndimage import gaussian_filter

from ablate import POSTPROCESSORS, PostState
from ablate.components.postprocessors import crf  # noqa: F401  (registers "crf")

SQUARES = [(slice(5, 13), slice(6, 16)), (slice(4, 12), slice(3, 11))]


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    """Two 20x24 images, a bright square on a dark noisy background; CAMs that blur and shift the square."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 10, (2, 20, 24, 3)).astype(np.uint8)
    cams = np.zeros((2, 20, 24), np.float32)
    for k, square in enumerate(SQUARES):
        images[k][square] += 180
        cams[k][square] = 1.0
        cams[k] = gaussian_filter(np.roll(cams[k], (2, 2), axis=(0, 1)), 1.5)
    return images, cams / cams.max(axis=(1, 2), keepdims=True)


def _direct(image, cam, iterations, gsxy, gcompat, bsxy, bsrgb, bcompat, power):
    """The same CRF written out with pydensecrf, independently of components.postprocessors.crf."""
    h, w = cam.shape
    probs = np.stack([(1 - cam) ** power, cam]).astype(np.float32)
    probs = probs / probs.sum(axis=0)
    d = dcrf.DenseCRF2D(w, h, 2)
    d.setUnaryEnergy(unary_from_softmax(probs))
    d.addPairwiseGaussian(sxy=gsxy, compat=gcompat)
    d.addPairwiseBilateral(sxy=bsxy, srgb=bsrgb, rgbim=image.copy(order="C"), compat=bcompat)
    q = np.array(d.inference(iterations)).reshape(2, h, w)
    return q[1], np.argmax(q, axis=0) == 1


@pytest.mark.parametrize(
    ("params", "direct_args"),
    [
        ({}, (5, 3, 5, 60, 5, 15, 48)),  # the paper's defaults
        (
            {"iterations": 2, "gaussian_sxy": 2.0, "bilateral_srgb": 20.0, "bilateral_compat": 4.0, "bg_power": 4.0},
            (2, 2, 5, 60, 20, 4, 4),
        ),
    ],
)
def test_matches_a_direct_pydensecrf_call(fake_context, params, direct_args):
    images, cams = _inputs()
    out = POSTPROCESSORS.create("crf", **params)(PostState(images, cams), fake_context())
    for k in range(len(images)):
        posterior, mask = _direct(images[k], cams[k], *direct_args)
        np.testing.assert_array_equal(out.mask[k], mask)
        np.testing.assert_allclose(out.cams[k], posterior, rtol=1e-5, atol=1e-6)
    assert out.mask.dtype == bool and out.cams.dtype == np.float32
    assert out.mask.any() and not out.mask.all()


def test_crf_snaps_to_the_bright_squares(fake_context):
    images, cams = _inputs()
    out = POSTPROCESSORS.create("crf")(PostState(images, cams), fake_context())
    for k, square in enumerate(SQUARES):
        truth = np.zeros((20, 24), bool)
        truth[square] = True
        before = cams[k] >= 0.3
        assert (before & truth).sum() / (before | truth).sum() < 0.6  # the shifted CAM is off ...
        np.testing.assert_array_equal(out.mask[k], truth)  # ... and the CRF recovers it exactly
