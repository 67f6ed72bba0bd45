"""Image-level classification accuracy."""

from __future__ import annotations

import numpy as np

from ablate import METRICS, Evaluation
from ablate._metrics import ratio


@METRICS.register("accuracy")
def accuracy(ev: Evaluation) -> float:
    """Image classification accuracy of smoke_prob >= 0.5 against the image labels."""
    correct = (ev.smoke_prob >= 0.5) == (ev.labels == 1)
    return ratio(np.count_nonzero(correct), correct.size)
