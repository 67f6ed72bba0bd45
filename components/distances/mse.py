"""Mean squared difference: L2's square, averaged, so its scale does not grow with the vector length."""

import torch

from ablate import DISTANCES


@DISTANCES.register("mse", label="MSE")
def mse():
    """Mean squared difference per vector, mean((a - b)^2)."""

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).pow(2).mean(dim=-1)

    return distance
