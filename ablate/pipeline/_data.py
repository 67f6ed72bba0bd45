"""The data contract: what a registered dataset returns (trial path step 1: data)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

CLASSES = ("background", "smoke")


@dataclass
class Split:
    """One split held in memory, every image already at the training size.

    Attributes:
        images: uint8 ``[N, H, W, 3]``.
        labels: int64 ``[N]`` image-level labels, 1 = smoke present.
        masks: uint8 ``[N, H, W]`` smoke pixel masks (0/1), or None where the split has none.
        cooccur_masks: uint8 ``[N, H, W]`` masks of the co-occurring object (chimneys), or None.
        names: one identifier per image, used in reports and error messages.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None
    cooccur_masks: np.ndarray | None = None
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def check(self, where: str) -> None:
        """Raise ``ValueError`` naming ``where`` if the arrays are inconsistent."""
        n = len(self.labels)
        if n == 0:
            raise ValueError(f"{where}: the split is empty")
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"{where}: images must be uint8 [N, H, W, 3], got {self.images.dtype} {self.images.shape}")
        if len(self.images) != n or (self.names and len(self.names) != n):
            raise ValueError(f"{where}: {len(self.images)} images but {n} labels")
        if not set(np.unique(self.labels).tolist()) <= {0, 1}:
            raise ValueError(f"{where}: labels must be 0 (no smoke) or 1 (smoke)")
        for kind, mask in (("mask", self.masks), ("co-occurrence mask", self.cooccur_masks)):
            if mask is not None and mask.shape != self.images.shape[:3]:
                raise ValueError(f"{where}: {kind} shape {mask.shape} differs from images {self.images.shape[:3]}")


@dataclass
class Dataset:
    """What a dataset factory returns: a train split (labels), a test split (pixel masks), optionally a val split.

    Attributes:
        train: images with image-level labels.
        test: images with smoke masks, ideally also co-occurring-object masks.
        val: held-out images drawn from the train distribution (labels only needed), or None. Accuracy on it
            beside accuracy on a test split that breaks the train split's co-occurrence shows a shortcut.
        fingerprint: content hash of every split; part of every cache key built on this data.
        class_name: what the masks mark (label 1), as captions and labels name it, e.g. ``"smoke"``.
        object_name: the co-occurring object of ``cooccur_masks``, e.g. ``"chimney"``.
    """

    train: Split
    test: Split
    val: Split | None = None
    fingerprint: str = ""
    class_name: str = "foreground"
    object_name: str = "co-occurring object"

    def __post_init__(self) -> None:
        self.train.check("train split")
        self.test.check("test split")
        if self.val is not None:
            self.val.check("val split")
        if self.test.masks is None:
            raise ValueError("test split: pixel masks are required for evaluation")
        if not self.fingerprint:
            val = (self.val.images, self.val.labels) if self.val is not None else ()
            self.fingerprint = fingerprint_arrays(
                self.train.images, self.train.labels, self.test.images, self.test.labels, self.test.masks, *val
            )


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    """A short SHA-256 over the bytes, shapes and dtypes of ``arrays``."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Pretraining:
    """What a pretrainer returns: labelled images a backbone learns to classify before any trial trains it.

    The harness trains the backbone with a linear classifier on its pooled map (AdamW, warm-up then cosine
    decay), once per backbone and pretrainer, and every trial starts from the result.

    Attributes:
        images: uint8 ``[N, H, W, 3]``, normalised as the trial's images are.
        labels: int ``[N]``, classes ``0 .. K-1``.
        steps: optimiser steps.
        batch_size: images per step, in a seeded order (each image once per pass).
        lr: the peak learning rate.
        seed: seed of the batch order.
    """

    images: np.ndarray
    labels: np.ndarray
    steps: int
    batch_size: int
    lr: float
    seed: int = 0

    def check(self, where: str) -> None:
        """Raise ``ValueError`` naming ``where`` if the arrays do not fit together."""
        images, labels = self.images, np.asarray(self.labels)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(labels) != len(images):
            raise ValueError(
                f"{where}: expected uint8 images [N, H, W, 3] and N labels, got {images.dtype} "
                f"{tuple(images.shape)} and {len(labels)} labels"
            )
        if len(labels) < self.batch_size or labels.min() < 0:
            raise ValueError(f"{where}: needs at least batch_size ({self.batch_size}) images and labels >= 0")
