"""Projections and the transfer loss that uses them: shapes, 'none', and resampling to the teacher grid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ablate import PROJECTIONS
from ablate.config._schema import TransferConfig
from ablate.pipeline._transfer import TransferLoss


def _transfer(projection: str | dict, level: str = "global", distance: str = "l2") -> TransferConfig:
    spec = {"name": projection} if isinstance(projection, str) else projection
    return TransferConfig(lambda_=1.0, projection=spec, level={"name": level}, distance={"name": distance})


def test_none_returns_none() -> None:
    assert PROJECTIONS.create("none", in_channels=4, out_channels=4) is None
    assert PROJECTIONS.create("none", in_channels=64, out_channels=2) is None  # the caller rejects the mismatch


def test_conv_maps_channels_per_location() -> None:
    conv = PROJECTIONS.create("conv", in_channels=64, out_channels=2)
    x = torch.randn(3, 64, 5, 7)
    out = conv(x)
    assert out.shape == (3, 2, 5, 7) and sum(p.numel() for p in conv.parameters()) == 64 * 2 + 2
    # a 1x1 conv: location (i, j) only depends on the input at (i, j)
    torch.testing.assert_close(out[:, :, 1, 2], x[:, :, 1, 2] @ conv.weight[:, :, 0, 0].T + conv.bias)


def test_mlp_shapes_and_hidden_width() -> None:
    mlp = PROJECTIONS.create("mlp", in_channels=64, out_channels=2, hidden=8)
    assert mlp(torch.randn(3, 64, 5, 7)).shape == (3, 2, 5, 7)
    assert sum(p.numel() for p in mlp.parameters()) == (64 * 8 + 8) + (8 * 2 + 2)
    assert PROJECTIONS.get("mlp").param("hidden").default == 256


def test_transfer_loss_rejects_none_with_mismatched_channels() -> None:
    with pytest.raises(ValueError, match=r"^transfer\.projection: 'none' learns no mapping, .* 64 channels .* 2;"):
        TransferLoss(_transfer("none"), student_channels=64, teacher_channels=2)


def test_transfer_loss_resamples_the_student_grid_to_the_teacher_grid() -> None:
    loss = TransferLoss(_transfer("none"), student_channels=1, teacher_channels=1)
    assert loss.projection is None
    # a constant student map stays constant when upsampled: global l2 against a constant teacher is the norm
    # of sixteen differences of 2, sqrt(16 * 2^2)
    assert loss(torch.ones(2, 1, 2, 2), torch.full((2, 1, 4, 4), 3.0)).item() == pytest.approx(8.0)

    seen = []
    loss.level = lambda s, t, d: seen.append((s, t)) or torch.zeros(())
    student, teacher = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 8, 8)
    loss(student, teacher)
    expected = F.interpolate(student, size=(8, 8), mode="bilinear", align_corners=False).flatten(2)
    ((s, t),) = seen
    assert s.shape == t.shape == (2, 1, 64)
    torch.testing.assert_close(s, expected)
    torch.testing.assert_close(t, teacher.flatten(2))


def test_transfer_loss_projects_then_resamples() -> None:
    torch.manual_seed(0)
    loss = TransferLoss(_transfer("conv", level="spatial", distance="cosine"), student_channels=6, teacher_channels=2)
    seen = []
    loss.level = lambda s, t, d: seen.append(s.shape) or torch.zeros(())
    loss(torch.randn(2, 6, 4, 4), torch.randn(2, 2, 8, 8))
    assert seen == [(2, 2, 64)]
    # the projection is trainable with the loss
    assert [p.shape for p in loss.parameters()] == [(2, 6, 1, 1), (2,)]


def test_transfer_loss_same_grid_is_not_resampled() -> None:
    loss = TransferLoss(_transfer("none", distance="l1"), student_channels=2, teacher_channels=2)
    student = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # [1, 2, 1, 2]
    teacher = torch.zeros(1, 2, 1, 2)
    assert loss(student, teacher).item() == pytest.approx((1 + 2 + 3 + 4) / 4)
