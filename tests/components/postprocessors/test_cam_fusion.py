import numpy as np
import pytest

from ablate import POSTPROCESSORS, PostState, RegistryError
from ablate.components.postprocessors import cam_fusion  # noqa: F401  (registers "cam_fusion")

# three layers' CAMs for one 1x3 image
LAYERS = {"a": [0.0, 0.5, 1.0], "b": [0.2, 0.3, 0.0], "c": [0.1, 0.9, 0.2]}


def _fuse(fake_context, **params) -> tuple[np.ndarray, list]:
    ctx = fake_context(cams={(1.0, False, k): np.array([[v]], np.float32) for k, v in LAYERS.items()})
    state = PostState(np.zeros((1, 1, 3, 3), np.uint8), np.zeros((1, 1, 3), np.float32), np.ones((1, 1, 3), bool))
    out = POSTPROCESSORS.create("cam_fusion", layers=list(LAYERS), **params)(state, ctx)
    assert out.mask is None  # the old mask no longer matches the fused CAMs
    return out.cams[0, 0], ctx.cam_calls


def test_mean(fake_context):
    cams, calls = _fuse(fake_context, mode="mean")
    # mean = [0.1, 1.7/3, 0.4]; min-max -> [0, 1, 0.3 / (1.4/3)]
    np.testing.assert_allclose(cams, [0.0, 1.0, 0.9 / 1.4], atol=1e-6)
    assert calls == [(1.0, False, "a"), (1.0, False, "b"), (1.0, False, "c")]


def test_max(fake_context):
    cams, _ = _fuse(fake_context, mode="max")
    # max = [0.2, 0.9, 1.0]; min-max -> [0, 0.7/0.8, 1]
    np.testing.assert_allclose(cams, [0.0, 0.875, 1.0], atol=1e-6)


def test_defaults_are_the_papers_blocks():
    entry = POSTPROCESSORS.get("cam_fusion")
    assert entry.param("layers").default == ["blocks.-5", "blocks.-4", "blocks.-2", "blocks.-1"]
    assert entry.param("mode").default == "mean"


def test_bad_mode_rejected():
    with pytest.raises(RegistryError, match=r"'cam_fusion': expected one of mean, max, got 'median'$"):
        POSTPROCESSORS.create("cam_fusion", mode="median")


def test_empty_layers_rejected():
    with pytest.raises(ValueError, match="layers must be a non-empty list"):
        POSTPROCESSORS.create("cam_fusion", layers=[])
