"""A fake :class:`ablate.PostContext` backed by numpy arrays, for post-processor tests."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch


class FakeContext:
    """PostContext from fixed arrays: serial ``map_images``, dict-based ``cached`` that counts builds.

    Args:
        cams: ``{(scale, flip, layer): [N, H, W]}`` returned by :meth:`cams`; calls are recorded.
        features: Returned by :meth:`features`.
        train: ``(images, labels, cams)`` returned by :meth:`train_split`.
        truth: Returned by :meth:`ground_truth`.
        seed: The trial seed.
    """

    def __init__(
        self,
        cams: dict[tuple[float, bool, str | None], np.ndarray] | None = None,
        features: np.ndarray | None = None,
        train: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        truth: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        self.seed = seed
        self.device = torch.device("cpu")
        self._cams = cams or {}
        self._features = features
        self._train = train
        self._truth = truth
        self.cam_calls: list[tuple[float, bool, str | None]] = []
        self.store: dict[tuple[str, str], Any] = {}
        self.builds = 0

    def cams(self, *, scale: float = 1.0, flip: bool = False, layer: str | None = None) -> np.ndarray:
        self.cam_calls.append((scale, flip, layer))
        return self._cams[(scale, flip, layer)]

    def features(self) -> np.ndarray:
        assert self._features is not None, "this test gave the context no features"
        return self._features

    def train_split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self._train is not None, "this test gave the context no train split"
        return self._train

    def cached(self, name: str, params: dict[str, Any], build: Callable[[], Any], *, per_split: bool = True) -> Any:
        key = (name, repr(sorted(params.items())), per_split)
        if key not in self.store:
            self.builds += 1
            self.store[key] = pickle.loads(pickle.dumps(build()))  # the real cache stores it on disk
        return self.store[key]

    def ground_truth(self) -> np.ndarray:
        assert self._truth is not None, "this test gave the context no ground truth"
        return self._truth

    def map_images(self, fn: Callable[..., Any], *arrays: np.ndarray) -> list[Any]:
        fn = pickle.loads(pickle.dumps(fn))  # the real harness sends fn to worker processes
        return [fn(*items) for items in zip(*arrays, strict=True)]


@pytest.fixture
def fake_context() -> type[FakeContext]:
    """The :class:`FakeContext` class (conftest modules cannot be imported by test files)."""
    return FakeContext
