"""Tests over seeds, Holm's adjustment and Friedman's test against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ablate.stats import (
    WILCOXON_FROM,
    friedman_test,
    holm,
    seed_test,
)


def test_seed_test_switches_to_wilcoxon_and_handles_degenerate_cases():
    rng = np.random.default_rng(1)
    diff = rng.normal(0.1, 0.05, WILCOXON_FROM)
    assert seed_test(diff) == ("Wilcoxon", pytest.approx(stats.wilcoxon(diff).pvalue))
    assert seed_test(diff[:3]) == ("paired t", pytest.approx(stats.ttest_1samp(diff[:3], 0).pvalue))
    assert seed_test(np.zeros(3)) == ("paired t", 1.0)
    name, p = seed_test(np.array([0.1]))
    assert name == "" and math.isnan(p)


def test_holm_adjustment_by_hand():
    # sorted 0.01 (x3), 0.03 (x2), 0.04 (x1, but never below the previous): 0.03, 0.06, 0.06; NaN stays out
    np.testing.assert_allclose(holm([0.01, 0.04, math.nan, 0.03]), [0.03, 0.06, math.nan, 0.06])
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]


def test_friedman_test_matches_scipy_and_the_nemenyi_critical_difference_of_demsar():
    blocks = np.random.default_rng(3).uniform(0, 1, (11, 3)) + [0.0, 0.1, 0.2]
    test = friedman_test(blocks)
    expected = stats.friedmanchisquare(*blocks.T)
    assert test.statistic == pytest.approx(expected.statistic) and test.p == pytest.approx(expected.pvalue)
    np.testing.assert_allclose(test.ranks, stats.rankdata(-blocks, axis=1).mean(axis=0))
    # Demsar (2006), table 5: q_0.05 = 2.343 for three classifiers; CD = q * sqrt(k (k + 1) / (6 N))
    assert test.critical_difference == pytest.approx(2.343 * math.sqrt(3 * 4 / (6 * 11)), rel=1e-3)
    tied = friedman_test(np.zeros((4, 3)))  # scipy's statistic is 0 / 0 here
    assert (tied.statistic, tied.p) == (0.0, 1.0) and tied.ranks.tolist() == [2.0, 2.0, 2.0]
