"""Cosine distance."""

import torch
import torch.nn.functional as F

from ablate import DISTANCES


@DISTANCES.register("cosine")
def cosine():
    """1 - cosine similarity per vector (the paper's best distance)."""

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)

    return distance
