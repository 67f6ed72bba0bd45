"""Power and seed counts against simulated t-tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ablate.stats import (
    detectable_difference,
    seeds_needed,
)


def _simulated_power(difference: float, std: float, n: int, paired: bool, runs: int = 40_000) -> float:
    """Share of simulated experiments in which scipy's t-test rejects at 0.05."""
    rng = np.random.default_rng(0)
    if paired:
        p = stats.ttest_1samp(rng.normal(difference, std, (runs, n)), 0.0, axis=1).pvalue
    else:
        p = stats.ttest_ind(rng.normal(difference, std, (runs, n)), rng.normal(0.0, std, (runs, n)), axis=1).pvalue
    return float(np.mean(p < 0.05))


@pytest.mark.parametrize(("n", "paired"), [(3, True), (5, False), (12, True)])
def test_detectable_difference_has_power_0_8_in_simulated_t_tests(n, paired):
    std = 0.03
    mde = detectable_difference(std, n, paired)
    assert _simulated_power(mde, std, n, paired) == pytest.approx(0.8, abs=0.01)
    # the large-sample normal approximation, which the t-distribution's heavier tails exceed at small n
    normal = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * std * math.sqrt(1 if paired else 2) / math.sqrt(n)
    assert mde > normal


def test_seeds_needed_is_the_first_seed_count_with_power_0_8():
    std, difference = 0.02, 0.015
    need = int(seeds_needed(difference, std))
    assert detectable_difference(std, need) <= difference < detectable_difference(std, need - 1)
    assert seeds_needed(0.0, std) != seeds_needed(0.0, std)  # NaN: no difference to detect
    assert seeds_needed(1e-9, std) == math.inf
    assert math.isnan(detectable_difference(std, 1))
