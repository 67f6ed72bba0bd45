"""What a paradigm gets to build and train its networks (trial path step: train): :class:`Trainer`, networks
trained alone and shared by every trial that needs them, and the frozen networks' maps they stream."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ablate.cache._keys import frozen_outputs_key, model_key, paradigm_part
from ablate.cache._store import StageCache
from ablate.config._resolve import ROLES
from ablate.config._schema import TrialConfig
from ablate.pipeline._data import Dataset
from ablate.pipeline._loop import LossFn, autocast, fit, place, to_tensor, train_batch
from ablate.pipeline._models import Network, build_network
from ablate.pipeline._paradigm import classification_loss
from ablate.pipeline._pretrain import pretrained_backbone
from ablate.pipeline._transfer import TransferLoss

# a network's initial weights are seeded with (train.init_seed or the trial seed) * ROLE_SEEDS + its role's index,
# so the teacher and the student of one trial start from different streams and no two (seed, role) pairs below
# 1000 seeds share one
ROLE_SEEDS = 1000


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
        """The weights of ``role``'s backbone after its ``pretrain`` task (see :mod:`ablate.pipeline._pretrain`)."""
        return pretrained_backbone(self, role)

    def transfer(self, student: Network, teacher: Network) -> TransferLoss:
        return TransferLoss(self.config.transfer, student.aligned_channels, teacher.aligned_channels).to(self.device)

    def model_inputs(self, roles: tuple[str, ...], extra: Any = None) -> dict[str, Any]:
        """Everything a trained model depends on, its code included; ``extra`` is the paradigm's own part."""
        return model_key(self.config, self.data.fingerprint, roles, extra)

    def paradigm_inputs(self, uses_transfer: bool) -> dict[str, Any]:
        """The paradigm's part of a model's cache key (the transfer section only when it is used)."""
        return paradigm_part(self.config, uses_transfer)

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
        with autocast(self.device):
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
                    images, _ = train_batch(self, order, start, generator)
                    with autocast(self.device):
                        stream[epoch, start : start + images.shape[0]] = live(epoch + 1, start, images).cpu()
            torch.save(stream, folder / "outputs.pt")

        inputs = frozen_outputs_key(self.model_inputs((role,), None), network.align, self.device.type)
        entry = self.cache.get_or_build("frozen_outputs", inputs, build)
        return FrozenFeed(network, torch.load(entry / "outputs.pt", weights_only=True))

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
        fit(self, networks, loss_fn, tag, extra, feeds)

    def log_epoch(self, tag: str, epoch: int, epochs: int, means: dict[str, float], lr: float) -> None:
        """Add an epoch's mean losses to the history; outside a terminal also print them as one line."""
        self.history.append({"tag": tag, "epoch": epoch, **means, "lr": lr})
        if self.progress and not self.bars:
            losses = " ".join(f"{k} {v:.4f}" for k, v in means.items())
            print(f"{tag} epoch {epoch}/{epochs}: {losses}", file=sys.stderr, flush=True)
