"""The post-processing contract and chain runner (trial path step: post-processing).

A post-processor is called with the current :class:`PostState` and a :class:`PostContext`
and returns a new state. Steps that produce a mask (thresholds, CRF, SAM) return ``state.with_(mask=...)``; if
the chain ends without one, the default fixed threshold is applied. A step class may set ``uses_ground_truth = True``
(oracle steps); the harness then labels the trial's metrics as oracle.

A step class may also declare which fields of the state it ``reads`` and ``writes`` (tuples of ``"cams"`` and
``"mask"``; setting ``mask=None`` writes the mask). Validation then refuses a chain in which a step's every output
is replaced before any step reads it, as ``[crf, cam_fusion]`` (CAM fusion computes its CAMs anew from the
network) or ``[threshold, crf]`` (CRF makes its mask from the CAMs): such a chain scores the same as without the
step, under the step's name. A step that declares neither is taken to read both and to matter.

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


def discarded_steps(steps: list[Any]) -> list[tuple[int, int]]:
    """``(i, j)`` for each step ``i`` of a chain whose every output a later step replaces before any step reads it;
    ``j`` is the step that replaces the last of them (see the module docstring: ``reads`` and ``writes``)."""
    holder: dict[str, int | None] = {"cams": None, "mask": None}  # which step made each field's value (None: CAMs)
    used: set[int] = set()
    replaced_by: dict[int, int] = {}
    for j, step in enumerate(steps):
        writes = getattr(step, "writes", None)
        reads = getattr(step, "reads", ("cams", "mask")) if writes is not None else ("cams", "mask")
        used |= {holder[name] for name in reads if holder[name] is not None}
        if writes is None:  # undeclared: it may do anything with the state, so it counts as used itself
            used.add(j)
        for name in writes or ():
            if holder[name] is not None:
                replaced_by[holder[name]] = j
            holder[name] = j
    used |= {i for i in holder.values() if i is not None}  # the chain's result: the metrics read both fields
    return [(i, replaced_by[i]) for i in range(len(steps)) if i not in used]
