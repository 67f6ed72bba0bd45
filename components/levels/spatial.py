"""Spatial alignment level."""

from collections.abc import Callable

import torch

from ablate import LEVELS


@LEVELS.register("spatial")
def spatial():
    """One C-vector per location, distances averaged over locations."""

    def loss(student: torch.Tensor, teacher: torch.Tensor, distance: Callable) -> torch.Tensor:
        channels = student.shape[1]
        return distance(
            student.transpose(1, 2).reshape(-1, channels), teacher.transpose(1, 2).reshape(-1, channels)
        ).mean()

    return loss
