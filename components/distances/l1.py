"""L1 distance."""

import torch

from ablate import DISTANCES


@DISTANCES.register("l1", label="L1")
def l1():
    """Mean absolute difference per vector."""

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().mean(dim=-1)

    return distance
