"""False activations on smoke-free images, which the paper never scored."""

from __future__ import annotations

import numpy as np

from ablate import METRICS, Evaluation, ratio


@METRICS.register("false_activation", cooccurrence=True)
def false_activation(ev: Evaluation) -> float:
    """Fraction of pixels of smoke-free images (label 0) marked smoke; lower is better."""
    free = ev.pred[ev.labels == 0]
    return ratio(np.count_nonzero(free), free.size)


false_activation.lower_is_better = True
