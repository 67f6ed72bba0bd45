"""Stage 3 (trial path step: segment): a segmentation network trained on the train split's pseudo-masks.

WSSS practice, as IRN, ToCo or CLIP-ES do it: an image labelled smoke-free gets no smoke pixel whatever its CAM
shows (label gating), and pixels near a pseudo-mask's boundary, where a CAM is least sure, are left out of the
loss (an ignore band). The segmenter learns from those targets with per-pixel cross entropy and is then evaluated
on the test split like any pseudo-mask.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ablate._registries import SEGMENTERS
from ablate.cache._keys import pseudo_masks_key, segmenter_key
from ablate.config._resolve import ROLES
from ablate.config._schema import SegmentTraining, TrialConfig
from ablate.pipeline._data import CLASSES, fingerprint_arrays
from ablate.pipeline._evaluation import Evaluation
from ablate.pipeline._loop import (
    SYNC_EVERY,
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
from ablate.pipeline._metrics import evaluate
from ablate.pipeline._train import ROLE_SEEDS, Trainer

if TYPE_CHECKING:
    from ablate.pipeline._cams import TrainedMaps
    from ablate.pipeline._postprocess import Chain

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


class SegmentStage:
    """Stage 3 of one trial: the train split's pseudo-masks, the segmenter trained on them (or on the true masks),
    and its metrics, each from the stage cache or made now."""

    def __init__(self, config: TrialConfig, maps: TrainedMaps, chain: Chain) -> None:
        self.config = config
        self.maps = maps
        self.chain = chain
        self.training = SegmentTraining.of(config.segment)

    def pseudo_mask_key(self) -> dict[str, Any]:
        return pseudo_masks_key(self.maps.model_key, self.config, self.chain.default_step)

    def train_pseudo_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """The post-processed CAMs ``[N, H, W]`` and the pseudo-masks of the train split, gated by the image labels
        (an image labelled as holding no object has none)."""
        train = self.maps.data.train

        def build(folder: Path) -> None:
            state, _ = self.chain.run("train")
            masks = gate(state.mask, train.labels)
            np.savez(folder / "pseudo.npz", cams=state.cams.astype(np.float16), masks=np.packbits(masks, axis=-1))

        entry = self.maps.cache.get_or_build("pseudo_masks", self.pseudo_mask_key(), build)
        stored = np.load(entry / "pseudo.npz")
        width = train.images.shape[2]
        return stored["cams"].astype(np.float32), np.unpackbits(stored["masks"], axis=-1, count=width)

    def segmenter(self) -> nn.Module:
        """The segmenter trained on the train split's pseudo-masks (or true masks)."""
        spec, train, trainer = self.config.segment, self.maps.data.train, self.maps.trainer
        if self.training.masks == "ground_truth":
            source: dict[str, Any] = {"ground_truth": fingerprint_arrays(train.masks)}
        else:
            source = {"pseudo": self.pseudo_mask_key(), "ignore_band": self.training.ignore_band}

        def build(folder: Path) -> None:
            if self.training.masks == "ground_truth":
                targets = train.masks.astype(np.uint8)
            else:
                targets = with_ignore_band(self.train_pseudo_masks()[1], self.training.ignore_band)
            with self.maps.timings.timed("segment"):
                model = train_segmenter(trainer, spec, train.images, targets)
            torch.save(model.state_dict(), folder / "weights.pt")

        key = segmenter_key(self.config, source, self.maps.data.fingerprint)
        entry = self.maps.cache.get_or_build("segmenter", key, build)
        trainer.checkpoints.append(entry / "weights.pt")
        model = build_segmenter(spec, trainer.device)
        model.load_state_dict(torch.load(entry / "weights.pt", map_location=trainer.device, weights_only=True))
        return model.eval()

    def metrics(self, names: list[str]) -> tuple[dict[str, float], np.ndarray]:
        """Stage 3's metrics (``seg_``: the segmenter on test; ``train_``: the train pseudo-masks where the train
        split has masks; undefined ones left out) and the segmenter's test masks."""
        model, device = self.segmenter(), self.maps.device
        test, val, train = self.maps.data.test, self.maps.data.val, self.maps.data.train
        with self.maps.timings.timed("segment"):
            prob = predict(model, test.images, device)
            val_prob = predict(model, val.images, device) if val is not None else None
        pred = prob >= 0.5

        def image_prob(pixels: np.ndarray) -> np.ndarray:  # an image holds the class when any pixel does
            return pixels.reshape(len(pixels), -1).max(axis=1)

        seg = Evaluation(
            prob,
            pred,
            test.masks,
            test.labels,
            image_prob(prob),
            test.cooccur_masks,
            val_labels=val.labels if val is not None else None,
            val_smoke_prob=image_prob(val_prob) if val_prob is not None else None,
        )
        metrics = {f"seg_{name}": value for name, value in evaluate(seg, names).items()}
        if train.masks is not None and self.training.masks == "pseudo":
            cams, masks = self.train_pseudo_masks()
            class_prob = self.maps.cams("train")[1]
            pseudo = Evaluation(cams, masks.astype(bool), train.masks, train.labels, class_prob, train.cooccur_masks)
            metrics |= {f"train_{k}": v for k, v in evaluate(pseudo, names).items() if not np.isnan(v)}
        return metrics, pred
