"""Array helpers shared by several post-processors (registers nothing)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


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
