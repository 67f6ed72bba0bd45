"""The post-processing contract and chain runner (trial path step: post-processing).

A post-processor is called with the current :class:`PostState` and a :class:`PostContext`
and returns a new state. Steps that produce a mask (thresholds, CRF, SAM) return ``state.with_(mask=...)``; if
the chain ends without one, the default fixed threshold is applied. A step class may set ``uses_ground_truth = True``
(oracle steps); the harness then labels the trial's metrics as oracle.

CAM layers are named by module path inside the backbone's model, negative indices allowed,
e.g. ``blocks.-1.norm1`` (the ViT's last block) or ``layer4``; None is the backbone default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

T = TypeVar("T")


@dataclass(frozen=True)
class PostState:
    """The split a chain runs on as a post-processor sees it: the test split, or the train split for stage 3.

    Attributes:
        images: uint8 ``[N, H, W, 3]`` images.
        cams: float32 ``[N, H, W]`` smoke maps in [0, 1].
        mask: bool ``[N, H, W]`` pseudo-masks once a step has produced them, else None.
    """

    images: np.ndarray
    cams: np.ndarray
    mask: np.ndarray | None = None

    def with_(self, **changes: Any) -> PostState:
        return replace(self, **changes)


class PostContext(Protocol):
    """What the harness offers post-processors beyond the state (all results are cached)."""

    seed: int
    device: torch.device

    def cams(self, *, scale: float = 1.0, flip: bool = False, layer: str | None = None) -> np.ndarray:
        """Normalised CAMs ``[N, H, W]`` of the state's images computed at another scale/flip/layer."""

    def features(self) -> np.ndarray:
        """The CAM network's feature map ``[N, C, h, w]`` on the state's images (float32)."""

    def train_split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Train images ``[N, H, W, 3]``, image labels ``[N]`` and CAMs ``[N, H, W]`` (for learned refiners)."""

    def cached(self, name: str, params: dict[str, Any], build: Callable[[], T], *, per_split: bool = True) -> T:
        """``build()`` once per (trained model, CAM setting, name, params) and split the chain runs on (test, or
        train for stage 3's pseudo-masks); reused afterwards. ``per_split=False`` for a value that does not
        depend on the split, such as a refiner trained on the train split."""

    def ground_truth(self) -> np.ndarray:
        """Smoke masks ``[N, H, W]`` of the state's images; only for oracle steps, which set ``uses_ground_truth =
        True`` so that the harness labels every number they touch as oracle."""

    def map_images(self, fn: Callable[..., T], *arrays: np.ndarray) -> list[T]:
        """``[fn(a[i], b[i], ...) for i]`` spread over the machine's cores."""
