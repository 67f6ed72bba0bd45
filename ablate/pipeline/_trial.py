"""One trial end to end: config -> data -> train -> CAMs -> post-processing -> metrics (-> stage 3).

Each step is a module of this package and every expensive one goes through the stage cache under a key made in
:mod:`ablate.cache._keys`, so networks are trained (or even loaded) only when a map they feed is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ablate._registries import DATASETS, METRICS, PARADIGMS
from ablate.cache._keys import trial_code
from ablate.cache._store import StageCache
from ablate.config._check import check_segment, default_mask_step, validate
from ablate.config._resolve import ConfigError
from ablate.config._schema import TrialConfig
from ablate.pipeline._cams import TrainedMaps
from ablate.pipeline._data import Dataset
from ablate.pipeline._device import describe_device, select_device
from ablate.pipeline._evaluation import Evaluation
from ablate.pipeline._loop import Diverged
from ablate.pipeline._metrics import evaluate, per_image_iou
from ablate.pipeline._postprocess import Chain
from ablate.pipeline._segment import SegmentStage
from ablate.pipeline._timings import Timings
from ablate.pipeline._train import Trainer


@dataclass
class TrialResult:
    """What one trial produced.

    Attributes:
        metrics: metric name -> value on the test split; with a ``segment`` stage also the segmenter's on the test
            split (``seg_`` names) and the gated train pseudo-masks' where the train split has masks (``train_``).
        per_image_iou: smoke IoU per test image (NaN for images without smoke), for paired tests.
        image_names: names of the test images, aligned with ``per_image_iou``.
        seg_per_image_iou: with a ``segment`` stage, the segmenter's smoke IoU per test image (else None).
        code: module name -> source hash of the code the numbers came from: the harness modules of every stage
            and the modules of the config's components and metrics (a study warns when it has changed since).
        trainings: trainings executed by this trial (0 when every network came from the cache).
        timings: seconds spent per stage (data, train, cams, postprocess, metrics).
        marks: what qualifies every number of the trial (``oracle``: a step looked at the ground truth;
            ``random weights``: a step ran a model without trained weights), see ``_postprocess.MARKS``.
        history: per-epoch mean losses of the trainings this trial executed.
        checkpoints: weight files (in the stage cache) of the networks this trial trained or loaded.
        device: where it ran, e.g. ``cpu`` or ``cuda (NVIDIA H100 80GB HBM3)``.
        config: the resolved config.
        names: ``class`` (what the masks mark) and ``object`` (the co-occurring object), from the dataset.
        gallery: for a fixed set of test images (see :func:`gallery_indices`): ``indices``,
            ``images``, ``masks``, ``cooccur`` (ground truth), ``cams`` and ``pred`` (this trial's output), and
            ``seg_pred`` (the segmenter's masks) with a ``segment`` stage.
    """

    metrics: dict[str, float]
    per_image_iou: list[float]
    image_names: list[str]
    trainings: int
    timings: dict[str, float]
    marks: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    device: str = "cpu"
    config: dict[str, Any] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    seg_per_image_iou: list[float] | None = None
    gallery: dict[str, np.ndarray] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)

    @property
    def oracle(self) -> bool:
        """Whether a step looked at the ground truth: every metric is then an oracle number."""
        return "oracle" in self.marks


def gallery_indices(labels: np.ndarray, cooccur: np.ndarray | None, per_case: int = 2) -> np.ndarray:
    """The first ``per_case`` test images of each case: smoke with / without the co-occurring object,
    the object without smoke, and clean negatives (the cases that show co-occurrence bias)."""
    has_object = cooccur.reshape(len(labels), -1).any(axis=1) if cooccur is not None else np.zeros(len(labels), bool)
    picked = []
    for smoke, obj in ((1, True), (1, False), (0, True), (0, False)):
        picked += np.flatnonzero((labels == smoke) & (has_object == obj))[:per_case].tolist()
    return np.array(picked, dtype=np.int64)


def load_data(spec: dict[str, Any], cache: StageCache) -> Dataset:
    """The dataset of a config's ``data`` slot (generated, or checked before any training starts)."""
    try:
        return DATASETS.build(spec, cache_dir=cache.root)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"data ({spec['name']}): {exc}") from None


class TrialRun:
    """One trial's stages in order: data, train (on demand), CAMs, post-processing, metrics, and stage 3."""

    def __init__(
        self,
        config: TrialConfig,
        cache: StageCache,
        progress: bool,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.timings = Timings()
        with self.timings.timed("data"):
            self.data = load_data(config.data, cache)
        self.device = select_device(config.device)
        paradigm = PARADIGMS.build(config.paradigm)
        self.trainer = Trainer(config, self.data, self.device, cache, progress)
        self.maps = TrainedMaps(config, self.data, self.trainer, paradigm, self.timings)
        if on_epoch is not None:  # the epochs of the network the trial evaluates
            watched = self.maps.cam_role
            self.trainer.on_epoch = lambda roles, entry: on_epoch(entry) if watched in roles else None
        self.chain = Chain(config, self.maps, default_mask_step())
        self.segment = SegmentStage(config, self.maps, self.chain) if config.segment is not None else None

    def run(self) -> TrialResult:
        check_segment(self.config.segment, self.config.data, self.data.train.masks is not None)
        class_prob = self.maps.cams("test")[1]
        state, marks = self.chain.run("test")
        test = self.data.test
        val = self.data.val
        val_prob = self.maps.cams("val")[1] if val is not None else None
        names = self.config.metrics or METRICS.names()
        with self.timings.timed("metrics"):
            ev = Evaluation(
                state.cams,
                state.mask,
                test.masks,
                test.labels,
                class_prob,
                test.cooccur_masks,
                val_labels=val.labels if val is not None else None,
                val_smoke_prob=val_prob,
            )
            metrics = evaluate(ev, names)
            ious = per_image_iou(state.mask, test.masks)
        shown = gallery_indices(test.labels, test.cooccur_masks)
        gallery = {
            "indices": shown,
            "images": test.images[shown],
            "masks": test.masks[shown],
            "cams": state.cams[shown].astype(np.float16),
            "pred": state.mask[shown],
        }
        seg_ious = None
        if self.segment is not None:
            seg_metrics, seg_pred = self.segment.metrics(names)
            metrics |= seg_metrics
            gallery["seg_pred"] = seg_pred[shown]
            seg_ious = [float(v) for v in per_image_iou(seg_pred, test.masks)]
        if test.cooccur_masks is not None:
            gallery["cooccur"] = test.cooccur_masks[shown]
        return TrialResult(
            metrics=metrics,
            per_image_iou=[float(v) for v in ious],
            image_names=list(test.names) or [str(i) for i in range(len(test))],
            trainings=self.trainer.trainings,
            timings=dict(self.timings),
            marks=marks,
            history=self.trainer.history,
            checkpoints=[str(p) for p in self.trainer.checkpoints],
            device=describe_device(self.device),
            config=self.config.to_dict(),
            names={"class": self.data.class_name, "object": self.data.object_name},
            gallery=gallery,
            seg_per_image_iou=seg_ious,
            code=trial_code(self.config.to_dict(), metrics),
        )


def run_trial(
    config: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    cache: StageCache | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrialResult:
    """Train and evaluate one configuration.

    Args:
        config: a (partial) trial config; missing keys take :data:`ablate.DEFAULTS`.
        overrides: dotted-path overrides, e.g. ``{"transfer.lambda": 0.5}``.
        cache: the stage cache (default: ``$ABLATE_CACHE`` or ``~/.cache/ablate``).
        progress: show per-epoch progress bars.
        on_epoch: called with each epoch's history entry (``epoch``, ``cls``, ``loss``, ...) of the training of the
            network the trial evaluates (its CAM network); it may raise, e.g. ``optuna.TrialPruned``, to stop the trial.

    Raises:
        ConfigError: the config is invalid or its data is missing or broken.
        Diverged: the loss became NaN or infinite ("student diverged at epoch e, step s").
    """
    resolved = TrialConfig.from_dict(validate(config, overrides))
    if resolved.threads:
        torch.set_num_threads(resolved.threads)
    return TrialRun(resolved, cache or StageCache(), progress, on_epoch).run()


__all__ = ["Diverged", "TrialResult", "TrialRun", "load_data", "run_trial"]
