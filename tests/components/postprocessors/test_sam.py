"""Tests of the ``sam`` post-processor: the pure selection rule and the tiny random SAM end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ablate import POSTPROCESSORS, PostState, RegistryError
from ablate.components.postprocessors.sam import SamSelect, build_tiny_sam, select_masks


def _box(top: int, left: int, height: int, width: int, size: int = 10) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + height, left : left + width] = True
    return mask


@pytest.fixture(scope="module")
def state() -> PostState:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    cams = np.stack([np.exp(-((yy - c) ** 2 + (xx - c) ** 2) / 200.0) for c in (20, 40)]).astype(np.float32)
    return PostState(images, cams)


@pytest.fixture(scope="module")
def permissive() -> SamSelect:
    """Tiny random SAM whose own filters keep every mask, so the selection actually sees candidates.

    A 4x4 point grid: SAM's RLE encoding of noisy random masks is slow.
    """
    return SamSelect(model_type="tiny", points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)


def test_select_keeps_overlapping_masks_and_ors_them_with_the_seed():
    seed = _box(0, 0, 4, 4)
    grow = _box(2, 2, 4, 4)  # IoU 4 / 28 with the seed
    wide = _box(0, 0, 4, 8)  # IoU 16 / 32 = 0.5
    out = select_masks(seed, [grow, wide], max_area=0.5, iou_threshold=0.3)
    np.testing.assert_array_equal(out, seed | wide)
    np.testing.assert_array_equal(select_masks(seed, [grow, wide], 0.5, 0.1), seed | grow | wide)


def test_select_iou_must_exceed_the_threshold():
    seed, wide = _box(0, 0, 4, 4), _box(0, 0, 4, 8)  # IoU exactly 0.5
    np.testing.assert_array_equal(select_masks(seed, [wide], 1.0, 0.5), seed)
    np.testing.assert_array_equal(select_masks(seed, [wide], 1.0, 0.49), wide)


def test_select_drops_masks_larger_than_max_area():
    seed, big = _box(0, 0, 10, 6), _box(0, 0, 10, 7)  # 70 % of the image, IoU 60 / 70
    np.testing.assert_array_equal(select_masks(seed, [big], max_area=0.5, iou_threshold=0.3), seed)
    np.testing.assert_array_equal(select_masks(seed, [big], max_area=0.7, iou_threshold=0.3), big)


def test_select_falls_back_to_the_seed():
    seed = _box(0, 0, 4, 4)
    out = select_masks(seed, [], 0.5, 0.3)
    np.testing.assert_array_equal(out, seed)
    assert out is not seed
    empty = np.zeros_like(seed)
    np.testing.assert_array_equal(select_masks(empty, [_box(5, 5, 3, 3), empty], 0.5, 0.0), empty)


def test_tiny_sam_runs_end_to_end_and_matches_the_selection_rule(permissive, state, fake_context, monkeypatch):
    seen: list[list[np.ndarray]] = []
    generate = permissive.masks
    monkeypatch.setattr(permissive, "masks", lambda image, ctx: seen.append(generate(image, ctx)) or seen[-1])
    out = permissive(state, fake_context())
    assert out.mask.shape == state.cams.shape and out.mask.dtype == bool
    np.testing.assert_array_equal(out.cams, state.cams)
    for candidates, cam, mask in zip(seen, state.cams, out.mask, strict=True):
        assert candidates and all(c.shape == cam.shape for c in candidates)
        np.testing.assert_array_equal(mask, select_masks(cam >= 0.3, candidates, 0.5, 0.3))


def test_an_earlier_mask_is_the_seed(permissive, state, fake_context, monkeypatch):
    earlier = np.zeros(state.cams.shape, dtype=bool)
    earlier[:, 50:, 50:] = True
    monkeypatch.setattr(permissive, "iou_threshold", 1.0)  # no IoU exceeds 1: the result is exactly the seed
    np.testing.assert_array_equal(permissive(state.with_(mask=earlier), fake_context()).mask, earlier)


def test_default_filters_on_random_weights_still_give_a_mask(state, fake_context):
    out = SamSelect(model_type="tiny")(state, fake_context())
    assert (out.mask >= (state.cams >= 0.3)).all()  # whatever SAM keeps, the seed stays


def test_tiny_checkpoint_round_trip(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(SamSelect(model_type="tiny").build(seed=0).state_dict(), path)
    loaded = SamSelect(model_type="tiny", checkpoint=str(path)).build(seed=1).state_dict()
    other = SamSelect(model_type="tiny").build(seed=1).state_dict()
    saved = torch.load(path, weights_only=True)
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert not all(torch.equal(other[k], saved[k]) for k in saved)


def test_missing_checkpoint_fails_at_creation_naming_the_path(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(ValueError, match=f"checkpoint '{path}' does not exist"):
        SamSelect(checkpoint=str(path))


def _shape_mismatch() -> dict[str, torch.Tensor]:
    weights = build_tiny_sam().state_dict()
    weights["mask_decoder.iou_token.weight"] = torch.zeros(2, 2)
    return weights


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ({"image_encoder.nope": torch.zeros(1)}, "Missing key"),
        ([1, 2], "expected a state dict"),
        (None, "UnpicklingError|RuntimeError"),
        ("shapes", "size mismatch"),
    ],
    ids=["wrong-keys", "not-a-dict", "not-torch", "wrong-shapes"],
)
def test_bad_checkpoint_fails_with_one_line_naming_the_path(content, detail, tmp_path):
    path = tmp_path / "bad.pth"
    if content is None:
        path.write_bytes(b"not a torch file")
    else:
        torch.save(_shape_mismatch() if content == "shapes" else content, path)
    with pytest.raises(ValueError, match=f"cannot load checkpoint '{path}' into 'tiny': .*({detail})") as info:
        SamSelect(model_type="tiny", checkpoint=str(path)).build(seed=0)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model_type": "vit_s"}, "'model_type' of postprocessors 'sam': expected one of tiny, vit_b, vit_l, vit_h"),
        ({"max_area": 2.0}, r"'max_area' of postprocessors 'sam': expected float in \[0, 1\], got 2.0"),
        ({"points_per_side": 0}, "'points_per_side' of postprocessors 'sam': expected int >= 1, got 0"),
    ],
)
def test_bad_parameters_fail_at_creation(params, message):
    with pytest.raises(RegistryError, match=message):
        POSTPROCESSORS.create("sam", **params)


def test_registered_with_its_parameters():
    entry = POSTPROCESSORS.get("sam")
    assert entry.factory is SamSelect and entry.description
    assert entry.param("model_type").default == "vit_b" and entry.param("points_per_side").default == 8
