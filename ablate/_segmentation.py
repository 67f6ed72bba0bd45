"""Stage 3 (trial path step: segment): a segmentation network trained on the train split's pseudo-masks.

WSSS practice, as IRN, ToCo or CLIP-ES do it: an image labelled smoke-free gets no smoke pixel whatever its CAM
shows (label gating), and pixels near a pseudo-mask's boundary, where a CAM is least sure, are left out of the
loss (an ignore band). The segmenter learns from those targets with per-pixel cross entropy and is then evaluated
on the test split like any pseudo-mask.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ablate._config import ROLES
from ablate._data import CLASSES
from ablate._registries import SEGMENTERS
from ablate._schema import SegmentTraining
from ablate._train import (
    ROLE_SEEDS,
    SYNC_EVERY,
    Trainer,
    adamw,
    augment,
    autocast,
    grad_scaler,
    lr_factor,
    optimizer_step,
    place,
    sum_checked,
    to_tensor,
)

#: Target value of pixels left out of the loss.
IGNORE = 255
# the segmenter's initial weights are seeded with trial seed * ROLE_SEEDS + this: apart from every network's stream
SEGMENTER_STREAM = len(ROLES)
# AdamW ramps its learning rate over this share of the steps, then decays it along a cosine; poly SGD starts at
# its full rate and decays as (1 - t) ** 0.9, with this momentum (DeepLab's recipe)
ADAMW_WARMUP = 0.1
SGD_MOMENTUM = 0.9
PREDICT_BATCH = 32


def gate(masks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``masks`` (``[N, H, W]``) with every pixel of the images labelled 0 set to background."""
    return (masks.astype(bool) & (labels.reshape(-1, 1, 1) > 0)).astype(np.uint8)


def with_ignore_band(masks: np.ndarray, width: int) -> np.ndarray:
    """uint8 targets ``[N, H, W]``: the 0/1 masks, and :data:`IGNORE` on every pixel within ``width`` pixels
    (a square neighbourhood) of the other class."""
    targets = masks.astype(np.uint8)
    if width == 0:
        return targets
    x = torch.from_numpy(targets).float().unsqueeze(1)
    grown = F.max_pool2d(x, 2 * width + 1, stride=1, padding=width)
    shrunk = -F.max_pool2d(-x, 2 * width + 1, stride=1, padding=width)
    targets[(grown != shrunk)[:, 0].numpy()] = IGNORE
    return targets


def logits_at(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The segmenter's class logits upsampled (bilinear) to the images' size, as float32."""
    logits = model(images)
    return F.interpolate(logits.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)


def build_segmenter(spec: dict[str, Any], device: torch.device) -> nn.Module:
    """The ``segment`` spec's segmenter, for the dataset's classes, on ``device``."""
    return place(SEGMENTERS.build(spec, num_classes=len(CLASSES)), device)


def train_segmenter(trainer: Trainer, spec: dict[str, Any], images: np.ndarray, targets: np.ndarray) -> nn.Module:
    """A segmenter trained on ``images`` (uint8 ``[N, H, W, 3]``) and ``targets`` (uint8 ``[N, H, W]``: 0, 1 or
    :data:`IGNORE`) with the trial's seed, device, AMP and divergence checks; its epochs join ``trainer.history``
    under the tag ``segmenter``."""
    training = SegmentTraining.of(spec)
    device, seed = trainer.device, trainer.config.seed
    torch.manual_seed(seed * ROLE_SEEDS + SEGMENTER_STREAM)
    model = build_segmenter(spec, device)
    n, batch = len(images), training.batch_size
    total_steps = training.epochs * math.ceil(n / batch)
    if training.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = adamw(model.parameters(), device, training.lr, training.weight_decay)
        schedule = functools.partial(lr_factor, ADAMW_WARMUP, "cosine", total_steps)
    else:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=training.lr, momentum=SGD_MOMENTUM, weight_decay=training.weight_decay
        )
        schedule = functools.partial(lr_factor, 0.0, "poly", total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = grad_scaler(device)
    generator = torch.Generator().manual_seed(seed)
    all_targets = torch.from_numpy(targets)
    trainer.trainings += 1
    for epoch in range(1, training.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).numpy()
        steps = range(0, n, batch)
        desc = f"segmenter epoch {epoch}/{training.epochs}"
        bar = tqdm(steps, desc=desc, leave=False, disable=not trainer.bars)
        totals: dict[str, float] = {}
        pending: list[dict[str, torch.Tensor]] = []
        for step, start in enumerate(bar, start=1):
            index = np.sort(order[start : start + batch])
            x, y = to_tensor(images[index], device), all_targets[index].to(device).long()
            if training.augment:
                x, y = augment(x, generator, y)
            with autocast(device):
                loss = F.cross_entropy(logits_at(model, x), y, ignore_index=IGNORE)
            optimizer_step(optimizer, scaler, scheduler, loss)
            pending.append({"loss": loss.detach()})
            if step % SYNC_EVERY == 0 or step == len(steps):
                sum_checked(pending, epoch, step, totals, "segmenter")
                bar.set_postfix(loss=f"{totals['loss'] / step:.3f}")
                pending = []
        trainer.log_epoch(
            "segmenter", epoch, training.epochs, {"loss": totals["loss"] / len(steps)}, scheduler.get_last_lr()[0]
        )
    return model.eval()


def predict(model: nn.Module, images: np.ndarray, device: torch.device) -> np.ndarray:
    """The segmenter's smoke probability per pixel, float32 ``[N, H, W]``."""
    out = []
    with torch.no_grad():
        for start in range(0, len(images), PREDICT_BATCH):
            with autocast(device):
                logits = logits_at(model, to_tensor(images[start : start + PREDICT_BATCH], device))
            out.append(logits.softmax(dim=1)[:, 1].cpu())
    return torch.cat(out).numpy().astype(np.float32)


__all__ = ["IGNORE", "gate", "predict", "train_segmenter", "with_ignore_band"]
