import numpy as np
import pytest

from ablate import POSTPROCESSORS, PostState
from ablate.components.postprocessors import multiscale  # noqa: F401  (registers "multiscale")


def _minmax(x: np.ndarray) -> np.ndarray:
    low, high = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    return (x - low) / (high - low)


def test_averages_every_scale_and_flip_then_renormalises(fake_context):
    rng = np.random.default_rng(0)
    settings = [(0.5, False, None), (0.5, True, None), (2.0, False, None), (2.0, True, None)]
    cams = {s: rng.random((2, 4, 5), dtype=np.float32) for s in settings}
    originals = {s: c.copy() for s, c in cams.items()}
    ctx = fake_context(cams=cams)
    state = PostState(images=np.zeros((2, 4, 5, 3), np.uint8), cams=np.zeros((2, 4, 5), np.float32), mask=None)

    out = POSTPROCESSORS.create("multiscale", scales=[0.5, 2.0], flip=True)(state, ctx)

    assert sorted(ctx.cam_calls) == settings
    expected = _minmax(sum(originals.values()) / 4)
    np.testing.assert_allclose(out.cams, expected, rtol=1e-6, atol=1e-6)
    assert out.cams.dtype == np.float32 and out.mask is None
    for s in settings:  # the context's arrays are not overwritten
        np.testing.assert_array_equal(cams[s], originals[s])


def test_defaults_are_the_papers_scales_without_flip(fake_context):
    cams = {(s, False, None): np.full((1, 2, 2), s, np.float32) + np.eye(2) for s in (0.5, 1.0, 1.5, 2.0)}
    ctx = fake_context(cams=cams)
    POSTPROCESSORS.create("multiscale")(PostState(np.zeros((1, 2, 2, 3), np.uint8), cams[(1.0, False, None)]), ctx)
    assert ctx.cam_calls == [(0.5, False, None), (1.0, False, None), (1.5, False, None), (2.0, False, None)]


def test_bad_scales_rejected():
    with pytest.raises(ValueError, match="scales must be a non-empty list"):
        POSTPROCESSORS.create("multiscale", scales=[])
