"""FractalDB pre-training images: categories of iterated function systems drawn by the chaos game."""

from __future__ import annotations

import numpy as np
import pytest

from ablate import PRETRAINERS, Pretraining

SMALL = {"name": "fractaldb", "classes": 5, "per_class": 3, "image_size": 32, "points": 800}


def test_images_labels_and_settings() -> None:
    task = PRETRAINERS.build({**SMALL, "steps": 7, "batch_size": 4, "lr": 0.01, "seed": 3})
    assert isinstance(task, Pretraining)
    assert task.images.shape == (15, 32, 32, 3) and task.images.dtype == np.uint8
    assert task.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert (task.steps, task.batch_size, task.lr, task.seed) == (7, 4, 0.01, 3)
    task.check("fractaldb")


def test_the_same_seed_draws_the_same_images_and_another_seed_others() -> None:
    a, b, c = (PRETRAINERS.build({**SMALL, "seed": s}).images for s in (0, 0, 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_every_fractal_fills_at_least_min_fill_and_instances_of_a_class_differ() -> None:
    task = PRETRAINERS.build({**SMALL, "min_fill": 0.15})
    # a fractal pixel is brighter than its image's background (colours drawn in [0.3, 1] over [0, 0.3])
    background = task.images.min(axis=(1, 2), keepdims=True)
    drawn = (task.images > background + 1).any(axis=3)
    # instances scale one map by 0.8-1.2, so an instance may fill a little less than its category
    assert drawn.mean(axis=(1, 2)).min() > 0.08
    assert not np.array_equal(drawn[0], drawn[1])


def test_a_fill_no_fractal_reaches_is_refused() -> None:
    with pytest.raises(ValueError, match="fewer than 2 fractals fill 0.99"):
        PRETRAINERS.build({"name": "fractaldb", "classes": 2, "per_class": 1, "image_size": 16, "min_fill": 0.99})
