"""CAM methods (Grad-CAM, the head's class map) and the harness's per-image normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ablate import BACKBONES, CAMS, HEADS
from ablate.pipeline._cams import normalise
from ablate.pipeline._models import Network


def _network(model: str, head: str = "cam", **model_args: int) -> Network:
    torch.manual_seed(0)
    backbone = BACKBONES.create("timm", model=model, model_args=model_args)
    return Network(backbone, HEADS.create(head, in_channels=backbone.out_channels, num_classes=2), "features").eval()


@pytest.fixture(scope="module")
def vit() -> Network:
    return _network("test_vit", patch_size=8)


def test_gradcam_on_a_frozen_vit_still_produces_maps(vit: Network) -> None:
    vit.requires_grad_(False)
    images = torch.randn(2, 3, 64, 64)
    maps = CAMS.create("gradcam")(vit, images, None)
    assert maps.shape == (2, 8, 8) and torch.isfinite(maps).all()
    assert maps.abs().amax(dim=(1, 2)).min() > 0  # every image has a non-trivial map
    assert not any(p.requires_grad for p in vit.parameters())  # still frozen
    assert not images.requires_grad and images.grad is None  # the caller's tensor is untouched


def test_gradcam_layer_choice_changes_the_map(vit: Network) -> None:
    images = torch.randn(1, 3, 64, 64)
    gradcam = CAMS.create("gradcam")
    last = gradcam(vit, images, None)
    torch.testing.assert_close(gradcam(vit, images, "blocks.-1.norm1"), last)
    early = gradcam(vit, images, "blocks.0.norm1")
    assert early.shape == (1, 8, 8) and not torch.allclose(early, last)


def test_gradcam_on_a_cnn_feature_map_is_the_class_map_without_bias() -> None:
    # CNN + 1x1 head: the gradient of the pooled class-1 logit w.r.t. feature channel c is w1[c] / (h*w) at every
    # location, so Grad-CAM = sum_c w1[c] / (h*w) * A_c = (class_map_1 - bias_1) / (h*w)
    network = _network("test_resnet", output_stride=8).requires_grad_(False)
    images = torch.randn(2, 3, 64, 64)
    maps = CAMS.create("gradcam")(network, images, None)
    with torch.no_grad():
        class_map = network(images).class_map[:, 1]
    expected = (class_map - network.head.classifier.bias[1]) / 64
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-6)
    target0 = CAMS.create("gradcam", target_class=0)(network, images, None)
    with torch.no_grad():
        background = network(images).class_map[:, 0]
    torch.testing.assert_close(target0, (background - network.head.classifier.bias[0]) / 64, rtol=1e-4, atol=1e-6)


def test_class_map_equals_head_output_channel_1(vit: Network) -> None:
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = vit(images).class_map
    torch.testing.assert_close(CAMS.create("class_map")(vit, images, "ignored"), out[:, 1])
    torch.testing.assert_close(CAMS.create("class_map", target_class=0)(vit, images, None), out[:, 0])


def test_normalise_min_max_per_image() -> None:
    maps = torch.tensor(
        [
            [[1.0, 2.0], [3.0, 5.0]],  # min 1, max 5 -> (x - 1) / 4
            [[-1.0, 2.0], [0.0, 4.0]],  # ReLU first: [[0, 2], [0, 4]] -> x / 4
            [[-1.0, -2.0], [0.0, 0.0]],  # ReLU gives all zeros: stays zero
            [[0.0, 0.0], [0.0, 0.0]],
        ]
    )
    out = normalise(maps, (2, 2))
    assert out.tolist() == [
        [[0.0, 0.25], [0.5, 1.0]],
        [[0.0, 0.5], [0.0, 1.0]],
        [[0.0, 0.0], [0.0, 0.0]],
        [[0.0, 0.0], [0.0, 0.0]],
    ]


def test_normalise_upsamples_to_the_image_size() -> None:
    maps = torch.tensor([[[0.0, 2.0], [0.0, 2.0]]])  # left column 0, right column 2
    out = normalise(maps, (4, 6))
    assert out.shape == (1, 4, 6)
    assert out.min().item() == 0.0 and out.max().item() == 1.0
    # bilinear, align_corners=False: the outer columns copy the nearest source column, rows are all equal
    assert out[0, :, 0].tolist() == [0.0] * 4 and out[0, :, -1].tolist() == [1.0] * 4
    assert (out[0] == out[0, :1]).all() and (np.diff(out[0, 0]) >= 0).all()
