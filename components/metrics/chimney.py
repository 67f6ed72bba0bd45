"""Co-occurrence measured directly: how much of the chimney the pseudo-masks claim, and how often
a chimney alone makes the classifier say smoke.

Chimney pixels that are also ground-truth smoke (smoke in front of the chimney) are rightly
marked smoke, so the pixel metrics count only chimney pixels outside the smoke mask.
"""

from __future__ import annotations

import numpy as np

from ablate import METRICS, Evaluation, ratio


def _chimney_only(ev: Evaluation) -> np.ndarray | None:
    """Chimney pixels that are not ground-truth smoke, or None without co-occurrence masks."""
    if ev.cooccur_masks is None:
        return None
    return (ev.cooccur_masks > 0) & (ev.masks == 0)


@METRICS.register("chimney_claimed", cooccurrence=True)
def chimney_claimed(ev: Evaluation) -> float:
    """Share of co-occurring object (chimney) pixels marked smoke; lower is better."""
    chimney = _chimney_only(ev)
    if chimney is None:
        return float("nan")
    return ratio(np.count_nonzero(chimney & ev.pred), np.count_nonzero(chimney))


@METRICS.register("chimney_per_tp")
def chimney_per_tp(ev: Evaluation) -> float:
    """Chimney pixels marked smoke per true-positive smoke pixel; lower is better.

    NaN when there are no true positives (the ratio is undefined).
    """
    chimney = _chimney_only(ev)
    if chimney is None:
        return float("nan")
    return ratio(np.count_nonzero(chimney & ev.pred), np.count_nonzero(ev.pred & (ev.masks > 0)))


@METRICS.register("chimney_only_fpr", cooccurrence=True)
def chimney_only_fpr(ev: Evaluation) -> float:
    """Share of smoke-free test images showing a chimney that are classified smoke; lower is better.

    A classifier that learned "chimney => smoke" calls these images smoke; compare with the same
    network trained on data where chimneys do not predict smoke to measure the shortcut.
    """
    if ev.cooccur_masks is None:
        return float("nan")
    chimney_only = (ev.labels == 0) & ev.cooccur_masks.reshape(len(ev.labels), -1).any(axis=1)
    return ratio(np.count_nonzero(ev.smoke_prob[chimney_only] >= 0.5), np.count_nonzero(chimney_only))


chimney_claimed.lower_is_better = True
chimney_per_tp.lower_is_better = True
chimney_only_fpr.lower_is_better = True
