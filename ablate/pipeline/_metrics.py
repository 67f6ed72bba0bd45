"""Shared pixel counting for metrics and metric evaluation by name (trial path step: metrics).

Metric variants live in ``components/metrics`` and build on the helpers here, so every metric
counts pixels the same way. Conventions:

* a pixel is smoke in the prediction when ``pred`` is True, in the ground truth when ``masks > 0``;
* a thresholded map marks a pixel smoke when ``cam >= threshold``;
* a ratio with a zero denominator is NaN (undefined), never 0 or 1, so that it cannot flatter or
  punish a variant; means skip NaN entries and are NaN when nothing is defined.
"""

from __future__ import annotations

import numpy as np

from ablate._registries import METRICS
from ablate._registry import Entry, RegistryError
from ablate.pipeline._evaluation import Evaluation

ORACLE_THRESHOLDS = np.round(np.linspace(0.0, 1.0, 21), 2)
"""Threshold grid 0.00, 0.05, ..., 1.00 searched per image by oracle metrics (rounded so 0.3 is exactly 0.3)."""

# Bounds the temporary arrays of :func:`iou_at_thresholds` (~4M pixels, a few tens of MB).
_CHUNK_PIXELS = 1 << 22


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or NaN when the denominator is 0."""
    return float(numerator) / float(denominator) if denominator else float("nan")


def mean_defined(values: np.ndarray) -> float:
    """Mean of the non-NaN entries of ``values``; NaN (without a warning) when there are none."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def _image_axes(a: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, a.ndim))


def _as_masks(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt) > 0
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    return pred, gt


def confusion_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Pixel confusion matrix over all images.

    Args:
        pred: bool ``[N, H, W]`` predicted smoke.
        gt: ``[N, H, W]`` ground-truth smoke (nonzero = smoke).

    Returns:
        int64 ``[2, 2]``: rows are ground truth (background, smoke), columns the prediction,
        i.e. ``[[TN, FP], [FN, TP]]``.
    """
    pred, gt = _as_masks(pred, gt)
    # Counts instead of a bincount over pixel codes: no int64 copy of the whole split.
    tp = np.count_nonzero(pred & gt)
    predicted, actual = np.count_nonzero(pred), np.count_nonzero(gt)
    fp, fn = predicted - tp, actual - tp
    return np.array([[pred.size - tp - fp - fn, fp], [fn, tp]], dtype=np.int64)


def per_image_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Smoke IoU of every image.

    The IoU is only defined for images with ground-truth smoke (their union is never empty);
    images without it are NaN whatever was predicted, because their errors are false activations,
    which a separate metric measures. An empty prediction on an image with smoke has IoU 0.

    Args:
        pred: bool ``[N, H, W]`` predicted smoke.
        gt: ``[N, H, W]`` ground-truth smoke (nonzero = smoke).

    Returns:
        float64 ``[N]``, NaN for images without ground-truth smoke.
    """
    pred, gt = _as_masks(pred, gt)
    axes = _image_axes(gt)
    inter = np.count_nonzero(pred & gt, axis=axes)
    actual = np.count_nonzero(gt, axis=axes)
    union = np.count_nonzero(pred, axis=axes) + actual - inter
    return np.divide(inter, union, out=np.full(len(gt), np.nan), where=actual > 0)


def iou_at_thresholds(cams: np.ndarray, gt: np.ndarray, thresholds: np.ndarray = ORACLE_THRESHOLDS) -> np.ndarray:
    """Smoke IoU of every image for the mask ``cams >= t`` at every threshold ``t``.

    Equal to ``per_image_iou(cams >= t, gt)`` for each ``t``, but from one pass over the maps:
    each pixel's count of thresholds it passes is histogrammed per image, and suffix sums of the
    histogram give the predicted and true-positive pixel counts at every threshold.

    Args:
        cams: float ``[N, H, W]`` continuous maps.
        gt: ``[N, H, W]`` ground-truth smoke (nonzero = smoke).
        thresholds: ``[T]`` thresholds in ascending order.

    Returns:
        float64 ``[N, T]``, rows NaN for images without ground-truth smoke.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if np.any(np.diff(thresholds) < 0):
        raise ValueError("thresholds must be in ascending order")
    cams, gt = np.asarray(cams), np.asarray(gt) > 0
    if cams.shape != gt.shape:
        raise ValueError(f"map shape {cams.shape} differs from ground-truth shape {gt.shape}")
    n, n_thr = len(cams), len(thresholds)
    cams, gt = cams.reshape(n, -1), gt.reshape(n, -1)
    bins = n_thr + 1  # a pixel passes 0..T thresholds
    predicted = np.empty((n, n_thr), dtype=np.int64)
    inter = np.empty((n, n_thr), dtype=np.int64)
    step = max(1, _CHUNK_PIXELS // max(1, cams.shape[1]))
    for start in range(0, n, step):
        chunk_cams, chunk_gt = cams[start : start + step], gt[start : start + step]
        rows = len(chunk_cams)
        # passes[i, p] = number of thresholds <= cam, i.e. pixel p is smoke for thresholds[:passes].
        passes = np.searchsorted(thresholds, chunk_cams, side="right")
        codes = passes + (np.arange(rows) * bins)[:, None]
        for counts, out in (
            (np.bincount(codes.ravel(), minlength=rows * bins), predicted),
            (np.bincount(codes[chunk_gt], minlength=rows * bins), inter),
        ):
            # Smoke at threshold j <=> passes > j: suffix sums from bin j + 1.
            suffix = np.cumsum(counts.reshape(rows, bins)[:, ::-1], axis=1)[:, ::-1]
            out[start : start + rows] = suffix[:, 1:]
    actual = np.count_nonzero(gt, axis=1)[:, None]
    union = predicted + actual - inter
    return np.divide(inter, union, out=np.full((n, n_thr), np.nan), where=actual > 0)


def evaluate(ev: Evaluation, names: list[str]) -> dict[str, float]:
    """Compute the registered metrics called ``names`` on ``ev``.

    Every name is looked up before anything is computed, so a misspelt name fails at once
    (with the closest registered name) instead of after the expensive metrics.

    Returns:
        ``{name: value}`` in the order of ``names``; NaN where a metric is undefined.

    Raises:
        RegistryError: A name is not a registered metric.
    """
    entries = [METRICS.get(name) for name in names]
    return {entry.name: float(entry.factory(ev)) for entry in entries}


#: Prefixes of the metrics a trial with a ``segment`` stage adds: each registered metric again, of what a prefix names.
STAGE_PREFIXES = {"seg_": "the segmenter on the test split", "train_": "the gated pseudo-masks of the train split"}


def metric_entry(name: str) -> Entry:
    """The registered metric ``name`` stands for: itself, or the metric after a :data:`STAGE_PREFIXES` prefix.

    Raises:
        RegistryError: neither is a registered metric.
    """
    prefix = stage_prefix(name)
    return METRICS.get(name[len(prefix) :])


def stage_prefix(name: str | None) -> str:
    """The :data:`STAGE_PREFIXES` prefix of metric ``name`` ("" for a metric of the test pseudo-masks or None)."""
    if name is None or name in METRICS:
        return ""
    return next((p for p in STAGE_PREFIXES if name.startswith(p) and name[len(p) :] in METRICS), "")


def metric_description(name: str) -> str:
    """The metric's registered description, after what its stage prefix names (``the segmenter on ...: ...``)."""
    prefix = stage_prefix(name)
    description = metric_entry(name).description.rstrip(".")
    return f"{STAGE_PREFIXES[prefix]}: {description}" if prefix else description


def is_metric(name: str) -> bool:
    """Whether a trial may report ``name``: a registered metric, or one with a stage prefix."""
    try:
        metric_entry(name)
    except RegistryError:
        return False
    return True


def chance_metric(name: str | None) -> str | None:
    """The metric holding the chance level of metric ``name`` (registered with ``chance_of`` naming it), of the
    same stage (``seg_all_smoke_iou`` for ``seg_smoke_iou``); None when no registered metric is its chance level."""
    if name is None or not is_metric(name):
        return None
    prefix = stage_prefix(name)
    bare = name[len(prefix) :]
    return next((prefix + e.name for e in METRICS if bare in e.meta.get("chance_of", ())), None)


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of metric ``name`` is better (its ``lower_is_better`` attribute)."""
    return bool(getattr(metric_entry(name).factory, "lower_is_better", False))
