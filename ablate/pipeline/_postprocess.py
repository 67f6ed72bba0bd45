"""The post-processing contract and chain runner (trial path step: post-processing).

A post-processor is called with the current :class:`PostState` and a :class:`PostContext`
and returns a new state. Steps that produce a mask (thresholds, CRF, SAM) return ``state.with_(mask=...)``; if
the chain ends without one, the default fixed threshold is applied. A step may set ``uses_ground_truth = True``
(oracle steps) or ``random_weights = True`` (it ran a model without trained weights, e.g. no checkpoint offline);
the harness then marks every number of the trial ``[oracle]`` or ``[random weights]`` (:data:`MARKS`).

A step class may also declare which fields of the state it ``reads`` and ``writes`` (tuples of ``"cams"`` and
``"mask"``; setting ``mask=None`` writes the mask). Validation then refuses a chain in which a step's every output
is replaced before any step reads it, as ``[crf, cam_fusion]`` (CAM fusion computes its CAMs anew from the
network) or ``[threshold, crf]`` (CRF makes its mask from the CAMs): such a chain scores the same as without the
step, under the step's name. A step that declares neither is taken to read both and to matter.

CAM layers are named by module path inside the backbone's model, negative indices allowed,
e.g. ``blocks.-1.norm1`` (the ViT's last block) or ``layer4``; None is the backbone default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import torch

from ablate._registries import POSTPROCESSORS
from ablate.cache._keys import post_key
from ablate.config._resolve import ConfigError
from ablate.config._schema import TrialConfig
from ablate.pipeline._pool import map_images

if TYPE_CHECKING:
    from ablate.pipeline._cams import TrainedMaps

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


#: A trial's mark -> (the step attribute that sets it when true, what it means): the report shows ``[mark]`` on every
#: number the trial gave.
MARKS = {
    "oracle": (
        "uses_ground_truth",
        "a post-processing step looked at the ground truth, so the numbers are an upper bound",
    ),
    "random weights": (
        "random_weights",
        "a post-processing step ran a model without trained weights (no checkpoint given), so the numbers check "
        "the pipeline, not the method",
    ),
}


class Chain:
    """The config's post-processing chain, run on a split's CAMs; also the :class:`PostContext` its steps see.

    Args:
        config: the resolved trial config.
        maps: the trial's trained maps (CAMs, features).
        default_step: the post-processor that makes the mask of a chain that made none.
    """

    def __init__(self, config: TrialConfig, maps: TrainedMaps, default_step: str) -> None:
        self.config = config
        self.maps = maps
        self.default_step = default_step
        self.seed = config.seed
        self.device = maps.device
        self._step: str | None = None  # the step running now (its code keys its cached values)
        self._split = "test"  # the split the chain runs on now (train: stage 3's pseudo-masks)

    def run(self, split: str) -> tuple[PostState, list[str]]:
        """The chain on ``split``'s CAMs: the final state (its mask made by the default step when no step made one)
        and the trial's :data:`MARKS` its steps set (whether one looked at the ground truth, ran random weights)."""
        state = PostState(getattr(self.maps.data, split).images, self.maps.cams(split)[0])
        marked: set[str] = set()
        self._split = split
        try:
            with self.maps.timings.timed("postprocess"):
                for spec in self.config.postprocess:
                    self._step = spec["name"]
                    step = POSTPROCESSORS.build(spec)
                    marked |= {mark for mark, (flag, _) in MARKS.items() if getattr(step, flag, False)}
                    state = step(state, self)
                if state.mask is None:
                    self._step = self.default_step
                    state = POSTPROCESSORS.create(self._step)(state, self)
        finally:
            self._split, self._step = "test", None
        return state, [mark for mark in MARKS if mark in marked]

    # --- PostContext -------------------------------------------------------------------------
    def cams(self, *, scale: float = 1.0, flip: bool = False, layer: str | None = None) -> np.ndarray:
        return self.maps.cams(self._split, scale, flip, layer)[0]

    def features(self) -> np.ndarray:
        return self.maps.features(self._split)

    def train_split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        train = self.maps.data.train
        return train.images, train.labels, self.maps.cams("train")[0]

    def cached(self, name: str, params: dict[str, Any], build: Callable[[], T], *, per_split: bool = True) -> T:
        key = post_key(
            self.maps.model_key, self.config.cam, self._step, name, params, self._split if per_split else None
        )
        entry = self.maps.cache.get_or_build("post", key, lambda folder: torch.save(build(), folder / "value.pt"))
        return torch.load(entry / "value.pt", weights_only=False)

    def ground_truth(self) -> np.ndarray:
        masks = getattr(self.maps.data, self._split).masks
        if masks is None:
            where = f"postprocess ({self._step})"
            raise ConfigError(f"{where}: it reads the ground truth, and the {self._split} split has no masks")
        return masks

    def map_images(self, fn: Callable[..., T], *arrays: np.ndarray) -> list[T]:
        return map_images(fn, *arrays, workers=self.config.threads or os.cpu_count() or 1)
