"""Training (trial path step: train): the loop every paradigm uses, and cached classifiers."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ablate._cache import StageCache
from ablate._code import TRAINING_MODULES, code_fingerprint
from ablate._config import ROLES, ConfigError
from ablate._data import Dataset, Pretraining
from ablate._models import Network, build_network
from ablate._paradigm import classification_loss
from ablate._registries import (
    BACKBONES,
    DATASETS,
    DISTANCES,
    HEADS,
    LEVELS,
    PARADIGMS,
    PRETRAINERS,
    PROJECTIONS,
)
from ablate._schema import TrialConfig, plain
from ablate._transfer import TransferLoss

# Losses are read back (a host sync, which stalls a GPU's queue) once per this many steps, not every step
SYNC_EVERY = 20
# a network's initial weights are seeded with (train.init_seed or the trial seed) * ROLE_SEEDS + its role's index,
# so the teacher and the student of one trial start from different streams and no two (seed, role) pairs below
# 1000 seeds share one
ROLE_SEEDS = 1000
# a backbone's pre-training starts from one seed for every trial (like a published checkpoint), ramps its learning
# rate over this share of its steps, then decays it along a cosine, and logs its loss every so many steps
PRETRAIN_INIT_SEED = 0
PRETRAIN_WARMUP = 0.1
PRETRAIN_WEIGHT_DECAY = 0.05
PRETRAIN_LOG_EVERY = 100
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


@functools.lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:20]


def file_digest(path: str | None) -> str | None:
    """Content hash of a weights file, so replacing the file invalidates networks trained from it."""
    if not path:
        return None
    stat = Path(path).stat()
    return _digest(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


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


class FrozenFeed:
    """A frozen network's aligned map (``network.aligned(network.align)``) for each training batch.

    Read from a stream the stage cache keeps (``[epochs, n, ...]``, batches in training order) or, without one,
    computed by running the network on the batch.

    Attributes:
        network: the frozen network.
    """

    def __init__(self, network: Network, stream: torch.Tensor | None) -> None:
        self.network = network
        self.stream = stream

    def __call__(self, epoch: int, start: int, images: torch.Tensor) -> torch.Tensor:
        """The map for the batch of ``images`` that starts at position ``start`` of epoch ``epoch`` (1-based)."""
        if self.stream is None:
            with torch.no_grad():
                return self.network(images).aligned(self.network.align)
        return self.stream[epoch - 1, start : start + images.shape[0]].to(images.device, non_blocking=True)


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


class Trainer:
    """What a paradigm gets to build and train its networks.

    Args:
        config: the resolved trial config.
        data: the loaded dataset.
        device: where to train.
        cache: the stage cache trained networks are stored in.
        progress: show a bar per epoch in a terminal; elsewhere (a log file) one line per epoch with its losses.
    """

    def __init__(
        self, config: TrialConfig, data: Dataset, device: torch.device, cache: StageCache, progress: bool = True
    ) -> None:
        self.config = config
        self.data = data
        self.device = device
        self.cache = cache
        self.progress = progress
        self.bars = progress and sys.stderr.isatty()  # bars redraw with carriage returns: a log keeps them all
        self.trainings = 0  # trainings actually executed (not loaded from the cache)
        self.history: list[dict[str, float]] = []
        self.checkpoints: list[Path] = []  # weight files of the networks this trial used
        # called after every epoch with the roles the fit trains and the epoch's history entry (it may raise to stop)
        self.on_epoch: Callable[[tuple[str, ...], dict[str, Any]], None] | None = None

    @property
    def transfer_weight(self) -> float:
        return float(self.config.transfer.lambda_)

    def build(self, role: str) -> Network:
        """A fresh network for ``role`` with weights seeded from ``train.init_seed`` (or the trial seed) and role."""
        init_seed = self.config.train.init_seed
        init_seed = self.config.seed if init_seed is None else init_seed
        torch.manual_seed(init_seed * ROLE_SEEDS + ROLES.index(role))
        network = place(build_network(self.config.network(role)), self.device)
        if self.config.network(role).pretrain is not None:  # the head keeps its seeded initial weights
            network.backbone.load_state_dict(self.pretrained_backbone(role))
        return network

    def pretrained_backbone(self, role: str) -> dict[str, torch.Tensor]:
        """The weights of ``role``'s backbone after its ``pretrain`` task, from the stage cache or trained now.

        They depend on the backbone, the pretrainer and their code only (not the trial seed or data): every
        trial with that backbone starts from them, as from one published checkpoint.
        """
        network = self.config.network(role)
        components = [(BACKBONES, network.backbone["name"]), (PRETRAINERS, network.pretrain["name"])]
        inputs = {
            "code": code_fingerprint(TRAINING_MODULES, components),
            "backbone": network.backbone,
            "checkpoint": file_digest(network.backbone.get("checkpoint")),
            "pretrain": network.pretrain,
        }

        def build(folder: Path) -> None:
            where = f"{role}.pretrain ({network.pretrain['name']})"
            try:  # a pretrainer makes its task here (fractaldb draws its fractals): its settings can fail only now
                task = PRETRAINERS.build(network.pretrain)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            task.check(where)
            # on a fork of the random streams: what the trial draws next is the same whether this ran or was cached
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(PRETRAIN_INIT_SEED)
                backbone = place(BACKBONES.build(network.backbone), self.device)
                start = time.perf_counter()
                history = self._pretrain(backbone, task, f"{role} pretrain")
            torch.save(backbone.state_dict(), folder / "backbone.pt")
            record = {"seconds": time.perf_counter() - start, "device": self.device.type, "history": history}
            (folder / "pretraining.json").write_text(json.dumps(record, indent=1))

        entry = self.cache.get_or_build("pretrained", inputs, build)
        return torch.load(entry / "backbone.pt", map_location=self.device, weights_only=True)

    def _pretrain(self, backbone: nn.Module, task: Pretraining, tag: str) -> list[dict[str, float]]:
        """Train ``backbone`` in place on ``task`` through a linear classifier on its pooled map; one history
        entry (step, loss and accuracy since the last) per :data:`PRETRAIN_LOG_EVERY` steps."""
        head = nn.Linear(backbone.out_channels, int(np.max(task.labels)) + 1).to(self.device)
        params = [*backbone.parameters(), *head.parameters()]
        optimizer = adamw(params, self.device, task.lr, PRETRAIN_WEIGHT_DECAY)
        schedule = functools.partial(lr_factor, PRETRAIN_WARMUP, "cosine", task.steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        scaler = grad_scaler(self.device)
        generator = torch.Generator().manual_seed(task.seed)
        labels = torch.as_tensor(np.asarray(task.labels), dtype=torch.int64)
        n, batch = len(labels), task.batch_size
        order, position = torch.randperm(n, generator=generator), 0
        history: list[dict[str, float]] = []
        totals = torch.zeros(2)
        backbone.train()
        for step in tqdm(range(1, task.steps + 1), desc=tag, leave=False, disable=not self.bars):
            if position + batch > n:  # a new pass over the images in a new order
                order, position = torch.randperm(n, generator=generator), 0
            index = order[position : position + batch].sort().values
            position += batch
            images, targets = to_tensor(task.images[index.numpy()], self.device), labels[index].to(self.device)
            with self._autocast():
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
        self.trainings += 1
        return history

    def transfer(self, student: Network, teacher: Network) -> TransferLoss:
        return TransferLoss(self.config.transfer, student.aligned_channels, teacher.aligned_channels).to(self.device)

    def model_inputs(self, roles: tuple[str, ...], extra: Any = None) -> dict[str, Any]:
        """Everything a trained model depends on, its code included; ``extra`` is the paradigm's own part."""
        config = self.config
        networks = {role: config.network(role) for role in roles}
        components = [(DATASETS, config.data["name"])]
        if extra is not None:  # the paradigm's own training; a network trained alone is the same under every paradigm
            components.append((PARADIGMS, config.paradigm["name"]))
        for network in networks.values():
            components += [(BACKBONES, network.backbone["name"]), (HEADS, network.head["name"])]
            if network.pretrain is not None:
                components.append((PRETRAINERS, network.pretrain["name"]))
        if isinstance(extra, dict) and extra.get("transfer"):
            transfer = config.transfer
            components += [(LEVELS, transfer.level["name"]), (DISTANCES, transfer.distance["name"])]
            components += [(PROJECTIONS, transfer.projection["name"])]
        return {
            "code": code_fingerprint(TRAINING_MODULES, components),
            "data": config.data,
            "data_fingerprint": self.data.fingerprint,
            "networks": {role: plain(network) for role, network in networks.items()},
            "checkpoints": {role: file_digest(net.backbone.get("checkpoint")) for role, net in networks.items()},
            "train": plain(config.train),
            "seed": config.seed,
            "paradigm": extra,
        }

    def paradigm_inputs(self, uses_transfer: bool) -> dict[str, Any]:
        """The paradigm's part of a model's cache key (the transfer section only when it is used)."""
        return {"paradigm": self.config.paradigm, "transfer": plain(self.config.transfer) if uses_transfer else None}

    def cached_networks(
        self, roles: tuple[str, ...], extra: Any, train: Callable[[], dict[str, Network]]
    ) -> dict[str, Network]:
        """Networks of ``roles`` from the stage cache, trained by ``train()`` if missing."""

        def build(folder: Path) -> None:
            networks = train()
            torch.save({role: networks[role].state_dict() for role in roles}, folder / "weights.pt")

        entry = self.cache.get_or_build("model", self.model_inputs(roles, extra), build)
        self.checkpoints.append(entry / "weights.pt")
        states = torch.load(entry / "weights.pt", map_location=self.device, weights_only=True)
        networks = {}
        for role in roles:
            network = place(build_network(self.config.network(role)), self.device)
            network.load_state_dict(states[role])
            networks[role] = network.eval()
        return networks

    def classifier(self, role: str) -> Network:
        """``role`` trained alone with L_cls; shared by every trial with the same network, data and seed."""

        def loss(outputs: dict[str, Any], labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            cls = classification_loss(outputs[role], labels)
            return cls, {"cls": cls}  # named as in every paradigm's history (a pruner watches it)

        def train() -> dict[str, Network]:
            network = self.build(role)
            self.fit({role: network}, loss, role)
            return {role: network}

        return self.cached_networks((role,), None, train)[role]

    def frozen_classifier(self, role: str) -> FrozenFeed:
        """``role`` trained alone (:meth:`classifier`), frozen, with its aligned map for every training batch.

        The maps depend only on that network, the data and the seed's batch order and augmentation, so they are
        computed once into the stage cache and shared by every trial that trains another network beside it
        (a lambda or level sweep); when they would take more than ``frozen_outputs_mb``, the feed runs the
        network instead.
        """
        live = FrozenFeed(self.classifier(role).requires_grad_(False), None)
        network, train_cfg, n = live.network, self.config.train, len(self.data.train)
        with self._autocast():
            sample = live(1, 0, to_tensor(self.data.train.images[:1], self.device))
        megabytes = sample.element_size() * sample.numel() * n * train_cfg.epochs / 2**20
        if megabytes > self.config.frozen_outputs_mb:
            return live

        def build(folder: Path) -> None:
            generator = torch.Generator().manual_seed(self.config.seed)
            stream = torch.empty((train_cfg.epochs, n, *sample.shape[1:]), dtype=sample.dtype)
            for epoch in range(train_cfg.epochs):
                order = torch.randperm(n, generator=generator).numpy()
                for start in range(0, n, train_cfg.batch_size):
                    images, _ = self._batch(order, start, generator)
                    with self._autocast():
                        stream[epoch, start : start + images.shape[0]] = live(epoch + 1, start, images).cpu()
            torch.save(stream, folder / "outputs.pt")

        inputs = {"model": self.model_inputs((role,), None), "align": network.align, "device": self.device.type}
        entry = self.cache.get_or_build("frozen_outputs", inputs, build)
        return FrozenFeed(network, torch.load(entry / "outputs.pt", weights_only=True))

    def _batch(self, order: np.ndarray, start: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (augmented with ``generator``) and labels of the batch at position ``start`` of ``order``."""
        split = self.data.train
        index = np.sort(order[start : start + self.config.train.batch_size])
        images = to_tensor(split.images[index], self.device)
        if self.config.train.augment:
            images, _ = augment(images, generator)
        return images, torch.from_numpy(split.labels[index]).to(self.device)

    def fit(
        self,
        networks: dict[str, nn.Module],
        loss_fn: LossFn,
        tag: str,
        extra: nn.Module | None = None,
        feeds: dict[str, FrozenFeed] | None = None,
    ) -> None:
        """Train the trainable parameters of ``networks`` (and ``extra``) with AdamW on the train split.

        ``loss_fn(outputs by role, labels)`` returns the loss and named parts (scalar tensors or numbers)
        for the history; the outputs hold each network's output and each of ``feeds``' map for the batch.
        Frozen networks (no parameter requiring grad) are run in eval mode without gradients.
        """
        train_cfg = self.config.train
        trainable = [m for m in networks.values() if any(p.requires_grad for p in m.parameters())]
        params = [p for m in [*trainable, *([extra] if extra is not None else [])] for p in m.parameters()]
        params = [p for p in params if p.requires_grad]
        optimizer = adamw(params, self.device, train_cfg.lr, train_cfg.weight_decay)
        # the batch order and augmentation draw from this generator only: frozen_classifier replays them
        generator = torch.Generator().manual_seed(self.config.seed)
        n, batch = len(self.data.train), train_cfg.batch_size
        total_steps = train_cfg.epochs * math.ceil(n / batch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, functools.partial(lr_factor, train_cfg.warmup, train_cfg.schedule, total_steps)
        )
        scaler = grad_scaler(self.device)
        averaged = [(m, _ema(m, train_cfg.ema)) for m in [*trainable, *([extra] if extra is not None else [])]]
        averages = [(module, average) for module, average in averaged if average is not None]
        # compiled in place (after the EMA copies): the weights keep their names, so it saves like any other network
        if train_cfg.compile:
            for module in trainable:
                module.compile()
        self.trainings += 1
        for epoch in range(1, train_cfg.epochs + 1):
            for module in networks.values():
                module.train(module in trainable)
            order = torch.randperm(n, generator=generator).numpy()
            steps = range(0, n, batch)
            bar = tqdm(steps, desc=f"{tag} epoch {epoch}/{train_cfg.epochs}", leave=False, disable=not self.bars)
            totals: dict[str, float] = {}
            pending: list[dict[str, torch.Tensor]] = []  # per-step losses still on the device
            for step, start in enumerate(bar, start=1):
                images, labels = self._batch(order, start, generator)
                with self._autocast():
                    outputs = {role: self._forward(m, images, m in trainable) for role, m in networks.items()}
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
            self.log_epoch(tag, epoch, train_cfg.epochs, means, scheduler.get_last_lr()[0])
            if self.on_epoch is not None:
                self.on_epoch(tuple(role for role, m in networks.items() if m in trainable), self.history[-1])
        for module, average in averages:  # the trained networks keep the averaged weights
            module.load_state_dict(average.module.state_dict())
        for module in networks.values():
            module.eval()

    def log_epoch(self, tag: str, epoch: int, epochs: int, means: dict[str, float], lr: float) -> None:
        """Add an epoch's mean losses to the history; outside a terminal also print them as one line."""
        self.history.append({"tag": tag, "epoch": epoch, **means, "lr": lr})
        if self.progress and not self.bars:
            losses = " ".join(f"{k} {v:.4f}" for k, v in means.items())
            print(f"{tag} epoch {epoch}/{epochs}: {losses}", file=sys.stderr, flush=True)

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device)

    @staticmethod
    def _forward(module: nn.Module, images: torch.Tensor, trainable: bool) -> Any:
        if trainable:
            return module(images)
        with torch.no_grad():
            return module(images)
