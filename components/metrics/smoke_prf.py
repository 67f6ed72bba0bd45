"""Smoke pixel precision, recall and F1 over the whole test split."""

from __future__ import annotations

from ablate import METRICS, Evaluation, confusion_matrix, ratio


def _tp_fp_fn(ev: Evaluation) -> tuple[int, int, int]:
    (_, fp), (fn, tp) = confusion_matrix(ev.pred, ev.masks)
    return int(tp), int(fp), int(fn)


@METRICS.register("precision")
def precision(ev: Evaluation) -> float:
    """Smoke pixel precision TP / (TP + FP) over all test pixels."""
    tp, fp, _ = _tp_fp_fn(ev)
    return ratio(tp, tp + fp)


@METRICS.register("recall")
def recall(ev: Evaluation) -> float:
    """Smoke pixel recall TP / (TP + FN) over all test pixels."""
    tp, _, fn = _tp_fp_fn(ev)
    return ratio(tp, tp + fn)


@METRICS.register("f1")
def f1(ev: Evaluation) -> float:
    """Smoke pixel F1 2TP / (2TP + FP + FN) over all test pixels."""
    tp, fp, fn = _tp_fp_fn(ev)
    return ratio(2 * tp, 2 * tp + fp + fn)
