"""Pre-training a backbone on a pretrainer's task (trial path step: train, before the trial's own training).

A backbone named with a ``pretrain`` task learns it once, through a linear classifier on its pooled map, and every
trial with that backbone and task starts from the result, as from one published checkpoint.
"""

from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ablate._registries import BACKBONES, PRETRAINERS
from ablate.cache._keys import pretrained_key
from ablate.config._resolve import ConfigError
from ablate.pipeline._data import Pretraining
from ablate.pipeline._loop import Diverged, adamw, autocast, grad_scaler, lr_factor, optimizer_step, place, to_tensor

if TYPE_CHECKING:
    from ablate.pipeline._train import Trainer

# a backbone's pre-training starts from one seed for every trial (like a published checkpoint), ramps its learning
# rate over this share of its steps, then decays it along a cosine, and logs its loss every so many steps
PRETRAIN_INIT_SEED = 0
PRETRAIN_WARMUP = 0.1
PRETRAIN_WEIGHT_DECAY = 0.05
PRETRAIN_LOG_EVERY = 100


def pretrained_backbone(trainer: Trainer, role: str) -> dict[str, torch.Tensor]:
    """The weights of ``role``'s backbone after its ``pretrain`` task, from the stage cache or trained now.

    They depend on the backbone, the pretrainer and their code only (not the trial seed or data).
    """
    network, device = trainer.config.network(role), trainer.device

    def build(folder: Path) -> None:
        where = f"{role}.pretrain ({network.pretrain['name']})"
        try:  # a pretrainer makes its task here (fractaldb draws its fractals): its settings can fail only now
            task = PRETRAINERS.build(network.pretrain)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        task.check(where)
        # on a fork of the random streams: what the trial draws next is the same whether this ran or was cached
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(PRETRAIN_INIT_SEED)
            backbone = place(BACKBONES.build(network.backbone), device)
            start = time.perf_counter()
            history = pretrain(backbone, task, device, f"{role} pretrain", trainer.bars)
        trainer.trainings += 1
        torch.save(backbone.state_dict(), folder / "backbone.pt")
        record = {"seconds": time.perf_counter() - start, "device": device.type, "history": history}
        (folder / "pretraining.json").write_text(json.dumps(record, indent=1))

    entry = trainer.cache.get_or_build("pretrained", pretrained_key(network), build)
    return torch.load(entry / "backbone.pt", map_location=device, weights_only=True)


def pretrain(backbone: nn.Module, task: Pretraining, device: torch.device, tag: str, bars: bool) -> list[dict]:
    """Train ``backbone`` in place on ``task`` through a linear classifier on its pooled map; one history entry
    (step, loss and accuracy since the last) per :data:`PRETRAIN_LOG_EVERY` steps."""
    head = nn.Linear(backbone.out_channels, int(np.max(task.labels)) + 1).to(device)
    params = [*backbone.parameters(), *head.parameters()]
    optimizer = adamw(params, device, task.lr, PRETRAIN_WEIGHT_DECAY)
    schedule = functools.partial(lr_factor, PRETRAIN_WARMUP, "cosine", task.steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = grad_scaler(device)
    generator = torch.Generator().manual_seed(task.seed)
    labels = torch.as_tensor(np.asarray(task.labels), dtype=torch.int64)
    n, batch = len(labels), task.batch_size
    order, position = torch.randperm(n, generator=generator), 0
    history: list[dict[str, float]] = []
    totals = torch.zeros(2)
    backbone.train()
    for step in tqdm(range(1, task.steps + 1), desc=tag, leave=False, disable=not bars):
        if position + batch > n:  # a new pass over the images in a new order
            order, position = torch.randperm(n, generator=generator), 0
        index = order[position : position + batch].sort().values
        position += batch
        images, targets = to_tensor(task.images[index.numpy()], device), labels[index].to(device)
        with autocast(device):
            logits = head(backbone(images).mean(dim=(2, 3))).float()
            loss = nn.functional.cross_entropy(logits, targets)
        optimizer_step(optimizer, scaler, scheduler, loss)
        totals += torch.stack([loss.detach(), (logits.argmax(1) == targets).float().mean()]).cpu()
        if step % PRETRAIN_LOG_EVERY == 0 or step == task.steps:
            seen = (step - 1) % PRETRAIN_LOG_EVERY + 1
            loss_mean, accuracy = (totals / seen).tolist()
            if not math.isfinite(loss_mean):
                raise Diverged(f"{tag} diverged before step {step} (loss {loss_mean})")
            history.append({"step": step, "loss": loss_mean, "accuracy": accuracy})
            totals.zero_()
    return history
