"""Tests of paired differences over seeds, Holm's adjustment, and Friedman's test with Nemenyi's critical difference.

Paired differences over seeds use the paired t-test below :data:`WILCOXON_FROM` pairs (Wilcoxon's signed-rank test
cannot reach p < 0.05 with five pairs or fewer, and seeds are usually few), Wilcoxon's test from then on. Zero
differences are dropped by the signed-rank test; all-zero differences give p = 1.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ablate.stats._power import ALPHA

WILCOXON_FROM = 10


def _signed_p(diff: np.ndarray, test: Any) -> float:
    if not np.any(diff):
        return 1.0  # no difference at all; the tests divide by zero here
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(test(diff).pvalue)


def seed_test(diff: np.ndarray) -> tuple[str, float]:
    """(test name, two-sided p) for paired differences over seeds; ("", NaN) with fewer than two pairs."""
    if len(diff) < 2:
        return "", math.nan
    if len(diff) >= WILCOXON_FROM:
        return "Wilcoxon", _signed_p(diff, stats.wilcoxon)
    return "paired t", _signed_p(diff, lambda d: stats.ttest_1samp(d, 0.0))


def image_test(diff: np.ndarray) -> float:
    return _signed_p(diff, stats.wilcoxon) if len(diff) else math.nan


def holm(p_values: Any) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries are not part of the family).

    The i-th smallest of m p-values becomes ``max over j <= i of min(1, (m - j + 1) * p_(j))``: it controls the
    chance of any false "difference" among all comparisons of a table at the nominal level.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    defined = np.flatnonzero(np.isfinite(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman's test over blocks, with the Nemenyi critical difference (Demsar, JMLR 2006).

    Attributes:
        ranks: average rank of each column (1 = the highest value in a block; ties share their mean rank).
        statistic: Friedman's chi-square.
        p: its p-value.
        critical_difference: average ranks further apart than this differ at level :data:`ALPHA` (Nemenyi).
    """

    ranks: np.ndarray
    statistic: float
    p: float
    critical_difference: float


def friedman_test(blocks: np.ndarray) -> FriedmanResult:
    """Friedman's test of ``blocks`` ([blocks, k] values, higher is better): k >= 3 columns, two blocks or more."""
    n, k = blocks.shape
    ranks = stats.rankdata(-blocks, axis=1).mean(axis=0)
    if (blocks == blocks[:, :1]).all():  # every block one tie: no difference (scipy divides 0 by 0)
        statistic, p = 0.0, 1.0
    else:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.friedmanchisquare(*blocks.T)
        statistic, p = float(result.statistic), float(result.pvalue)
    q = stats.studentized_range.ppf(1 - ALPHA, k, np.inf) / math.sqrt(2)
    return FriedmanResult(ranks, statistic, p, float(q * math.sqrt(k * (k + 1) / (6 * n))))
