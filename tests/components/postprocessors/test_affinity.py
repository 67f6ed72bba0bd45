import numpy as np
import pytest
from scipy import sparse

from ablate import POSTPROCESSORS, PostState, RegistryError
from ablate.components.postprocessors.affinity import cosine_affinity, neighbour_pairs, random_walk

# a path 0 - 1 - 2 with self-loops; row sums 1.5, 2, 1.5, so T = [[2/3, 1/3, 0], [1/4, 1/2, 1/4], [0, 1/3, 2/3]]
A = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]])


@pytest.mark.parametrize("matrix", [A, sparse.csr_array(A)], ids=["dense", "sparse"])
def test_random_walk_by_hand(matrix):
    start = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(random_walk(start, matrix, 0), start)
    np.testing.assert_allclose(random_walk(start, matrix, 1), [2 / 3, 1 / 4, 0.0])
    # T @ [2/3, 1/4, 0] = [2/3 * 2/3 + 1/3 * 1/4, 1/4 * 2/3 + 1/2 * 1/4, 1/3 * 1/4]
    np.testing.assert_allclose(random_walk(start, matrix, 2), [4 / 9 + 1 / 12, 1 / 6 + 1 / 8, 1 / 12])


def test_neighbour_pairs_on_a_3x3_grid():
    i, j = neighbour_pairs(3, 3, 1)
    pairs = set(zip(i.tolist(), j.tolist(), strict=True))
    # 9 self-pairs + 12 grid edges in both directions; diagonals are farther than radius 1
    assert len(pairs) == len(i) == 9 + 2 * 12
    assert (0, 1) in pairs and (1, 0) in pairs and (0, 3) in pairs and (0, 4) not in pairs
    assert len(neighbour_pairs(3, 3, 2)[0]) > len(i)


def test_cosine_affinity():
    features = np.array([[[1.0, 0.0, -1.0]], [[0.0, 2.0, 0.0]]])  # [C=2, h=1, w=3]
    np.testing.assert_allclose(cosine_affinity(features, np.array([0, 0, 0, 1]), np.array([0, 1, 2, 1])), [1, 0, 0, 1])


def _two_regions() -> tuple[PostState, np.ndarray]:
    """32x32 image whose 8x8 feature grid has two orthogonal regions (left, right); a CAM spot on the left."""
    features = np.zeros((1, 4, 8, 8), np.float32)
    features[0, 0, :, :4] = 1.0
    features[0, 1, :, 4:] = 1.0
    features += np.random.default_rng(0).normal(0, 0.05, features.shape).astype(np.float32)
    cams = np.zeros((1, 32, 32), np.float32)
    cams[0, 12:20, 4:12] = 1.0  # a spot well inside the left region
    return PostState(np.zeros((1, 32, 32, 3), np.uint8), cams, np.zeros((1, 32, 32), bool)), features


def test_spreads_inside_a_region_but_not_across_its_boundary(fake_context):
    state, features = _two_regions()
    out = POSTPROCESSORS.create("affinity", radius=2, n_steps=8)(state, fake_context(features=features))
    left, right = out.cams[0, :, :12], out.cams[0, :, 20:]  # away from the bilinear seam at column 16
    assert (left >= 0.3).mean() > 2 * (state.cams[0, :, :12] >= 0.3).mean()  # coverage grew
    assert right.max() < 1e-3  # nothing leaks into the dissimilar region
    assert out.cams.shape == state.cams.shape and out.cams.dtype == np.float32
    assert out.cams.min() == 0.0 and out.cams.max() == pytest.approx(1.0)
    assert out.mask is None  # the old mask no longer matches the propagated CAMs


def test_defaults_and_validation():
    entry = POSTPROCESSORS.get("affinity")
    assert {p.name: p.default for p in entry.params} == {"radius": 5, "beta": 16.0, "n_steps": 8}
    with pytest.raises(RegistryError, match="'radius' of postprocessors 'affinity': expected int >= 1, got 0$"):
        POSTPROCESSORS.create("affinity", radius=0)
