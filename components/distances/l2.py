"""L2 distance: the Euclidean norm of the difference, as in the method."""

import torch

from ablate import DISTANCES


@DISTANCES.register("l2", label="L2")
def l2():
    """Euclidean norm of the difference per vector, ||a - b||_2 (unnormalised: co-training can collapse)."""

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(a - b, dim=-1)  # its gradient at a == b is 0, not NaN

    return distance
