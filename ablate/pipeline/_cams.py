"""CAM generation (trial path step: CAMs): raw maps -> ReLU -> upsample -> per-image min-max, cached per trained
model and split."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ablate._registries import CAMS
from ablate.cache._keys import cams_key, features_key
from ablate.config._schema import TrialConfig
from ablate.pipeline._data import Dataset
from ablate.pipeline._loop import to_tensor
from ablate.pipeline._timings import Timings
from ablate.pipeline._train import Trainer

#: The file of a cache entry computed from trained networks that lists their weight files (relative to the cache).
WEIGHTS_RECORD = "weights.json"


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


class TrainedMaps:
    """The maps of a trial's trained networks, each from the stage cache or computed now: CAM sets by split, scale,
    flip and layer, and feature maps.

    The networks are trained (or loaded) only when a map is missing, so a trial whose maps are all cached neither
    trains nor loads a network. An entry made from networks records their weight files, so that a trial served
    from it still names the weights its numbers stand on (``ablate export`` hands them on).
    """

    def __init__(self, config: TrialConfig, data: Dataset, trainer: Trainer, paradigm: Any, timings: Timings) -> None:
        self.config = config
        self.data = data
        self.trainer = trainer
        self.paradigm = paradigm
        self.timings = timings
        self.device = trainer.device
        self.cache = trainer.cache
        self._networks: dict[str, Any] | None = None

    def networks(self) -> dict[str, Any]:
        """The paradigm's networks by role, trained or loaded from the stage cache on first call."""
        if self._networks is None:
            with self.timings.timed("train"):
                self._networks = self.paradigm.fit(self.trainer)
        return self._networks

    @cached_property
    def model_key(self) -> dict[str, Any]:
        """The cache key of the trained model every map comes from."""
        roles, uses_transfer = self.paradigm.roles, self.paradigm.uses_transfer
        return self.trainer.model_inputs(roles, self.trainer.paradigm_inputs(uses_transfer))

    @property
    def cam_role(self) -> str:
        """The network whose maps the trial evaluates (a fused CAM: the last trained)."""
        role = self.config.cam["network"]
        return self.paradigm.roles[-1] if role == "both" else role

    def cams(
        self, split: str, scale: float = 1.0, flip: bool = False, layer: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised CAMs ``[N, H, W]`` and class probabilities ``[N]`` of ``split``'s images."""
        images = getattr(self.data, split).images

        def build(folder: Path) -> None:
            networks = self.networks()  # outside the "cams" timer
            with self.timings.timed("cams"):
                cams, probs = compute_cams(
                    networks, self.config.cam, images, self.device, scale=scale, flip=flip, layer=layer
                )
            np.savez(folder / "cams.npz", cams=cams.astype(np.float16), smoke_prob=probs)

        key = cams_key(self.model_key, self.config.cam, split, scale, flip, layer)
        stored = np.load(self._from_networks("cams", key, build) / "cams.npz")
        return stored["cams"].astype(np.float32), stored["smoke_prob"]

    def features(self, split: str) -> np.ndarray:
        """The CAM network's feature maps ``[N, C, h, w]`` on ``split``'s images (float32)."""
        role, images = self.cam_role, getattr(self.data, split).images

        def build(folder: Path) -> None:
            network, out = self.networks()[role], []
            with torch.no_grad():
                for start in range(0, len(images), 32):
                    out.append(network(to_tensor(images[start : start + 32], self.device)).features)
            np.save(folder / "features.npy", torch.cat(out).float().cpu().numpy().astype(np.float16))

        entry = self._from_networks("features", features_key(self.model_key, role, split), build)
        return np.load(entry / "features.npy").astype(np.float32)

    def _from_networks(self, stage: str, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
        checkpoints = self.trainer.checkpoints

        def build_and_record(folder: Path) -> None:
            build(folder)
            weights = [str(path.relative_to(self.cache.root)) for path in checkpoints]
            (folder / WEIGHTS_RECORD).write_text(json.dumps(weights))

        entry = self.cache.get_or_build(stage, key, build_and_record)
        record = entry / WEIGHTS_RECORD
        for path in json.loads(record.read_text()) if record.is_file() else []:
            if self.cache.root / path not in checkpoints:
                checkpoints.append(self.cache.root / path)
        return entry
