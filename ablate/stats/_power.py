"""Power of the t-test over seeds: the smallest difference a number of seeds resolves, and the seeds a difference
needs, from the exact power of the two-sided t-test (noncentral t) at level :data:`ALPHA`."""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 10_000


def power(effect: float, n: int, paired: bool) -> float:
    """Power of the two-sided t-test at level ALPHA for a standardised ``effect`` (difference / std) with
    ``n`` paired differences, or ``n`` seeds in each of two independent groups."""
    df, nc = (n - 1, effect * math.sqrt(n)) if paired else (2 * n - 2, effect * math.sqrt(n / 2))
    critical = stats.t.ppf(1 - ALPHA / 2, df)
    # the lower tail is negligible for a positive effect; scipy returns NaN for it at large nc and df 1
    return float(stats.nct.sf(critical, df, nc) + np.nan_to_num(stats.nct.cdf(-critical, df, nc)))


def detectable_difference(std: float, n: int, paired: bool = True) -> float:
    """Smallest difference detected with probability POWER at level ALPHA by ``n`` seeds of spread ``std``.

    NaN with fewer than two seeds or an undefined spread; 0 when the spread is 0.
    """
    if n < 2 or not math.isfinite(std):
        return math.nan
    if std == 0:
        return 0.0
    effect = 1.0
    while power(effect, n, paired) < POWER:  # bracket the root, then solve for the standardised effect
        effect *= 2
    return std * float(optimize.brentq(lambda d: power(d, n, paired) - POWER, 0.0, effect, xtol=1e-6))


def seeds_needed(difference: float, std: float, paired: bool = True) -> float:
    """Fewest seeds (per configuration) detecting ``difference`` with probability POWER at level ALPHA.

    NaN when undefined, inf beyond :data:`MAX_SEEDS`.
    """
    if not (math.isfinite(difference) and math.isfinite(std)) or difference <= 0:
        return math.nan
    if std == 0:
        return 2.0
    effect = difference / std
    low, high = 2, 2
    while power(effect, high, paired) < POWER:
        if high >= MAX_SEEDS:
            return math.inf
        low, high = high, min(2 * high, MAX_SEEDS)
    while low < high:  # power grows with n: the first n that reaches it
        middle = (low + high) // 2
        low, high = (middle + 1, high) if power(effect, middle, paired) < POWER else (low, middle)
    return float(high)
