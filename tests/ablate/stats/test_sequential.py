"""The sequential design against published group-sequential boundaries, its error rate by simulation, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ablate.stats import SequentialDesign, boundaries, looks, probability_of_improvement

FIVE = (0.2, 0.4, 0.6, 0.8, 1.0)


@pytest.mark.parametrize(
    ("fractions", "spending", "published"),
    [
        # Lan-DeMets spending, two-sided alpha 0.05 (Jennison & Turnbull 2000, table 7.6; R ldbounds / gsDesign)
        (FIVE, "obrien-fleming", (4.877, 3.357, 2.680, 2.290, 2.031)),
        (FIVE, "pocock", (2.438, 2.427, 2.410, 2.397, 2.386)),
        ((0.5, 1.0), "obrien-fleming", (2.963, 1.969)),
    ],
)
def test_boundaries_are_the_published_lan_demets_ones(fractions, spending, published):
    assert boundaries(fractions, 0.05, spending) == pytest.approx(published, abs=2e-3)


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
def test_the_boundaries_keep_the_error_rate_over_all_looks_of_a_race(spending):
    # 3..12 seeds: a standardised sum of 12 independent differences, looked at after 3, 4, ..., 12 of them
    counts = looks(3, 12)
    critical = np.array(boundaries(tuple(n / 12 for n in counts), 0.05, spending))
    sums = np.cumsum(np.random.default_rng(0).normal(size=(200_000, 12)), axis=1)
    z = sums[:, np.array(counts) - 1] / np.sqrt(counts)
    assert np.any(np.abs(z) >= critical, axis=1).mean() == pytest.approx(0.05, abs=0.003)
    assert np.any(np.abs(z) >= 1.96, axis=1).mean() > 0.15  # a fixed-level test at every look would not


def test_a_look_decides_better_worse_and_equivalent_from_its_interval():
    design = SequentialDesign(looks(3, 6), alpha=0.05, margin=0.05, futility=0.0)
    assert design.look(np.array([0.30, 0.31, 0.29, 0.30, 0.32, 0.30])).verdict == "better"
    assert design.look(np.array([-0.30, -0.31, -0.29, -0.30, -0.32, -0.30])).verdict == "worse"
    assert design.look(np.array([0.001, -0.002, 0.0, 0.001, -0.001, 0.002])).verdict == "equivalent"
    noisy = design.look(np.array([0.1, -0.2, 0.05]))
    assert noisy.verdict == "racing" and noisy.low < 0 < noisy.high
    assert design.look(np.array([0.1, -0.2, 0.05, 0.3, -0.25, 0.0])).verdict == "undecided"  # the last look
    # the first look's interval is the widest: the same numbers decide at 6 seeds but not at 3
    assert design.look(np.array([0.10, 0.12, 0.08])).verdict == "racing"
    assert design.look(np.array([0.10, 0.12, 0.08, 0.10, 0.12, 0.08])).verdict == "better"


def test_futility_stops_a_comparison_the_last_look_cannot_decide():
    design = SequentialDesign(looks(3, 12), alpha=0.05, futility=0.1)
    hopeless = design.look(np.array([0.3, -0.31, 0.02]))  # mean 0.003 at spread 0.3
    assert hopeless.verdict == "undecided" and hopeless.conditional_power < 0.1
    promising = design.look(np.array([0.10, 0.14, 0.06]))
    assert promising.verdict == "racing" and promising.conditional_power > 0.9


def test_probability_of_improvement_counts_ties_half_and_bootstraps_over_seeds():
    p, low, high = probability_of_improvement(np.array([0.1, -0.2, 0.0, 0.3]))
    assert p == pytest.approx(0.625) and 0.0 <= low < p < high <= 1.0
    assert probability_of_improvement(np.array([0.1, 0.2])) == (1.0, 1.0, 1.0)
    single = probability_of_improvement(np.array([0.1]))
    assert single[0] == 1.0 and math.isnan(single[1])
