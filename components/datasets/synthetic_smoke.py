"""Built-in synthetic industrial smoke scenes whose train split couples smoke with chimneys.

The data reproduces the co-occurrence problem the method targets: in the train split nearly every
smoke plume rises from a chimney and chimneys rarely appear without smoke, so "chimney => smoke"
is a good shortcut for the image label; the test split breaks that coupling (smoke from roofs and
the ground, idle chimneys), so a classifier that learned the shortcut shows it in its CAMs.
Clouds are soft grey-white blobs like smoke but are never labelled smoke.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated

import numpy as np

from ablate import DATASETS, Dataset, Range, Split, fingerprint_arrays
from ablate.components.datasets._scene import blend, rect_mask, smooth_noise, soft_blobs, to_uint8, vertical_gradient

# Bump whenever the drawing or planning changes, so caches of the old data are not reused.
_VERSION = 2
# Plume opacity above which a pixel counts as smoke in the ground-truth mask.
_SMOKE_ALPHA = 0.15
# Split -> stream id of its generator (val came last, so train and test images kept their streams).
_SPLITS = {"train": 0, "test": 1, "val": 2}
_FIELDS = ("images", "labels", "masks", "cooccur", "clouds")
_KEYS = tuple(f"{split}_{field}" for split in _SPLITS for field in _FIELDS)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent generator per (seed, stream), so images don't depend on each other or on n."""
    return np.random.Generator(np.random.PCG64([seed, *stream]))


def _draw_scene(
    rng: np.random.Generator, size: int, smoke: bool, chimney: bool, clouds: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: uint8 image ``[S, S, 3]``, smoke mask and chimney mask (uint8 0/1 ``[S, S]``).

    Geometry is drawn in fractions of the image size, so a seed gives the same scene at every size.
    """
    s = float(size)
    horizon = rng.uniform(0.55, 0.72) * s

    # Sky: blue to overcast grey, lighter (hazier) towards the horizon.
    overcast = rng.uniform(0.0, 0.8)
    sky_top = rng.uniform((0.25, 0.4, 0.6), (0.5, 0.65, 0.9)) * (1.0 - overcast) + rng.uniform(0.5, 0.8) * overcast
    sky_bottom = np.minimum(sky_top + rng.uniform(0.1, 0.3), 1.0)
    image = vertical_gradient(size, sky_top, sky_bottom, 0.0, horizon)

    # Ground: earthy gradient darkening towards the viewer, with low-frequency texture.
    ground_top = rng.uniform((0.3, 0.3, 0.2), (0.55, 0.5, 0.35))
    ground = vertical_gradient(size, ground_top, ground_top * rng.uniform(0.5, 0.85), horizon, s)
    ground *= (1.0 + 0.08 * smooth_noise(rng, size, 12))[..., None]
    below = np.arange(size) + 0.5 >= horizon
    image[below] = ground[below]

    if clouds:
        for _ in range(rng.integers(1, 4)):
            k = int(rng.integers(4, 10))
            width = rng.uniform(0.12, 0.35) * s
            cx = rng.uniform(0.0, s) + rng.uniform(-0.5, 0.5, k) * width
            cy = rng.uniform(0.05 * s, max(horizon - 0.12 * s, 0.06 * s)) + rng.uniform(-0.12, 0.12, k) * width
            radius = rng.uniform(0.04, 0.09, k) * s
            alpha = soft_blobs(size, cx, cy, radius * rng.uniform(1.2, 2.0, k), radius, rng.uniform(0.4, 0.85, k))
            blend(image, alpha, rng.uniform(0.7, 1.0) + rng.uniform(-0.03, 0.03, 3))

    roofs = []
    for _ in range(rng.integers(1, 5)):
        left, width = rng.uniform(-0.05, 0.95) * s, rng.uniform(0.08, 0.25) * s
        bottom = horizon + rng.uniform(0.0, 0.1) * s
        top = bottom - rng.uniform(0.06, 0.28) * s
        image[rect_mask(size, left, top, left + width, bottom)] = rng.uniform(0.18, 0.5) + rng.uniform(-0.05, 0.05, 3)
        roofs.append((left, left + width, top))

    chimney_mask = np.zeros((size, size), dtype=bool)
    tops = []
    for _ in range((1 + int(rng.random() < 0.3)) if chimney else 0):
        half = max(rng.uniform(0.015, 0.03) * s, 1.0)  # at least 2 px wide at 32 px
        cx = rng.uniform(0.12, 0.88) * s
        bottom = horizon + rng.uniform(0.02, 0.1) * s
        top = max(bottom - rng.uniform(0.25, 0.45) * s, 0.1 * s)
        mask = rect_mask(size, cx - half, top, cx + half, bottom)
        brick = rng.random() < 0.5
        image[mask] = rng.uniform((0.45, 0.2, 0.15), (0.65, 0.35, 0.3)) if brick else rng.uniform(0.45, 0.7)
        if rng.random() < 0.5:  # a light warning band near the top, as on many real stacks
            band = rect_mask(size, cx - half, top + 0.04 * s, cx + half, top + 0.07 * s)
            image[band & mask] = rng.uniform(0.8, 0.95)
        chimney_mask |= mask
        tops.append((cx, float(np.round(top))))

    smoke_mask = np.zeros((size, size), dtype=bool)
    if smoke:
        if tops:
            x0, y0 = tops[0]
        elif rng.random() < 0.5:  # a vent on a roof
            left, right, top = roofs[int(rng.integers(len(roofs)))]
            x0, y0 = float(np.clip(rng.uniform(left, right), 0.05 * s, 0.95 * s)), top
        else:  # a fire or vent on the ground
            x0, y0 = rng.uniform(0.1, 0.9) * s, horizon + rng.uniform(0.03, 0.2) * s
        smoke_mask = _draw_plume(rng, image, x0, y0)

    image += rng.normal(0.0, 0.012, image.shape).astype(np.float32)  # sensor noise
    return to_uint8(image), smoke_mask.astype(np.uint8), chimney_mask.astype(np.uint8)


def _draw_plume(rng: np.random.Generator, image: np.ndarray, x0: float, y0: float) -> np.ndarray:
    """Blend a plume rising from ``(x0, y0)`` into ``image``; returns its smoke mask.

    The plume is a chain of soft blobs along a path that rises, drifts with the wind (more as it
    rises) and wobbles; blobs grow and thin out with height, and turbulence modulates the density.
    """
    size = image.shape[0]
    s = float(size)
    k = int(rng.integers(10, 22))
    t = np.linspace(0.0, 1.0, k, dtype=np.float32)
    length = rng.uniform(0.3, 0.7) * s
    wind = rng.uniform(-1.0, 1.0)
    radius = (rng.uniform(0.012, 0.025) + rng.uniform(0.05, 0.14) * t) * s
    cx = x0 + wind * length * t ** rng.uniform(1.0, 2.0) + np.cumsum(rng.normal(0.0, 0.015, k)) * s
    cy = y0 - radius[0] - length * t * (1.0 - 0.5 * abs(wind) * t)  # strong wind flattens the plume
    strength = rng.uniform(0.45, 0.95) * (1.0 - 0.65 * t**1.5) * rng.uniform(0.75, 1.0, k)
    ry = np.maximum(radius, 1.0)
    rx = np.maximum(radius * (1.0 + 0.6 * abs(wind) * t), 1.0)
    alpha = soft_blobs(size, cx, cy, rx, ry, strength.astype(np.float32))
    alpha *= np.clip(1.0 + 0.3 * smooth_noise(rng, size, 10), 0.6, 1.4)
    alpha = np.clip(alpha, 0.0, 0.95)
    # From white steam to dark grey soot, with slight tint and texture.
    colour = rng.uniform(0.35, 0.92) + rng.uniform(-0.03, 0.03, 3) + 0.05 * smooth_noise(rng, size, 16)[..., None]
    blend(image, alpha, colour)
    return alpha > _SMOKE_ALPHA


def _plan(
    rng: np.random.Generator, n: int, smoke_fraction: float, chimney_rates: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled labels with exactly ``round(n * smoke_fraction)`` smoke images, and chimney flags.

    ``chimney_rates`` = (P(chimney | smoke), P(chimney | no smoke)); None balances chimneys within
    each class (half of the smoke and half of the smoke-free images get one), decoupling the two.
    """
    n_smoke = round(n * smoke_fraction)
    labels = rng.permutation(np.repeat(np.array([1, 0], dtype=np.int64), [n_smoke, n - n_smoke]))
    if chimney_rates is not None:
        return labels, rng.random(n) < np.where(labels == 1, *chimney_rates)
    chimneys = np.zeros(n, dtype=bool)
    for label, count in ((1, n_smoke), (0, n - n_smoke)):
        idx = np.flatnonzero(labels == label)
        chimneys[rng.permutation(idx)[: (count + label) // 2]] = True  # odd counts: smoke side rounds up
    return labels, chimneys


def _generate(
    image_size: int,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int,
    smoke_fraction: float,
    train_chimney_with_smoke: float,
    train_chimney_without_smoke: float,
    cloud_rate: float,
) -> dict[str, np.ndarray]:
    """All arrays of every split, keyed like ``_KEYS`` (an empty val split when ``n_val`` is 0)."""
    arrays: dict[str, np.ndarray] = {}
    train_rates = (train_chimney_with_smoke, train_chimney_without_smoke)
    rates = {"train": train_rates, "val": train_rates, "test": None}
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, split_id in _SPLITS.items():
        n = counts[split]
        plan_rng = _rng(seed, split_id, 0)
        labels, chimneys = _plan(plan_rng, n, smoke_fraction, rates[split])
        clouds = plan_rng.random(n) < cloud_rate
        images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
        masks = np.empty((n, image_size, image_size), dtype=np.uint8)
        cooccur = np.empty_like(masks)
        for i in range(n):
            images[i], masks[i], cooccur[i] = _draw_scene(
                _rng(seed, split_id, 1, i), image_size, bool(labels[i]), bool(chimneys[i]), bool(clouds[i])
            )
        arrays.update(
            {
                f"{split}_images": images,
                f"{split}_labels": labels,
                f"{split}_masks": masks,
                f"{split}_cooccur": cooccur,
                f"{split}_clouds": clouds,
            }
        )
    return arrays


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed npz atomically, byte-identical for identical arrays.

    ``np.savez`` stamps members with the current time; fixed timestamps keep the file reproducible.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as archive:
            for key, value in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, value, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None if the file is missing, unreadable or fails its fingerprint."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _KEYS}
            stored = str(npz["fingerprint"].item())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return arrays if _fingerprint(arrays) == stored else None


def _fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """Content hash of every array, in the fixed ``_KEYS`` order."""
    return fingerprint_arrays(*(arrays[key] for key in _KEYS))


Probability = Annotated[float, Range(0, 1)]


def _check_split_sizes(params: dict[str, float]) -> None:
    """Raise ``ValueError`` if a split would hold only smoke or only smoke-free images."""
    for split in _SPLITS:
        n = params[f"n_{split}"]
        if split == "val" and n == 0:
            continue
        n_smoke = round(n * params["smoke_fraction"])
        if n_smoke == 0 or n_smoke == n:
            raise ValueError(
                f"synthetic-smoke: smoke_fraction={params['smoke_fraction']!r} leaves the {split} split "
                f"(n_{split}={n}) without {'smoke' if n_smoke == 0 else 'smoke-free'} images"
            )


@DATASETS.register("synthetic-smoke")
def synthetic_smoke(
    image_size: Annotated[int, Range(32, 512)] = 64,
    n_train: Annotated[int, Range(low=2)] = 1600,
    n_val: Annotated[int, Range(low=0)] = 200,
    n_test: Annotated[int, Range(low=4)] = 320,
    seed: Annotated[int, Range(low=0)] = 0,
    smoke_fraction: Probability = 0.5,
    train_chimney_with_smoke: Probability = 1.0,
    train_chimney_without_smoke: Probability = 0.1,
    cloud_rate: Probability = 0.5,
    *,
    cache_dir: Path,
) -> Dataset:
    """Synthetic industrial smoke scenes; chimneys predict smoke in train but not in test.

    Generated once per parameter set into ``cache_dir/datasets`` and reused; a damaged cache file
    is regenerated. Both splits carry smoke masks and chimney (co-occurrence) masks.

    Args:
        image_size: Side of the square images in pixels (32 to 512).
        n_train: Number of train images.
        n_val: Number of val images, drawn like the train split (same chimney rates); 0 for none.
        n_test: Number of test images (about a quarter each of smoke+chimney, smoke only,
            chimney only and neither).
        seed: Seed of the generator; one seed gives byte-identical data.
        smoke_fraction: Fraction of smoke images in both splits.
        train_chimney_with_smoke: Probability that a train smoke image has its plume on a chimney.
        train_chimney_without_smoke: Probability that a smoke-free train image shows a chimney.
        cloud_rate: Probability that an image (either split) has clouds, the smoke-like distractor.
        cache_dir: Harness cache folder (injected).
    """
    params = {
        "image_size": image_size,
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "seed": seed,
        "smoke_fraction": smoke_fraction,
        "train_chimney_with_smoke": train_chimney_with_smoke,
        "train_chimney_without_smoke": train_chimney_without_smoke,
        "cloud_rate": cloud_rate,
    }
    _check_split_sizes(params)
    key = hashlib.sha256(json.dumps({"version": _VERSION, **params}, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / "datasets" / f"synthetic-smoke-{key}.npz"
    arrays = _read_cache(path)
    if arrays is None:
        arrays = _generate(**params)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_npz(path, {**arrays, "fingerprint": np.array(_fingerprint(arrays))})

    def split(name: str) -> Split:
        return Split(
            images=arrays[f"{name}_images"],
            labels=arrays[f"{name}_labels"].astype(np.int64, copy=False),
            masks=arrays[f"{name}_masks"],
            cooccur_masks=arrays[f"{name}_cooccur"],
            names=[f"{name}-{i:05d}" for i in range(len(arrays[f"{name}_labels"]))],
        )

    # Dataset hashes the splits itself; the file fingerprint only guards the cache.
    return Dataset(
        train=split("train"),
        test=split("test"),
        val=split("val") if n_val else None,
        class_name="smoke",
        object_name="chimney",
    )
