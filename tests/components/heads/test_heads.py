"""Heads: the CAM head is a 1x1 convolution; the PCM head refines it with pixel correlations and classifies
from the unrefined map."""

from __future__ import annotations

import torch
from torch import nn

from ablate import HEADS, Network


def test_cam_head_is_a_1x1_convolution() -> None:
    torch.manual_seed(0)
    head = HEADS.create("cam", in_channels=5, num_classes=2)
    features = torch.randn(3, 5, 4, 6)
    weight, bias = head.classifier.weight[:, :, 0, 0], head.classifier.bias  # [2, 5], [2]
    expected = torch.einsum("bchw,kc->bkhw", features, weight) + bias.view(1, 2, 1, 1)
    out = head(features, torch.randn(3, 3, 32, 48))
    assert out.shape == (3, 2, 4, 6)
    torch.testing.assert_close(out, expected)


def test_cam_head_by_hand() -> None:
    head = HEADS.create("cam", in_channels=2, num_classes=2)
    with torch.no_grad():
        head.classifier.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 0.5]]).view(2, 2, 1, 1))
        head.classifier.bias.copy_(torch.tensor([0.0, 1.0]))
    features = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    # class 0: 1*3 + 2*4 + 0 = 11; class 1: -3 + 2 + 1 = 0
    assert head(features, torch.zeros(1, 3, 8, 8)).flatten().tolist() == [11.0, 0.0]


def test_pcm_output_shape_and_params() -> None:
    head = HEADS.create("pcm", in_channels=16, num_classes=2, embed_channels=8)
    assert head.embed.weight.shape == (8, 16 + 3, 1, 1)  # features plus the image colour
    refined, logit_map = head(torch.randn(2, 16, 5, 7), torch.randn(2, 3, 40, 56))
    assert refined.shape == logit_map.shape == (2, 2, 5, 7) and torch.isfinite(refined).all()


def test_pcm_with_identical_embeddings_averages_the_class_map() -> None:
    torch.manual_seed(0)
    head = HEADS.create("pcm", in_channels=4, num_classes=2, embed_channels=3)
    with torch.no_grad():
        head.embed.weight[:, :4] = 0  # the embedding ignores the features ...
        head.embed.weight[:, 4:] = 1  # ... and sees only the colour, the same everywhere in a uniform image
    features = torch.randn(2, 4, 3, 3)
    images = torch.full((2, 3, 24, 24), 0.5)
    class_map = head.classifier(features)
    # every affinity is relu(cos 1) = 1; each column is divided by its sum 9 (+1e-5): a plain mean of 9 locations
    mean = class_map.mean(dim=(2, 3), keepdim=True) * 9 / (9 + 1e-5)
    out, logit_map = head(features, images)
    torch.testing.assert_close(out, mean.expand(2, 2, 3, 3))
    torch.testing.assert_close(logit_map, class_map)  # the logits pool the unrefined map
    assert class_map.std() > 0.1  # the class map itself was not flat


def test_pcm_with_orthogonal_embeddings_keeps_the_class_map() -> None:
    head = HEADS.create("pcm", in_channels=2, num_classes=2, embed_channels=2)
    with torch.no_grad():
        head.embed.weight.zero_()
        head.embed.weight[0, 0] = head.embed.weight[1, 1] = 1  # embedding = the two feature channels
    # location 0 has features [1, 0], location 1 [0, 1]: orthogonal, so each only correlates with itself
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    class_map = head.classifier(features)
    out, _ = head(features, torch.zeros(1, 3, 4, 8))
    torch.testing.assert_close(out, class_map / (1 + 1e-5))


def test_pcm_classification_loss_leaves_the_correlation_embedding_alone() -> None:
    # trained through the pooled refined map, the affinities learned to spread the smoke score over the whole
    # image (its class map localised smoke at IoU 0.18 against 0.49 for its unrefined map); SEAM classifies from
    # the unrefined CAM too
    torch.manual_seed(0)
    backbone = nn.Conv2d(3, 4, kernel_size=4, stride=4)
    network = Network(backbone, HEADS.create("pcm", in_channels=4, num_classes=2, embed_channels=3), "class_map")
    images = torch.randn(2, 3, 12, 12)
    output = network(images)
    nn.functional.cross_entropy(output.logits, torch.tensor([0, 1])).backward()
    assert network.head.embed.weight.grad is None
    assert network.head.classifier.weight.grad.abs().sum() > 0
    torch.testing.assert_close(output.logits, network.head.classifier(backbone(images)).mean(dim=(2, 3)))
