"""Intervals over seeds against scipy's t-distribution and a direct resampling."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablate.stats import (
    describe,
    hierarchical_bootstrap,
)


def test_describe_mean_std_and_t_interval():
    frame = pd.DataFrame({"g": ["a"] * 3 + ["b"], "x": [0.2, 0.4, 0.6, 0.9]})
    out = describe(frame.groupby("g"), "x")
    half = stats.t.ppf(0.975, 2) * 0.2 / math.sqrt(3)
    assert out.loc["a", "mean"] == pytest.approx(0.4)
    assert out.loc["a", "std"] == pytest.approx(0.2)
    assert (out.loc["a", "ci_low"], out.loc["a", "ci_high"]) == pytest.approx((0.4 - half, 0.4 + half))
    assert out.loc["a", "n"] == 3
    assert math.isnan(out.loc["b", "std"]) and math.isnan(out.loc["b", "ci_low"])  # one value: no spread


def test_hierarchical_bootstrap_stays_in_range_and_matches_a_direct_resampling():
    rng = np.random.default_rng(5)
    seeds = [np.append(rng.uniform(0, 0.2, 40), np.nan), rng.uniform(0.6, 0.8, 40), rng.uniform(0.3, 0.4, 40)]
    low, high = hierarchical_bootstrap(seeds)
    assert 0.0 <= low < np.mean([np.nanmean(s) for s in seeds]) < high <= 1.0
    # the spread comes mostly from the seeds: far wider than resampling the 120 images alone would give
    pooled = np.concatenate([s[np.isfinite(s)] for s in seeds])
    image_only = np.quantile([rng.choice(pooled, pooled.size).mean() for _ in range(2000)], [0.025, 0.975])
    assert high - low > 3 * (image_only[1] - image_only[0])
    assert hierarchical_bootstrap([np.full(5, 0.3), np.full(7, 0.3)]) == pytest.approx((0.3, 0.3))
    assert all(math.isnan(v) for v in hierarchical_bootstrap([np.array([0.5, np.nan])]))
