"""Drawing primitives for the synthetic smoke scenes (private helper; registers nothing).

Every primitive works on float32 images in [0, 1] of shape ``[S, S, 3]`` and takes geometry in
pixels, so the caller decides the scale. Soft shapes are evaluated only inside their bounding box
because a 512 px plume of 20 blobs over the full frame would dominate the generation time.
"""

from __future__ import annotations

import numpy as np

# Gaussians are cut off at this many standard deviations (exp(-0.5 * 3.5**2) < 0.22%).
_CUTOFF = 3.5


def vertical_gradient(size: int, top: np.ndarray, bottom: np.ndarray, y0: float, y1: float) -> np.ndarray:
    """An ``[S, S, 3]`` image fading from colour ``top`` at row ``y0`` to ``bottom`` at row ``y1``."""
    t = np.clip((np.arange(size, dtype=np.float32) - y0) / max(y1 - y0, 1.0), 0.0, 1.0)
    column = top[None, :] * (1.0 - t[:, None]) + bottom[None, :] * t[:, None]
    return np.broadcast_to(column[:, None, :], (size, size, 3)).astype(np.float32)


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Standard-normal values on a ``cells x cells`` grid, bilinearly upsampled to ``[S, S]``.

    The grid, not the pixel count, sets the structure, so scenes look alike at every image size.
    """
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    pos = np.linspace(0.0, cells, size, dtype=np.float32)
    i0 = np.minimum(pos.astype(np.int64), cells - 1)
    frac = pos - i0
    rows = grid[i0] * (1.0 - frac[:, None]) + grid[i0 + 1] * frac[:, None]
    return rows[:, i0] * (1.0 - frac[None, :]) + rows[:, i0 + 1] * frac[None, :]


def soft_blobs(
    size: int,
    cx: np.ndarray,
    cy: np.ndarray,
    rx: np.ndarray,
    ry: np.ndarray,
    strength: np.ndarray,
) -> np.ndarray:
    """Alpha ``[S, S]`` of the union of axis-aligned Gaussian blobs (one entry per blob in each array).

    Overlapping blobs combine like stacked translucent layers, ``1 - prod(1 - a_i)``, so the
    union never exceeds the densest blob's opacity by more than physics would allow.
    """
    alpha = np.zeros((size, size), dtype=np.float32)
    x0 = int(np.clip(np.floor(np.min(cx - _CUTOFF * rx)), 0, size))
    x1 = int(np.clip(np.ceil(np.max(cx + _CUTOFF * rx)) + 1, 0, size))
    y0 = int(np.clip(np.floor(np.min(cy - _CUTOFF * ry)), 0, size))
    y1 = int(np.clip(np.ceil(np.max(cy + _CUTOFF * ry)) + 1, 0, size))
    if x0 >= x1 or y0 >= y1:
        return alpha
    # Pixel centres sit at integer coordinates + 0.5.
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5
    # Separable Gaussians: [K, h, 1] * [K, 1, w] instead of evaluating exp over [K, h, w].
    gx = np.exp(-0.5 * ((xs[None, :] - cx[:, None]) / rx[:, None]) ** 2)
    gy = np.exp(-0.5 * ((ys[None, :] - cy[:, None]) / ry[:, None]) ** 2)
    layers = strength[:, None, None] * gy[:, :, None] * gx[:, None, :]
    alpha[y0:y1, x0:x1] = 1.0 - np.prod(1.0 - layers, axis=0)
    return alpha


def rect_mask(size: int, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Boolean ``[S, S]`` mask of a rectangle in pixel coordinates, at least one pixel wide and tall."""
    left = int(np.clip(round(x0), 0, size - 1))
    top = int(np.clip(round(y0), 0, size - 1))
    right = int(np.clip(max(round(x1), left + 1), 1, size))
    bottom = int(np.clip(max(round(y1), top + 1), 1, size))
    mask = np.zeros((size, size), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def blend(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-composite ``colour`` (``[3]`` or ``[S, S, 3]``) over ``image`` in place."""
    a = alpha[..., None]
    image *= 1.0 - a
    image += a * colour


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] to uint8, rounding to the nearest level."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
