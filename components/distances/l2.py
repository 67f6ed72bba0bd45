"""L2 distance."""

import torch

from ablate._registries import DISTANCES


@DISTANCES.register("l2")
def l2():
    """Mean squared difference per vector (unnormalised: co-training can collapse, as in the paper)."""

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).pow(2).mean(dim=-1)

    return distance
