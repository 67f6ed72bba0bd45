"""One trial end to end: config -> data -> train -> CAMs -> post-processing -> metrics.

Every expensive step goes through the stage cache keyed by the config parts it depends on,
so networks are trained (or even loaded) only when a CAM set they feed is missing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from ablate._cache import StageCache
from ablate._cams import compute_cams
from ablate._code import CAM_MODULES, POSTPROCESS_MODULES, SEGMENT_MODULES, TRAINING_MODULES, code_fingerprint
from ablate._config import COMPONENT_SLOTS, ConfigError, get_dotted
from ablate._data import Dataset, Split, fingerprint_arrays
from ablate._device import describe_device, select_device
from ablate._evaluation import Evaluation
from ablate._metrics import evaluate, per_image_iou
from ablate._pool import map_images
from ablate._postprocess import PostState
from ablate._registries import ALL, CAMS, DATASETS, METRICS, PARADIGMS, POSTPROCESSORS, SEGMENTERS
from ablate._schema import SegmentTraining, TrialConfig
from ablate._segmentation import build_segmenter, gate, predict, train_segmenter, with_ignore_band
from ablate._train import Diverged, Trainer, file_digest, to_tensor
from ablate._validate import default_mask_step, validate

T = TypeVar("T")
#: The file of a cache entry computed from trained networks that lists their weight files (relative to the cache).
WEIGHTS_RECORD = "weights.json"


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
        oracle: True when a step looked at the ground truth; every metric is then an oracle number.
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
    oracle: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    device: str = "cpu"
    config: dict[str, Any] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    seg_per_image_iou: list[float] | None = None
    gallery: dict[str, np.ndarray] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)


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


def check_segment(segment: dict[str, Any] | None, spec: dict[str, Any], train_masks: bool) -> None:
    """Refuse a stage 3 that learns from ground-truth masks the data ``spec`` does not have (``train_masks``)."""
    if segment is not None and segment["masks"] == "ground_truth" and not train_masks:
        raise ConfigError(
            f"segment.masks: ground_truth needs masks of the train split, and data '{spec['name']}' has none "
            "(use masks: pseudo)"
        )


class TrialRun:
    """The state of one running trial; also the :class:`ablate.PostContext` post-processors see."""

    def __init__(
        self,
        config: TrialConfig,
        cache: StageCache,
        progress: bool,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.cache = cache
        self.seed = config.seed
        self.device = select_device(config.device)
        self.timings: dict[str, float] = {}
        self._step: str | None = None  # the post-processing step running now (its code keys its cached values)
        self._split = "test"  # the split the post-processing chain runs on now (train: stage 3's pseudo-masks)
        with self.timed("data"):
            self.data = load_data(config.data, cache)
        self.paradigm = PARADIGMS.build(config.paradigm)
        self.trainer = Trainer(config, self.data, self.device, cache, progress)
        if on_epoch is not None:  # the epochs of the network the trial evaluates (a fused CAM: the last trained)
            watched = config.cam["network"] if config.cam["network"] != "both" else self.paradigm.roles[-1]
            self.trainer.on_epoch = lambda roles, entry: on_epoch(entry) if watched in roles else None
        self._networks: dict[str, Any] | None = None

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def train(self) -> dict[str, Any]:
        """The train step: the paradigm's networks by role, trained or loaded from the stage cache on first call.

        Only a CAM set or feature map missing from the cache calls it, so a trial whose maps are all cached
        neither trains nor loads a network.
        """
        if self._networks is None:
            with self.timed("train"):
                self._networks = self.paradigm.fit(self.trainer)
        return self._networks

    @cached_property
    def model_inputs(self) -> dict[str, Any]:
        return self.trainer.model_inputs(self.paradigm.roles, self.trainer.paradigm_inputs(self.paradigm.uses_transfer))

    def _cam_set(self, split: str, scale: float, flip: bool, layer: str | None) -> tuple[np.ndarray, np.ndarray]:
        inputs = {
            "model": self.model_inputs,
            "cam": self.config.cam,
            "code": code_fingerprint(CAM_MODULES, [(CAMS, self.config.cam["name"])]),
            "split": split,
            "scale": scale,
            "flip": flip,
            "layer": layer,
        }
        images = getattr(self.data, split).images

        def build(folder: Any) -> None:
            networks = self.train()  # outside the "cams" timer
            with self.timed("cams"):
                cams, probs = compute_cams(
                    networks, self.config.cam, images, self.device, scale=scale, flip=flip, layer=layer
                )
            np.savez(folder / "cams.npz", cams=cams.astype(np.float16), smoke_prob=probs)

        stored = np.load(self._from_networks("cams", inputs, build) / "cams.npz")
        return stored["cams"].astype(np.float32), stored["smoke_prob"]

    def _from_networks(self, stage: str, inputs: dict[str, Any], build: Callable[[Path], None]) -> Path:
        """The cache entry of a map computed from the trained networks. It records their weight files, so that a
        trial served from it, which loads no network, still names the weights its numbers stand on (``ablate
        export`` hands them on)."""

        def build_and_record(folder: Path) -> None:
            build(folder)
            weights = [str(path.relative_to(self.cache.root)) for path in self.trainer.checkpoints]
            (folder / WEIGHTS_RECORD).write_text(json.dumps(weights))

        entry = self.cache.get_or_build(stage, inputs, build_and_record)
        record = entry / WEIGHTS_RECORD
        for path in json.loads(record.read_text()) if record.is_file() else []:
            if self.cache.root / path not in self.trainer.checkpoints:
                self.trainer.checkpoints.append(self.cache.root / path)
        return entry

    # --- PostContext -------------------------------------------------------------------------
    def cams(self, *, scale: float = 1.0, flip: bool = False, layer: str | None = None) -> np.ndarray:
        return self._cam_set(self._split, scale, flip, layer)[0]

    def features(self) -> np.ndarray:
        role = self.config.cam["network"]
        role = self.paradigm.roles[-1] if role == "both" else role
        images = self._current.images

        def build(folder: Any) -> None:
            network, out = self.train()[role], []
            with torch.no_grad():
                for start in range(0, len(images), 32):
                    out.append(network(to_tensor(images[start : start + 32], self.device)).features)
            np.save(folder / "features.npy", torch.cat(out).float().cpu().numpy().astype(np.float16))

        inputs = {"model": self.model_inputs, "role": role, "split": self._split}
        entry = self._from_networks("features", inputs, build)
        return np.load(entry / "features.npy").astype(np.float32)

    def train_split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.data.train.images, self.data.train.labels, self._cam_set("train", 1.0, False, None)[0]

    def cached(self, name: str, params: dict[str, Any], build: Callable[[], T], *, per_split: bool = True) -> T:
        # the running step's module: it decides what ``build`` computes, whatever it names its entry
        code = code_fingerprint(POSTPROCESS_MODULES, [(POSTPROCESSORS, self._step)] if self._step else [])
        inputs = {"model": self.model_inputs, "cam": self.config.cam, "code": code, "name": name, "params": params}
        if per_split:
            inputs["split"] = self._split
        entry = self.cache.get_or_build("post", inputs, lambda folder: torch.save(build(), folder / "value.pt"))
        return torch.load(entry / "value.pt", weights_only=False)

    def ground_truth(self) -> np.ndarray:
        if self._current.masks is None:
            where = f"postprocess ({self._step})"
            raise ConfigError(f"{where}: it reads the ground truth, and the {self._split} split has no masks")
        return self._current.masks

    def map_images(self, fn: Callable[..., T], *arrays: np.ndarray) -> list[T]:
        return map_images(fn, *arrays, workers=self.config.threads or os.cpu_count() or 1)

    # --- the trial ---------------------------------------------------------------------------
    @property
    def _current(self) -> Split:
        return getattr(self.data, self._split)

    def _chain(self, split: str) -> tuple[PostState, bool]:
        """The post-processing chain on ``split``'s CAMs: the final state (its mask made by the default step when no
        step made one) and whether a step looked at the ground truth."""
        state = PostState(getattr(self.data, split).images, self._cam_set(split, 1.0, False, None)[0])
        oracle = False
        self._split = split
        try:
            with self.timed("postprocess"):
                for spec in self.config.postprocess:
                    self._step = spec["name"]
                    step = POSTPROCESSORS.build(spec)
                    oracle |= bool(getattr(step, "uses_ground_truth", False))
                    state = step(state, self)
                if state.mask is None:
                    self._step = default_mask_step()
                    state = POSTPROCESSORS.create(self._step)(state, self)
        finally:
            self._split, self._step = "test", None
        return state, oracle

    def _pseudo_mask_inputs(self) -> dict[str, Any]:
        """The cache key of the train split's gated pseudo-masks: the model, the CAM method, the chain, their code."""
        steps = [*(spec["name"] for spec in self.config.postprocess), default_mask_step()]
        components = [(CAMS, self.config.cam["name"]), *((POSTPROCESSORS, name) for name in steps)]
        return {
            "model": self.model_inputs,
            "cam": self.config.cam,
            "postprocess": self.config.postprocess,
            "code": code_fingerprint((*CAM_MODULES, *POSTPROCESS_MODULES, *SEGMENT_MODULES), components),
            "split": "train",
        }

    def train_pseudo_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """The post-processed CAMs ``[N, H, W]`` and the pseudo-masks of the train split, gated by the image labels
        (an image labelled smoke-free has none), from the stage cache or made now."""

        def build(folder: Any) -> None:
            state, _ = self._chain("train")
            masks = gate(state.mask, self.data.train.labels)
            np.savez(folder / "pseudo.npz", cams=state.cams.astype(np.float16), masks=np.packbits(masks, axis=-1))

        stored = np.load(self.cache.get_or_build("pseudo_masks", self._pseudo_mask_inputs(), build) / "pseudo.npz")
        width = self.data.train.images.shape[2]
        return stored["cams"].astype(np.float32), np.unpackbits(stored["masks"], axis=-1, count=width)

    def segmenter(self) -> torch.nn.Module:
        """Stage 3's segmenter trained on the train split's pseudo-masks (or true masks), cached by what they come
        from, the ``segment`` spec and the seed."""
        spec = self.config.segment
        training, train = SegmentTraining.of(spec), self.data.train
        if training.masks == "ground_truth":
            source: dict[str, Any] = {"ground_truth": fingerprint_arrays(train.masks)}
        else:
            source = {"pseudo": self._pseudo_mask_inputs(), "ignore_band": training.ignore_band}
        inputs = {
            "code": code_fingerprint(SEGMENT_MODULES, [(SEGMENTERS, spec["name"])]),
            "segment": spec,
            "checkpoint": file_digest(spec.get("checkpoint")),
            "targets": source,
            "data_fingerprint": self.data.fingerprint,
            "seed": self.seed,
        }

        def build(folder: Any) -> None:
            if training.masks == "ground_truth":
                targets = train.masks.astype(np.uint8)
            else:
                targets = with_ignore_band(self.train_pseudo_masks()[1], training.ignore_band)
            with self.timed("segment"):
                model = train_segmenter(self.trainer, spec, train.images, targets)
            torch.save(model.state_dict(), folder / "weights.pt")

        entry = self.cache.get_or_build("segmenter", inputs, build)
        self.trainer.checkpoints.append(entry / "weights.pt")
        model = build_segmenter(spec, self.device)
        model.load_state_dict(torch.load(entry / "weights.pt", map_location=self.device, weights_only=True))
        return model.eval()

    def _segment_metrics(self, names: list[str]) -> tuple[dict[str, float], np.ndarray]:
        """Stage 3's metrics (``seg_``: the segmenter on test; ``train_``: the train pseudo-masks where the train
        split has masks; undefined ones left out) and the segmenter's test masks."""
        model = self.segmenter()
        test, val, train = self.data.test, self.data.val, self.data.train

        with self.timed("segment"):
            prob = predict(model, test.images, self.device)
            val_prob = predict(model, val.images, self.device) if val is not None else None
        pred = prob >= 0.5

        def image_prob(pixels: np.ndarray) -> np.ndarray:  # an image is smoke when any pixel is: the segmenter's call
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
        if train.masks is not None and self.config.segment["masks"] == "pseudo":
            cams, masks = self.train_pseudo_masks()
            smoke_prob = self._cam_set("train", 1.0, False, None)[1]
            pseudo = Evaluation(cams, masks.astype(bool), train.masks, train.labels, smoke_prob, train.cooccur_masks)
            metrics |= {f"train_{k}": v for k, v in evaluate(pseudo, names).items() if not np.isnan(v)}
        return metrics, pred

    def run(self) -> TrialResult:
        check_segment(self.config.segment, self.config.data, self.data.train.masks is not None)
        smoke_prob = self._cam_set("test", 1.0, False, None)[1]
        state, oracle = self._chain("test")
        test = self.data.test
        val = self.data.val
        val_prob = self._cam_set("val", 1.0, False, None)[1] if val is not None else None
        names = self.config.metrics or METRICS.names()
        with self.timed("metrics"):
            ev = Evaluation(
                state.cams,
                state.mask,
                test.masks,
                test.labels,
                smoke_prob,
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
        if self.config.segment is not None:
            seg_metrics, seg_pred = self._segment_metrics(names)
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
            timings=self.timings,
            oracle=oracle,
            history=self.trainer.history,
            checkpoints=[str(p) for p in self.trainer.checkpoints],
            device=describe_device(self.device),
            config=self.config.to_dict(),
            names={"class": self.data.class_name, "object": self.data.object_name},
            gallery=gallery,
            seg_per_image_iou=seg_ious,
            code=self._code(metrics),
        )

    def _code(self, metrics: dict[str, float]) -> dict[str, str]:
        """The fingerprint of all the code behind this trial's numbers (see :attr:`TrialResult.code`)."""
        config = self.config.to_dict()
        components = []
        for slot, kind in COMPONENT_SLOTS.items():
            try:
                spec = get_dotted(config, slot)
            except KeyError:
                continue
            if isinstance(spec, dict):  # None: an optional stage left out
                components.append((ALL[kind], spec["name"]))
        components += [(POSTPROCESSORS, step["name"]) for step in config["postprocess"]]
        components += [(METRICS, name) for name in METRICS.names() if name in metrics]
        harness = (*TRAINING_MODULES, *CAM_MODULES, *POSTPROCESS_MODULES, *SEGMENT_MODULES, "ablate._metrics")
        return code_fingerprint(tuple(dict.fromkeys(harness)), components)


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
