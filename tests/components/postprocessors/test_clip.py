"""Tests of the ``clip`` post-processor (random open_clip weights; ViT-S-32 is the cheapest supported ViT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ablate import POSTPROCESSORS, PostState, RegistryError, minmax
from ablate.components.postprocessors.clip import Clip, combine

MODEL = "ViT-S-32"
FAST = {"model": MODEL, "prompts": ["smoke"], "negative_prompts": ["sky"]}  # few prompts: cheaper text encoding


@pytest.fixture(scope="module")
def state() -> PostState:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    cams = rng.random((2, 64, 48)).astype(np.float32)
    return PostState(images, cams, mask=np.ones((2, 64, 48), dtype=bool))


@pytest.fixture(scope="module")
def clip() -> Clip:
    return Clip(**FAST)  # built on first call, then reused by every test of this module


def test_output_replaces_cams_in_unit_range_and_drops_stale_mask(clip, state, fake_context):
    out = clip(state, fake_context())
    assert out.cams.shape == state.cams.shape and out.cams.dtype == np.float32
    assert out.cams.min() == 0.0 and out.cams.max() == pytest.approx(1.0)
    assert out.mask is None
    assert out.images is state.images


def test_probability_is_a_pixel_map_in_unit_range(clip, state, fake_context):
    prob = clip.probability(state.images, fake_context())
    assert prob.shape == state.cams.shape
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    assert prob.std() > 0  # random weights still give a spatially varying map


def test_each_combine_mode_applies_its_formula_to_the_probability_map(clip, state, fake_context):
    ctx = fake_context()
    prob = clip.probability(state.images, ctx)
    cams = state.cams
    expected = {
        "multiply": minmax(cams * prob),
        "average": minmax((cams + prob) / 2),
        "gate": minmax(np.where(prob >= 0.5, cams, 0.0)),
    }
    for mode, want in expected.items():
        step = Clip(**FAST, combine=mode, gate_threshold=0.5)
        np.testing.assert_allclose(step(state, ctx).cams, want, atol=1e-6)
    assert ctx.builds == 1  # the similarity map is shared by modes: only one model ever ran


def test_combine_by_hand():
    cams = np.array([[[0.0, 0.5], [1.0, 0.2]]], dtype=np.float32)
    prob = np.array([[[1.0, 0.4], [0.5, 0.8]]], dtype=np.float32)
    np.testing.assert_allclose(combine(cams, prob, "multiply", 0.5), [[[0.0, 0.4], [1.0, 0.32]]], atol=1e-6)
    # (cam + p) / 2 = [0.5, 0.45, 0.75, 0.5] -> min-max over [0.45, 0.75]
    np.testing.assert_allclose(combine(cams, prob, "average", 0.5), [[[1 / 6, 0.0], [1.0, 1 / 6]]], atol=1e-6)
    np.testing.assert_allclose(combine(cams, prob, "gate", 0.5), [[[0.0, 0.0], [1.0, 0.2]]], atol=1e-6)
    np.testing.assert_array_equal(combine(cams, prob, "gate", 0.9), np.zeros_like(cams))  # nothing passes the gate


def test_checkpoint_round_trip_gives_identical_output(clip, state, fake_context, tmp_path):
    want = clip.probability(state.images, fake_context(seed=0))
    path = tmp_path / "clip.pt"
    torch.save(clip._net.state_dict(), path)
    # Another seed would give other random weights: equality shows the checkpoint was loaded.
    got = Clip(**FAST, checkpoint=str(path)).probability(state.images, fake_context(seed=1))
    np.testing.assert_allclose(got, want, atol=1e-6)
    other = Clip(**FAST).probability(state.images, fake_context(seed=1))
    assert not np.allclose(other, want, atol=1e-3)


def test_missing_checkpoint_fails_at_creation_naming_the_path(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(ValueError, match=f"checkpoint '{path}' does not exist"):
        Clip(**FAST, checkpoint=str(path))


@pytest.mark.parametrize(
    "content",
    [{"not.a.clip.key": torch.zeros(3)}, [1, 2, 3], "garbage-bytes"],
    ids=["wrong-keys", "not-a-dict", "not-torch"],
)
def test_bad_checkpoint_fails_with_one_line_naming_the_path(content, state, fake_context, tmp_path: Path):
    path = tmp_path / "bad.pt"
    if content == "garbage-bytes":
        path.write_bytes(b"this is not a torch file")
    else:
        torch.save(content, path)
    step = Clip(**FAST, checkpoint=str(path))
    with pytest.raises(ValueError, match=f"cannot load checkpoint '{path}' into '{MODEL}'") as info:
        step(state, fake_context())
    assert "\n" not in str(info.value)


def test_mismatched_shapes_fail_naming_the_path(clip, state, fake_context, tmp_path):
    clip.probability(state.images, fake_context())
    weights = clip._net.state_dict()
    weights["visual.proj"] = torch.zeros(7, 7)
    path = tmp_path / "shapes.pt"
    torch.save(weights, path)
    with pytest.raises(ValueError, match=f"'{path}'.*size mismatch"):
        Clip(**FAST, checkpoint=str(path))(state, fake_context())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"combine": "max"}, "'combine' of postprocessors 'clip': expected one of multiply, average, gate, got 'max'"),
        ({"model": "ViT-B-61"}, r"not a supported open_clip ViT \(did you mean 'ViT-B-16'\?\)"),
        ({"model": "RN50"}, "'RN50' is not a supported open_clip ViT"),
        ({"negative_prompts": []}, "negative_prompts must be a non-empty list"),
        ({"gate_threshold": 1.5}, r"'gate_threshold' of postprocessors 'clip': expected float in \[0, 1\], got 1.5"),
        ({"temperature": 0.0}, "'temperature' of postprocessors 'clip': expected float > 0 or null, got 0.0"),
        ({"batch_size": 0}, "'batch_size' of postprocessors 'clip': expected int >= 1, got 0"),
    ],
)
def test_bad_parameters_fail_at_creation(params, message):
    with pytest.raises((ValueError, RegistryError), match=message):  # bounds: the registry; the rest: the factory
        POSTPROCESSORS.create("clip", **params)


def test_registered_with_its_parameters():
    entry = POSTPROCESSORS.get("clip")
    assert entry.factory is Clip and entry.description
    assert entry.param("model").default == "ViT-B-16" and entry.param("checkpoint").default is None
    assert not POSTPROCESSORS.check_params("clip", {"model": MODEL, "combine": "gate", "gate_threshold": 0.4})
