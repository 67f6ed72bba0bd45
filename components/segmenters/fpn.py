"""A feature pyramid segmentation head on any timm backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from ablate import SEGMENTERS, Range, did_you_mean


@SEGMENTERS.register("fpn", label="FPN")
class FPNSegmenter(nn.Module):
    """Any timm model's feature levels merged top-down (FPN, Lin et al. 2017) into a per-pixel classifier.

    The model runs with ``features_only``; each level gets a 1x1 lateral convolution, coarser levels are upsampled
    and added, then one 3x3 convolution and a 1x1 classifier at the finest level.

    Args:
        num_classes: classes per pixel (injected by the harness).
        model: timm model name, e.g. ``resnet50``, ``convnext_tiny``, ``test_resnet``.
        channels: width of the pyramid.
        checkpoint: a local weights file of the timm model (its classifier is dropped); random weights when not
            given, nothing is downloaded.
        model_args: extra keyword arguments for ``timm.create_model``.
    """

    def __init__(
        self,
        num_classes: int,
        model: str,
        channels: Annotated[int, Range(low=1)] = 64,
        checkpoint: str | None = None,
        model_args: dict | None = None,
    ) -> None:
        super().__init__()
        import timm  # where the network is built, as in the timm backbone: read-only commands skip it

        if model not in timm.list_models():
            raise ValueError(f"'{model}' is not a timm model{did_you_mean(model, timm.list_models())}")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
        kwargs: dict = {**(model_args or {}), "features_only": True}
        load = checkpoint is not None and torch.empty(0).device.type != "meta"  # validation builds shapes only
        if load:
            kwargs["pretrained_cfg_overlay"] = {"file": str(checkpoint)}
        self.encoder = timm.create_model(model, pretrained=load, **kwargs)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in self.encoder.feature_info.channels())
        self.fuse = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        levels = [lateral(f) for lateral, f in zip(self.lateral, self.encoder(images), strict=True)]
        merged = levels[-1]
        for level in reversed(levels[:-1]):
            merged = level + F.interpolate(merged, size=level.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(merged))
