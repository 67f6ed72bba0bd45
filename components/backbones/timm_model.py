"""Any timm model as a backbone."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pickle
import socket
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ablate import BACKBONES, did_you_mean, resolve_module


@BACKBONES.register("timm")
class TimmBackbone(nn.Module):
    """Any timm model (CNN or ViT) by name; ViT tokens become a [B, D, H/p, W/p] map.

    Args:
        model: timm model name, e.g. ``resnet50``, ``vit_base_patch16_224``, ``test_vit``.
        pretrained: download timm's pretrained weights (needs internet; offline use ``checkpoint``).
        checkpoint: path of a local weights file (timm/torch state dict) to load.
        model_args: extra keyword arguments for ``timm.create_model``, e.g. ``{patch_size: 8}``.
        conv_stem: ViTs only: replace the patchify convolution by a stack of 3x3 stride-2 convolutions
            (batch norm, ReLU) and a 1x1 projection with the same total stride, as in Xiao et al.,
            "Early Convolutions Help Transformers See Better" (NeurIPS 2021): ViTs trained from scratch
            on little data then learn in far fewer steps. The blocks, tokens and CAM layer are unchanged.
    """

    def __init__(
        self,
        model: str,
        pretrained: bool = False,
        checkpoint: str | None = None,
        model_args: dict | None = None,
        conv_stem: bool = False,
    ) -> None:
        super().__init__()
        # timm is imported where a network is built, not at the top: the commands that only read stored trials
        # (status, report) load every component and would otherwise pay timm's import of torchvision (seconds)
        import timm

        if model not in timm.list_models():
            hint = did_you_mean(model, timm.list_models())
            raise ValueError(f"'{model}' is not a timm model{hint}; `timm.list_models()` lists them")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(f"backbone '{model}': checkpoint {checkpoint} does not exist")
        on_meta = torch.empty(0).device.type == "meta"  # validation builds on meta: shapes only, no weights
        if on_meta and checkpoint is not None:
            _check_loads(model, checkpoint)
        if on_meta and pretrained and checkpoint is None and not _pretrained_reachable(model):
            raise ValueError(_offline_message(model))
        load = not on_meta and (pretrained or checkpoint is not None)
        kwargs: dict = {**(model_args or {}), "num_classes": 0}
        if load and checkpoint is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": str(checkpoint)}
        with _stem_keys_expected(conv_stem):
            self.model = self._create(model, load, kwargs)
        if checkpoint is not None:  # validation too: it builds on the meta device, with every key
            _check_covers(self.model, model, checkpoint, conv_stem)
        self.name = model
        self.out_channels: int = self.model.num_features
        self.num_prefix_tokens: int = getattr(self.model, "num_prefix_tokens", 0) if self.is_vit else 0
        if conv_stem:
            if not self.is_vit:
                raise ValueError(f"backbone '{model}': conv_stem needs a ViT (a model with patch_embed and blocks)")
            self.model.patch_embed.proj = _conv_stem(self.model.patch_embed.proj)
            if load and checkpoint is not None:
                _load_stem(self.model.patch_embed.proj, model, checkpoint)

    @staticmethod
    def _create(model: str, load: bool, kwargs: dict) -> nn.Module:
        import timm

        try:
            try:  # ViTs accept any input size that fits the patch grid
                return timm.create_model(model, pretrained=load, dynamic_img_size=True, **kwargs)
            except TypeError:
                return timm.create_model(model, pretrained=load, **kwargs)
        except (OSError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError) as exc:
            if "pretrained_cfg_overlay" in kwargs:
                detail = " ".join(str(exc).split())[:200]
                raise ValueError(f"backbone '{model}': cannot load checkpoint: {detail}") from None
            if load:
                raise ValueError(_offline_message(model)) from None
            raise

    @property
    def is_vit(self) -> bool:
        return hasattr(self.model, "patch_embed") and hasattr(self.model, "blocks")

    def to_map(self, output: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Turn a layer output into a ``[B, C, h, w]`` map (token sequences are reshaped)."""
        if output.ndim == 4:
            return output
        tokens = output[:, self.num_prefix_tokens :]
        patch_h, patch_w = self.model.patch_embed.patch_size
        h, w = images.shape[-2] // patch_h, images.shape[-1] // patch_w
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.to_map(self.model.forward_features(images), images)

    def cam_layer(self, path: str | None) -> nn.Module:
        """The module Grad-CAM hooks: ``path`` inside the timm model, or its last block/stage."""
        if path is not None:
            return resolve_module(self.model, path)
        if self.is_vit:
            return self.model.blocks[-1].norm1  # the paper's layer
        return self  # CNN: the final feature map


def _check_loads(model: str, checkpoint: str) -> None:
    """Raise ``ValueError`` naming ``checkpoint`` unless it is a torch file of tensors (a state dict)."""
    try:
        with torch.device("cpu"):
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        text = str(exc)
        if "WeightsUnpickler error:" in text:  # the reason, without torch's paragraph on weights_only
            text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
        detail = " ".join(text.split())[:160]
        raise ValueError(
            f"backbone '{model}': checkpoint {checkpoint} is not a torch weights file (a state dict of tensors, as "
            f"torch.save(model.state_dict()) writes): {detail}"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(
            f"backbone '{model}': checkpoint {checkpoint} holds a {type(state).__name__}, not a state dict"
        )


def _check_covers(net: nn.Module, model: str, checkpoint: str, conv_stem: bool) -> None:
    """Raise ``ValueError`` unless ``checkpoint`` holds every tensor of ``net``: timm only logs the keys a file
    lacks, so another network's weights (or an export's ``weights.pt`` of several) left this one at random."""
    found = _tensor_names(checkpoint, Path(checkpoint).stat().st_mtime_ns)
    skipped = ("patch_embed.proj.",) if conv_stem else ()  # the conv stem is loaded next, by _load_stem
    # a batch norm's step counter is no weight: published checkpoints often leave it out
    needed = [k for k in net.state_dict() if not k.endswith("num_batches_tracked") and not k.startswith(skipped)]
    missing = [key for key in needed if key not in found]
    if missing:
        raise ValueError(
            f"backbone '{model}': checkpoint {checkpoint} lacks {len(missing)} of the network's {len(needed)} tensors "
            f"(e.g. {', '.join(missing[:3])}; it holds e.g. {', '.join(sorted(found)[:3]) or 'nothing'}): it is not "
            f"this network's weights; `ablate export` writes <role>_backbone.pt for each network"
        )


@functools.lru_cache(maxsize=8)
def _tensor_names(checkpoint: str, modified: int) -> frozenset[str]:
    """The tensor names of a checkpoint as timm reads it, read once per version of the file (validation checks it for
    every grid configuration, and every trial builds its networks from it)."""
    import timm

    with torch.device("cpu"):
        return frozenset(timm.models.load_state_dict(checkpoint))


def _conv_stem(patchify: nn.Conv2d) -> nn.Sequential:
    """3x3 stride-2 conv + BN + ReLU layers, widths doubling up to half the embedding, then a 1x1 conv to it."""
    stride = patchify.stride[0]
    if stride != patchify.stride[1] or stride & (stride - 1) or stride < 2:
        raise ValueError(f"conv_stem needs a square power-of-two patch size, got {tuple(patchify.stride)}")
    depth, width = stride.bit_length() - 1, patchify.out_channels
    layers: list[nn.Module] = []
    channels = patchify.in_channels
    for i in range(depth):
        out = max(16, width >> (depth - i))
        layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        channels = out
    return nn.Sequential(*layers, nn.Conv2d(channels, width, 1))


def _load_stem(stem: nn.Sequential, model: str, checkpoint: str) -> None:
    """Load the conv stem's weights from ``checkpoint`` (timm loaded the rest into the plain model, which has no
    place for them). A checkpoint with a plain patchify convolution (a published ViT) leaves the stem fresh."""
    import timm

    prefix = "patch_embed.proj."
    state = timm.models.load_state_dict(checkpoint)
    weights = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
    if set(weights) <= {"weight", "bias"}:
        return
    try:
        stem.load_state_dict(weights)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ValueError(f"backbone '{model}': checkpoint {checkpoint} has another conv stem: {detail}") from None


@contextlib.contextmanager
def _stem_keys_expected(conv_stem: bool) -> Iterator[None]:
    """Silence timm's warning about a checkpoint's conv stem keys, which :func:`_load_stem` loads next."""
    logger = logging.getLogger("timm.models._builder")

    def only_others(record: logging.LogRecord) -> bool:
        return "patch_embed.proj." not in record.getMessage()

    if conv_stem:
        logger.addFilter(only_others)
    try:
        yield
    finally:
        logger.removeFilter(only_others)


def _offline_message(model: str) -> str:
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    return (
        f"backbone '{model}': pretrained weights cannot be downloaded{offline}; "
        "set `checkpoint: /path/to/weights` to load a local file instead"
    )


def _pretrained_reachable(model: str) -> bool:
    """Whether timm could fetch ``model``'s weights: already in the local hub cache, or the hub answers."""
    import timm

    hub_id = getattr(timm.models.get_pretrained_cfg(model), "hf_hub_id", None)
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        if any(isinstance(try_to_load_from_cache(hub_id, f), str) for f in ("model.safetensors", "pytorch_model.bin")):
            return True
    if os.environ.get("HF_HUB_OFFLINE"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        return False
    return True
