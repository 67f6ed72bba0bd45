import numpy as np
import pytest

from ablate import POSTPROCESSORS, PostState, RegistryError
from ablate.components.postprocessors.bg_power import background_score


def _mask(cams: list[float], **params) -> np.ndarray:
    cams = np.array([[cams]], dtype=np.float32)
    state = PostState(images=np.zeros((*cams.shape, 3), np.uint8), cams=cams)
    out = POSTPROCESSORS.create("bg_power", **params)(state, None)
    assert out.cams is state.cams
    return out.mask[0, 0]


def test_background_score_by_hand():
    np.testing.assert_allclose(background_score(np.array([0.0, 0.5, 0.8, 1.0]), 2), [1.0, 0.25, 0.04, 0.0])


def test_alpha_2_by_hand():
    # bg = (1 - c)^2: 0.4 -> 0.36 (smoke), 0.38 -> 0.3844 (not), 0.1 -> 0.81 (not)
    np.testing.assert_array_equal(_mask([0.4, 0.38, 0.1], alpha=2.0), [True, False, False])


def test_tie_is_background():
    np.testing.assert_array_equal(_mask([0.5, 0.51], alpha=1.0), [False, True])


def test_default_alpha_48_by_hand():
    # 0.94^48 = 0.0513 < 0.06 (smoke); 0.945^48 = 0.0662 > 0.055 (not smoke)
    assert POSTPROCESSORS.get("bg_power").param("alpha").default == 48.0
    np.testing.assert_array_equal(_mask([0.06, 0.055]), [True, False])


def test_non_positive_alpha_rejected():
    with pytest.raises(RegistryError, match="'alpha' of postprocessors 'bg_power': expected float > 0, got 0.0$"):
        POSTPROCESSORS.create("bg_power", alpha=0.0)
