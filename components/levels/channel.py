"""Channel alignment level."""

from collections.abc import Callable

import torch

from ablate import LEVELS


@LEVELS.register("channel")
def channel():
    """One N-vector (spatial map) per channel, distances averaged over channels."""

    def loss(student: torch.Tensor, teacher: torch.Tensor, distance: Callable) -> torch.Tensor:
        locations = student.shape[2]
        return distance(student.reshape(-1, locations), teacher.reshape(-1, locations)).mean()

    return loss
