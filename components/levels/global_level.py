"""Global alignment level."""

from collections.abc import Callable

import torch

from ablate import LEVELS


@LEVELS.register("global")
def global_level():
    """One C*N vector per image (the paper's best level)."""

    def loss(student: torch.Tensor, teacher: torch.Tensor, distance: Callable) -> torch.Tensor:
        return distance(student.flatten(1), teacher.flatten(1)).mean()

    return loss
