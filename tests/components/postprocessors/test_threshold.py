import numpy as np
import pytest

from ablate import POSTPROCESSORS, PostState, RegistryError
from ablate.components.postprocessors.threshold import apply_threshold


def _state(cams: np.ndarray) -> PostState:
    cams = np.asarray(cams, dtype=np.float32)
    return PostState(images=np.zeros((*cams.shape, 3), np.uint8), cams=cams)


def test_default_is_the_papers_0_3_and_inclusive(fake_context):
    assert POSTPROCESSORS.get("threshold").param("value").default == 0.3
    at = np.float32(0.3)
    below = np.nextafter(at, np.float32(0))
    state = _state([[[0.0, below, at, 1.0]]])
    out = POSTPROCESSORS.create("threshold")(state, fake_context())
    np.testing.assert_array_equal(out.mask, [[[False, False, True, True]]])
    assert out.cams is state.cams


def test_other_value():
    out = POSTPROCESSORS.create("threshold", value=0.5)(_state([[[0.49, 0.5, 0.51]]]), None)
    np.testing.assert_array_equal(out.mask, [[[False, True, True]]])


def test_per_image_thresholds():
    out = apply_threshold(_state([[[0.2, 0.6]], [[0.2, 0.6]]]), np.array([0.1, 0.7]))
    np.testing.assert_array_equal(out.mask, [[[True, True]], [[False, False]]])


def test_value_out_of_range_rejected():
    with pytest.raises(RegistryError, match=r"'threshold': expected float in \[0, 1\], got 1.5$"):
        POSTPROCESSORS.create("threshold", value=1.5)
