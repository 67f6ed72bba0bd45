"""The head's class map as CAM."""

import torch

from ablate import CAMS


@CAMS.register("class_map")
def class_map(target_class: int = 1):
    """The head's own class map for the smoke class (classic CAM; ignores the layer setting)."""

    def method(network, images: torch.Tensor, layer: str | None) -> torch.Tensor:
        with torch.no_grad():
            return network(images).class_map[:, target_class]

    return method
