"""Array helpers shared by several post-processors (registers nothing)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def minmax(maps: np.ndarray) -> np.ndarray:
    """Min-max normalise each ``[..., H, W]`` map to [0, 1] (a constant map becomes 0), as float32."""
    low = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - low
    return ((maps - low) / np.maximum(span, 1e-12)).astype(np.float32)


def resize(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``[N, C, h, w]`` or ``[N, h, w]`` float maps to ``size``: area-averaging when shrinking, else bilinear."""
    tensor = torch.from_numpy(np.asarray(maps, dtype=np.float32))
    batched = tensor if tensor.ndim == 4 else tensor[:, None]
    # Area averaging keeps every pixel's contribution when shrinking; bilinear avoids blocky upsampling.
    if size[0] <= batched.shape[-2] and size[1] <= batched.shape[-1]:
        out = F.interpolate(batched, size=size, mode="area")
    else:
        out = F.interpolate(batched, size=size, mode="bilinear", align_corners=False)
    return (out if tensor.ndim == 4 else out[:, 0]).numpy()
