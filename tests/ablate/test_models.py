"""Networks: logits are the global average of the map the head classifies from."""

from __future__ import annotations

import torch
from torch import nn

from ablate import Network


class _Head(nn.Module):
    """The features as the class map; ``refining``: also a refined map (ten times it), as a head may return."""

    def __init__(self, refining: bool) -> None:
        super().__init__()
        self.refining = refining

    def forward(self, features: torch.Tensor, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return (features * 10, features) if self.refining else features


def test_logits_pool_the_class_map() -> None:
    features = torch.arange(8.0).view(1, 2, 2, 2)
    output = Network(nn.Identity(), _Head(refining=False), "class_map")(features)
    assert output.logits.tolist() == [[1.5, 5.5]]
    assert output.class_map is output.features


def test_a_refining_head_is_classified_from_its_logit_map() -> None:
    features = torch.arange(8.0).view(1, 2, 2, 2)
    output = Network(nn.Identity(), _Head(refining=True), "class_map")(features)
    assert output.logits.tolist() == [[1.5, 5.5]]
    torch.testing.assert_close(output.class_map, features * 10)
