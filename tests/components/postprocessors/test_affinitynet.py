import numpy as np
import pytest
import torch

from ablate import POSTPROCESSORS, PostState
from ablate.components.postprocessors.affinitynet import learned_affinity


def _blobs(n: int, seed: int, rim: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` 64x64 dark images with a bright 32x32 square each, their CAMs and truth.

    The CAM is 1 on the square's centre and ``rim`` on the rest of the square.
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, (n, 64, 64, 3)).astype(np.uint8)
    cams = np.zeros((n, 64, 64), np.float32)
    truth = np.zeros((n, 64, 64), bool)
    for k in range(n):
        y, x = rng.integers(4, 28, 2)
        images[k, y : y + 32, x : x + 32] += 200
        truth[k, y : y + 32, x : x + 32] = True
        cams[k, y : y + 32, x : x + 32] = rim
        cams[k, y + 8 : y + 24, x + 8 : x + 24] = 1.0
    return images, cams, truth


PARAMS = {"stride": 4, "radius": 2, "epochs": 3, "lr": 0.01}


def _run(fake_context, ctx=None, **params):
    train_images, train_cams, _ = _blobs(8, seed=0, rim=0.3)  # the rim is neither seed: ignored
    images, cams, truth = _blobs(2, seed=1, rim=0.0)
    labels = np.ones(len(train_images), np.int64)  # every blob image shows smoke
    ctx = ctx or fake_context(train=(train_images, labels, train_cams), seed=3)
    out = POSTPROCESSORS.create("affinitynet", **{**PARAMS, **params})(PostState(images, cams), ctx)
    return out, ctx, cams, truth


def test_trains_once_per_setting_and_reuses_the_net(fake_context):
    out, ctx, cams, truth = _run(fake_context)
    assert ctx.builds == 1
    again, _, _, _ = _run(fake_context, ctx)
    np.testing.assert_array_equal(again.cams, out.cams)
    _run(fake_context, ctx, beta=4.0, n_steps=2)  # walk settings only: same net
    assert ctx.builds == 1
    _run(fake_context, ctx, epochs=1)  # a training setting: a new net
    assert ctx.builds == 2

    assert out.cams.shape == cams.shape and out.cams.dtype == np.float32 and out.mask is None
    assert out.cams.min() == 0.0 and out.cams.max() == pytest.approx(1.0)
    # the walk spreads the centre-only CAM over the bright square, little beyond it
    assert ((cams >= 0.3) & truth).sum() / truth.sum() == 0.25
    assert ((out.cams >= 0.3) & truth).sum() / truth.sum() > 0.9
    assert ((out.cams >= 0.3) & ~truth).sum() / (~truth).sum() < 0.3


def test_deterministic_for_a_seed(fake_context):
    weights = []
    for _ in range(2):
        _, ctx, _, _ = _run(fake_context, epochs=1)
        (state_dict,) = ctx.store.values()
        weights.append(state_dict)
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name])


def test_learned_affinity_formula():
    features = np.array([[[0.0, 1.0, 3.0]], [[0.0, 1.0, 1.0]]], np.float32)  # [C=2, h=1, w=3]
    # exp(-mean |f_i - f_j|): (0, 0) -> 1; (0, 1) -> exp(-1); (1, 2) -> exp(-(2 + 0) / 2)
    got = learned_affinity(features, np.array([0, 0, 1]), np.array([0, 1, 2]))
    np.testing.assert_allclose(got, [1.0, np.exp(-1.0), np.exp(-1.0)], rtol=1e-6)


def test_bad_seed_thresholds_rejected():
    with pytest.raises(ValueError, match="bg_threshold < fg_threshold"):
        POSTPROCESSORS.create("affinitynet", fg_threshold=0.1, bg_threshold=0.2)
