"""Shared pieces of the paradigm contract (see ``ablate.PARADIGMS``)."""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F

from ablate.pipeline._models import NetworkOutput


class Paradigm(Protocol):
    """A training procedure.

    Attributes:
        roles: the networks (``teacher``/``student`` config sections) it trains and uses.
        uses_transfer: whether the config's ``transfer`` section affects its result.
    """

    roles: tuple[str, ...]
    uses_transfer: bool

    def fit(self, trainer: Any) -> dict[str, Any]:
        """Return the trained networks by role (through ``trainer``'s cached helpers)."""


def classification_loss(output: NetworkOutput, labels: torch.Tensor) -> torch.Tensor:
    """L_cls: cross-entropy of the pooled class-map logits against the image labels."""
    return F.cross_entropy(output.logits.float(), labels)
