"""Formula-generated pre-training images: FractalDB (Kataoka et al., "Pre-training without Natural Images", 2020)."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ablate import PRETRAINERS, Pretraining, Range

MAX_MAPS = 4
BURN_IN = 10  # chaos-game iterations dropped before a trajectory is on the attractor
TRAJECTORIES = 8  # parallel chaos-game trajectories per image
# rounds of 4 candidate systems per category (about a third of random systems fill 0.12 of a 64 px image)
ROUNDS = 20


@PRETRAINERS.register("fractaldb")
def fractaldb(
    classes: Annotated[int, Range(low=2)] = 64,
    per_class: Annotated[int, Range(low=1)] = 30,
    image_size: Annotated[int, Range(low=8)] = 64,
    points: Annotated[int, Range(low=100)] = 3200,
    min_fill: Annotated[float, Range(0, 1, high_open=True)] = 0.12,
    steps: Annotated[int, Range(low=1)] = 1000,
    batch_size: Annotated[int, Range(low=1)] = 64,
    lr: Annotated[float, Range(low=0, low_open=True)] = 0.002,
    seed: Annotated[int, Range(low=0)] = 0,
) -> Pretraining:
    """Classify generated fractals, one class per iterated function system (FractalDB pre-training).

    Each class is one system of 2-4 random affine maps, each image one instance of it (one map's weights scaled by
    0.8-1.2, flipped or not, in random colours), drawn by the chaos game; systems covering less than ``min_fill`` of
    the image are redrawn, as FractalDB's filling-rate rule does.

    Args:
        classes: fractal categories (FractalDB-1k has 1000).
        per_class: images per category.
        image_size: side of the square images (the trial's image size).
        points: chaos-game points per image.
        min_fill: smallest share of pixels a category's fractal covers.
        steps: pre-training optimiser steps.
        batch_size: images per step.
        lr: peak learning rate.
        seed: seed of the categories, the instances and the batch order.
    """
    rng = np.random.default_rng(seed)
    systems = _systems(classes, image_size, points, min_fill, rng)
    maps = np.repeat(systems, per_class, axis=0)
    # one of each image's maps (by its weight, so never an unused one) gets its weights scaled
    scaled = _pick(maps, rng.random(len(maps)))
    maps[np.arange(len(maps)), scaled, :4] *= rng.uniform(0.8, 1.2, size=(len(maps), 1))
    shapes = _render(maps, image_size, points, rng)
    flip = rng.random(len(shapes)) < 0.5
    shapes[flip] = shapes[flip, :, ::-1]
    colour = rng.uniform(0.3, 1.0, size=(len(shapes), 1, 1, 3))
    background = rng.uniform(0.0, 0.3, size=(len(shapes), 1, 1, 3))
    images = background + (colour - background) * shapes[..., None]
    labels = np.repeat(np.arange(classes), per_class)
    return Pretraining((images * 255).round().astype(np.uint8), labels, steps, batch_size, lr, seed)


def _systems(classes: int, size: int, points: int, min_fill: float, rng: np.random.Generator) -> np.ndarray:
    """``[classes, MAX_MAPS, 7]`` systems (a, b, c, d, e, f, weight) whose fractals fill at least ``min_fill``."""
    accepted: list[np.ndarray] = []
    for _ in range(ROUNDS):
        maps = rng.uniform(-1, 1, size=(4 * classes, MAX_MAPS, 6))
        used = np.arange(MAX_MAPS) < rng.integers(2, MAX_MAPS + 1, size=(len(maps), 1))
        det = np.abs(maps[..., 0] * maps[..., 3] - maps[..., 1] * maps[..., 2]) * used
        contracting = (det < 0.95).all(axis=1) & (det.sum(axis=1) > 1e-3)
        candidates = np.concatenate([maps, det[..., None]], axis=2)[contracting]
        fill = _render(candidates, size, points, rng).mean(axis=(1, 2))
        accepted += list(candidates[fill >= min_fill])
        if len(accepted) >= classes:
            return np.stack(accepted[:classes])
    raise ValueError(f"fractaldb: fewer than {classes} fractals fill {min_fill} of the image; lower min_fill")


def _render(systems: np.ndarray, size: int, points: int, rng: np.random.Generator) -> np.ndarray:
    """Binary ``[N, size, size]`` images of the attractors of ``systems`` (chaos game, maps drawn by weight)."""
    n = len(systems)
    steps = max(1, points // TRAJECTORIES)
    xy = np.zeros((n, TRAJECTORIES, 2))
    trail = np.empty((steps, n, TRAJECTORIES, 2))
    rows = np.arange(n)[:, None]
    with np.errstate(over="ignore", invalid="ignore"):  # an expanding system may overflow: see below
        for step in range(BURN_IN + steps):
            pick = _pick(systems[:, None], rng.random((n, TRAJECTORIES)))
            a, b, c, d, e, f = np.moveaxis(systems[rows, pick, :6], -1, 0)
            xy = np.stack([a * xy[..., 0] + b * xy[..., 1] + e, c * xy[..., 0] + d * xy[..., 1] + f], axis=-1)
            if step >= BURN_IN:
                trail[step - BURN_IN] = xy
    trail = trail.transpose(1, 0, 2, 3).reshape(n, -1, 2)
    trail[~np.isfinite(trail).all(axis=(1, 2))] = 0.0  # an expanding system escaped: one point, refused by min_fill
    low, high = trail.min(axis=1, keepdims=True), trail.max(axis=1, keepdims=True)
    pixels = ((trail - low) / np.maximum(high - low, 1e-9) * (size - 1)).round().astype(np.int64)
    images = np.zeros((n, size * size), dtype=np.float64)
    images[np.arange(n)[:, None], pixels[..., 1] * size + pixels[..., 0]] = 1.0
    return images.reshape(n, size, size)


def _pick(systems: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Index of the map each ``uniform`` draw in [0, 1) selects from ``systems [..., MAX_MAPS, 7]`` by weight."""
    cumulative = np.cumsum(systems[..., 6], axis=-1)
    return (uniform[..., None] * cumulative[..., -1:] >= cumulative).sum(axis=-1).clip(max=MAX_MAPS - 1)
