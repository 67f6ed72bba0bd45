"""The training loop every paradigm and stage 3 use (trial path step: train), and its pieces: tensors from images,
augmentation, learning-rate schedules, mixed precision, optimiser steps and divergence checks."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from ablate.pipeline._train import FrozenFeed, Trainer

# Losses are read back (a host sync, which stalls a GPU's queue) once per this many steps, not every step
SYNC_EVERY = 20


# exponent of the poly learning-rate decay (DeepLab's)
POLY_POWER = 0.9


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the trial stops with this message."""


@functools.cache
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std on ``device``, copied there once rather than at every batch."""
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    return mean, torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> normalised float ``[B, 3, H, W]`` on ``device``."""
    mean, std = _mean_std(device)
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def augment(
    x: torch.Tensor, generator: torch.Generator, targets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Light augmentation: random horizontal flip and brightness/contrast jitter per image; per-pixel ``targets``
    (``[B, H, W]``, a segmenter's) are flipped with their images."""
    b = x.shape[0]
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    if targets is not None:
        targets = torch.where(flip.view(b, 1, 1), targets.flip(-1), targets)
    scale = (1 + 0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)).to(x.device)
    shift = (0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)).to(x.device)
    return x * scale + shift, targets


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss: torch.Tensor,
) -> None:
    """One update from ``loss``: backward through the (AMP) grad scaler, step, then the learning-rate schedule."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()


def lr_factor(warmup: float, schedule: str, total_steps: int, step: int) -> float:
    """Learning-rate multiplier of ``step`` (0-based): a linear ramp over the first ``warmup`` share of the
    steps, then constant, a cosine decay to 0 at ``total_steps``, or DeepLab's poly decay ``(1 - t) ** 0.9``."""
    ramp = max(1, round(warmup * total_steps)) if warmup > 0 else 0
    if step < ramp:
        return (step + 1) / ramp
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (step - ramp) / max(1, total_steps - ramp)))
    if schedule == "poly":
        return max(0.0, 1.0 - (step - ramp) / max(1, total_steps - ramp)) ** POLY_POWER
    return 1.0


def sum_checked(
    pending: list[dict[str, torch.Tensor]], epoch: int, last: int, totals: dict[str, float], tag: str
) -> None:
    """Add the ``pending`` steps' losses (ending at step ``last``) to ``totals``; raise at the first NaN/inf,
    naming the training (``tag``: the network, ``co-training`` or ``segmenter``)."""
    keys = list(pending[0])
    values = torch.stack([torch.stack([p[k].float() for k in keys]) for p in pending]).tolist()  # one sync
    for offset, row in enumerate(values):
        if not math.isfinite(row[0]):
            step = last - len(values) + 1 + offset
            raise Diverged(f"{tag} diverged at epoch {epoch}, step {step} (loss {row[0]})")
        for key, value in zip(keys, row, strict=True):
            totals[key] = totals.get(key, 0.0) + value


LossFn = Callable[[dict[str, Any], torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor | float]]]


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype of training on ``device``: bfloat16 on GPUs with native support (Ampere and later: the
    range of float32, so no loss scaling), float16 on older CUDA GPUs (with loss scaling), None (float32) elsewhere."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to :func:`amp_dtype` on CUDA, nothing elsewhere."""
    dtype = amp_dtype(device)
    return contextlib.nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, active only where training autocasts to float16 (whose range small gradients underflow)."""
    return torch.amp.GradScaler("cuda", enabled=amp_dtype(device) == torch.float16)


def adamw(params: Any, device: torch.device, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, with the fused CUDA kernel on GPUs (one launch for every parameter instead of several per tensor)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=device.type == "cuda")


def place(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` moved to ``device``; on CUDA its convolution weights in channels-last layout, which the GPU's
    tensor-core convolutions run fastest on (:func:`to_tensor` gives images that layout there too)."""
    if device.type == "cuda":
        return module.to(device, memory_format=torch.channels_last)
    return module.to(device)


def _ema(module: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of ``module``'s weights and buffers (None when ``decay`` is 0)."""
    if not decay:
        return None
    return torch.optim.swa_utils.AveragedModel(
        module, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True
    )


def train_batch(
    trainer: Trainer, order: np.ndarray, start: int, generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """Images (augmented with ``generator``) and labels of the train batch at position ``start`` of ``order``."""
    split, train_cfg = trainer.data.train, trainer.config.train
    index = np.sort(order[start : start + train_cfg.batch_size])
    images = to_tensor(split.images[index], trainer.device)
    if train_cfg.augment:
        images, _ = augment(images, generator)
    return images, torch.from_numpy(split.labels[index]).to(trainer.device)


def _forward(module: nn.Module, images: torch.Tensor, trainable: bool) -> Any:
    if trainable:
        return module(images)
    with torch.no_grad():
        return module(images)


def fit(
    trainer: Trainer,
    networks: dict[str, nn.Module],
    loss_fn: LossFn,
    tag: str,
    extra: nn.Module | None = None,
    feeds: dict[str, FrozenFeed] | None = None,
) -> None:
    """Train the trainable parameters of ``networks`` (and ``extra``) with AdamW on the train split
    (:meth:`ablate.Trainer.fit` documents the contract)."""
    train_cfg, device = trainer.config.train, trainer.device
    trainable = [m for m in networks.values() if any(p.requires_grad for p in m.parameters())]
    params = [p for m in [*trainable, *([extra] if extra is not None else [])] for p in m.parameters()]
    params = [p for p in params if p.requires_grad]
    optimizer = adamw(params, device, train_cfg.lr, train_cfg.weight_decay)
    # the batch order and augmentation draw from this generator only: frozen_classifier replays them
    generator = torch.Generator().manual_seed(trainer.config.seed)
    n, batch = len(trainer.data.train), train_cfg.batch_size
    total_steps = train_cfg.epochs * math.ceil(n / batch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(lr_factor, train_cfg.warmup, train_cfg.schedule, total_steps)
    )
    scaler = grad_scaler(device)
    averaged = [(m, _ema(m, train_cfg.ema)) for m in [*trainable, *([extra] if extra is not None else [])]]
    averages = [(module, average) for module, average in averaged if average is not None]
    # compiled in place (after the EMA copies): the weights keep their names, so it saves like any other network
    if train_cfg.compile:
        for module in trainable:
            module.compile()
    trainer.trainings += 1
    for epoch in range(1, train_cfg.epochs + 1):
        for module in networks.values():
            module.train(module in trainable)
        order = torch.randperm(n, generator=generator).numpy()
        steps = range(0, n, batch)
        bar = tqdm(steps, desc=f"{tag} epoch {epoch}/{train_cfg.epochs}", leave=False, disable=not trainer.bars)
        totals: dict[str, float] = {}
        pending: list[dict[str, torch.Tensor]] = []  # per-step losses still on the device
        for step, start in enumerate(bar, start=1):
            images, labels = train_batch(trainer, order, start, generator)
            with autocast(device):
                outputs = {role: _forward(m, images, m in trainable) for role, m in networks.items()}
                outputs |= {name: feed(epoch, start, images) for name, feed in (feeds or {}).items()}
                loss, parts = loss_fn(outputs, labels)
            optimizer_step(optimizer, scaler, scheduler, loss)
            for module, average in averages:
                average.update_parameters(module)
            # parts may be numbers or tensors on another device (a plugin's constant, say)
            parts = {k: torch.as_tensor(v).detach().to(loss.device) for k, v in parts.items()}
            pending.append({"loss": loss.detach(), **parts})
            if step % SYNC_EVERY == 0 or step == len(steps):
                sum_checked(pending, epoch, step, totals, tag)
                bar.set_postfix(loss=f"{totals['loss'] / step:.3f}")
                pending = []
        means = {k: v / len(steps) for k, v in totals.items()}
        trainer.log_epoch(tag, epoch, train_cfg.epochs, means, scheduler.get_last_lr()[0])
        if trainer.on_epoch is not None:
            trainer.on_epoch(tuple(role for role, m in networks.items() if m in trainable), trainer.history[-1])
    for module, average in averages:  # the trained networks keep the averaged weights
        module.load_state_dict(average.module.state_dict())
    for module in networks.values():
        module.eval()
