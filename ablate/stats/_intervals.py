"""Spread over seeds: mean, sample std and Student's t-interval; a hierarchical bootstrap over seeds and images.

The t-interval is ``mean +- t(0.975, n-1) * std / sqrt(n)`` with the sample std (ddof 1), undefined (NaN) with
fewer than two seeds. The bootstrap resamples seeds, then images within each drawn seed, so that its interval stays
inside a bounded metric's range; with two or three seeds it treats them as all there are (narrower than the seed
spread warrants).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_ROUNDS = 2000


# --- numbers -------------------------------------------------------------------------------------
def describe(groups: Any, column: str) -> pd.DataFrame:
    """Mean, std, 95% t-interval and count of ``column`` per group (NaN values not counted)."""
    agg = groups[column].agg(["mean", "std", "count"])
    n = agg["count"]
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * agg["std"] / np.sqrt(n)
    return pd.DataFrame(
        {"mean": agg["mean"], "std": agg["std"], "ci_low": agg["mean"] - half, "ci_high": agg["mean"] + half, "n": n}
    )


def hierarchical_bootstrap(per_seed: list[np.ndarray], rounds: int = BOOTSTRAP_ROUNDS) -> tuple[float, float]:
    """95% percentile interval of the mean per-image IoU, resampling seeds and then images within each seed.

    Each round draws as many seeds as there are, with replacement, and for each drawn seed as many of its images
    (those with smoke: finite IoU), and averages the per-seed means, as the reported smoke_iou does. The interval
    stays inside the metric's range, unlike a t-interval over two or three seeds. NaN with fewer than two seeds.
    """
    seeds = [a[np.isfinite(a)] for a in per_seed]
    seeds = [a for a in seeds if a.size]
    if len(seeds) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(0)  # the same report twice gives the same interval
    # resampled mean of every seed in every round: [seeds, rounds]
    means = np.stack([a[rng.integers(a.size, size=(rounds, a.size))].mean(axis=1) for a in seeds])
    drawn = rng.integers(len(seeds), size=(rounds, len(seeds)))
    totals = means[drawn, np.arange(rounds)[:, None]].mean(axis=1)
    low, high = np.quantile(totals, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(low), float(high)
