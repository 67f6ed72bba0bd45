"""Image-level classification accuracy on the test split, on the val split, and their gap."""

from __future__ import annotations

import numpy as np

from ablate import METRICS, Evaluation, ratio


def _accuracy(smoke_prob: np.ndarray | None, labels: np.ndarray | None) -> float:
    """Share of images where ``smoke_prob >= 0.5`` matches the label; NaN without images."""
    if smoke_prob is None or labels is None:
        return float("nan")
    correct = (smoke_prob >= 0.5) == (labels == 1)
    return ratio(np.count_nonzero(correct), correct.size)


@METRICS.register("accuracy")
def accuracy(ev: Evaluation) -> float:
    """Image classification accuracy of smoke_prob >= 0.5 against the test split's image labels."""
    return _accuracy(ev.smoke_prob, ev.labels)


@METRICS.register("val_accuracy")
def val_accuracy(ev: Evaluation) -> float:
    """Image classification accuracy on the val split (drawn like train); NaN when the dataset has none."""
    return _accuracy(ev.val_smoke_prob, ev.val_labels)


@METRICS.register("accuracy_gap")
def accuracy_gap(ev: Evaluation) -> float:
    """val_accuracy minus test accuracy: what a shortcut of the train distribution loses on the test split."""
    return val_accuracy(ev) - accuracy(ev)


accuracy_gap.lower_is_better = True
