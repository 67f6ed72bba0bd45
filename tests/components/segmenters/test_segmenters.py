"""Every registered segmenter: the contract's shapes, training a step, and local checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

import ablate
from ablate import SEGMENTERS

ablate.load_components()
# the smallest instance of each (DeepLabV3 has no small variant: ResNet-50 at 64 px)
SPECS = {"tiny": {"name": "tiny"}, "fpn": {"name": "fpn", "model": "test_resnet"}, "deeplabv3": {"name": "deeplabv3"}}


def test_every_registered_segmenter_is_covered() -> None:
    assert set(SPECS) == set(SEGMENTERS.names())


@pytest.mark.parametrize("name", sorted(SPECS))
def test_logits_per_class_and_a_training_step(name: str) -> None:
    torch.manual_seed(0)
    model = SEGMENTERS.build(SPECS[name], num_classes=2)
    images = torch.randn(2, 3, 64, 64)
    logits = model(images)
    assert logits.shape[:2] == (2, 2) and 8 <= logits.shape[-1] <= 64
    loss = torch.nn.functional.cross_entropy(logits, torch.zeros(2, *logits.shape[-2:], dtype=torch.long))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_fpn_on_a_vit() -> None:
    model = SEGMENTERS.build({"name": "fpn", "model": "test_vit", "model_args": {"img_size": 64}}, num_classes=2)
    assert model(torch.randn(1, 3, 64, 64)).shape[:2] == (1, 2)


def test_fpn_loads_a_local_timm_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    classifier = timm.create_model("test_resnet")
    torch.save(classifier.state_dict(), tmp_path / "weights.pth")
    spec = {"name": "fpn", "model": "test_resnet", "checkpoint": str(tmp_path / "weights.pth")}
    model = SEGMENTERS.build(spec, num_classes=2)
    assert torch.equal(model.encoder.conv1[0].weight, classifier.conv1[0].weight)


def test_deeplabv3_loads_a_checkpoint_with_another_class_count(tmp_path: Path) -> None:
    torch.manual_seed(2)
    source = SEGMENTERS.build({"name": "deeplabv3"}, num_classes=21)
    torch.save(source.model.state_dict(), tmp_path / "deeplab.pth")
    model = SEGMENTERS.build({"name": "deeplabv3", "checkpoint": str(tmp_path / "deeplab.pth")}, num_classes=2)
    assert torch.equal(model.model.backbone.conv1.weight, source.model.backbone.conv1.weight)
    assert torch.equal(model.model.classifier[0].convs[0][0].weight, source.model.classifier[0].convs[0][0].weight)
    assert model.model.classifier[4].out_channels == 2


def test_deeplabv3_refuses_a_file_that_is_no_resnet(tmp_path: Path) -> None:
    torch.save({"weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="is no DeepLabV3 or ResNet state dict"):
        SEGMENTERS.build({"name": "deeplabv3", "checkpoint": str(tmp_path / "other.pth")}, num_classes=2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SEGMENTERS.build({"name": "deeplabv3", "checkpoint": str(tmp_path / "none.pth")}, num_classes=2)
