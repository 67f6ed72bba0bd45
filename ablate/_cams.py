"""CAM generation (trial path step: CAMs): raw maps -> ReLU -> upsample -> per-image min-max."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ablate._registries import CAMS
from ablate._train import to_tensor


def minmax(maps: np.ndarray) -> np.ndarray:
    """Min-max normalise each ``[..., H, W]`` map to [0, 1] (a constant map becomes 0), as float32."""
    low = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - low
    return ((maps - low) / np.maximum(span, 1e-12)).astype(np.float32)


def normalise(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """ReLU, bilinear upsampling to ``size`` and min-max to [0, 1] per image (all-zero maps stay 0)."""
    maps = F.interpolate(F.relu(maps.float()).unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]
    return minmax(maps.detach().cpu().numpy())


def compute_cams(
    networks: dict[str, Any],
    cam_config: dict[str, Any],
    images: np.ndarray,
    device: torch.device,
    *,
    scale: float = 1.0,
    flip: bool = False,
    layer: str | None = None,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised smoke CAMs ``[N, H, W]`` and the smoke probability ``[N]`` of the CAM network(s).

    Args:
        networks: trained networks by role.
        cam_config: the config's ``cam`` section (method, ``network`` (resolved by validation), ``layer``).
        images: uint8 ``[N, H, W, 3]``.
        scale: input rescaling factor (multi-scale inference).
        flip: run on horizontally flipped inputs and flip the maps back.
        layer: overrides ``cam_config['layer']``.
    """
    method = CAMS.build(cam_config)
    chosen = cam_config["network"]
    roles = list(networks) if chosen == "both" else [chosen]
    layer = layer if layer is not None else cam_config.get("layer")
    size = images.shape[1:3]
    cams, probs = [], []
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start : start + batch_size], device)
        if flip:
            x = x.flip(-1)
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        batch_cams, batch_probs = [], []
        for role in roles:
            network = networks[role]
            maps = normalise(method(network, x, layer), size)
            batch_cams.append(maps[..., ::-1] if flip else maps)
            with torch.no_grad():
                batch_probs.append(network(x).logits.float().softmax(dim=1)[:, 1])
        cams.append(np.mean(batch_cams, axis=0))
        probs.append(torch.stack(batch_probs).mean(0).cpu())
    return np.concatenate(cams).astype(np.float32), torch.cat(probs).numpy().astype(np.float32)
