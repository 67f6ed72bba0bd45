"""Sequential comparisons over seeds: repeated confidence intervals at group-sequential boundaries.

A comparison looks at the paired seed differences of a configuration and its reference after every round of seeds.
Looking again and again at a fixed-level test inflates its error rate; here each look ``k`` of at most ``K`` uses the
critical value ``c_k`` of a two-sided group-sequential design with Lan-DeMets alpha spending (O'Brien-Fleming-type
by default, alpha/2 a side: ``alpha(t) = 4 - 4 Phi(z_{1-alpha/4} / sqrt(t))``; Pocock-type: ``alpha log(1 + (e - 1)
t)``), at
information fraction ``t = n_k / n_max``. The interval ``mean +- q_k s / sqrt(n_k)`` then covers the true mean
difference at every look at once with probability at least ``1 - alpha`` (repeated confidence intervals, Jennison &
Turnbull 1989), so a verdict read off it at any look (better: above 0; worse: below 0; equivalent: inside
``+-margin``) is wrong with probability at most ``alpha`` for normal seed differences of known spread. The spread is
estimated, so ``q_k`` is the t quantile (``n_k - 1`` degrees of freedom) at the nominal level ``2 - 2 Phi(c_k)``
of the look: the guarantee is then approximate, and ``benchmarks/racing.py`` measures the error rates it gives with
3-12 seeds, on normal and on bimodal seed outcomes.

A comparison whose verdict the last look would reach with conditional probability under ``futility`` (at the
observed mean and spread) stops early, undecided. Stopping for futility never adds a wrong verdict, so it keeps the
error rate; it costs power, which the benchmark measures too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

SPENDING = ("obrien-fleming", "pocock")
GRID_POINTS = 801  # integration grid of the boundary recursion: boundaries to about 1e-3


def spent(t: float, alpha: float, spending: str) -> float:
    """Two-sided alpha spent up to information fraction ``t`` (0 < t <= 1)."""
    if spending == "obrien-fleming":
        return float(4 - 4 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 4) / math.sqrt(t)))
    return float(alpha * math.log(1 + (math.e - 1) * t))


@functools.lru_cache(maxsize=256)
def boundaries(fractions: tuple[float, ...], alpha: float, spending: str = "obrien-fleming") -> tuple[float, ...]:
    """Critical values ``c_1 .. c_K`` of the standardised statistic at the looks ``fractions`` (increasing, the
    last 1): the chance of crossing ``+-c_k`` first at look ``k`` under no difference is the alpha spent between
    looks ``k - 1`` and ``k``. Computed by the recursive integration of Armitage, McPherson and Rowe (1969) on the
    Brownian-motion scale ``W_k = Z_k sqrt(t_k)``.
    """
    critical: list[float] = []
    grid = density = None  # the density of W_{k-1} on the continuation region, on its grid
    previous_t = 0.0
    for k, t in enumerate(fractions):
        target = spent(t, alpha, spending) - (spent(previous_t, alpha, spending) if k else 0.0)
        step = t - previous_t

        at = (target, t, step, grid, density)
        c = float(optimize.brentq(_crossing_excess, 0.0, 40.0, args=at, xtol=1e-7)) if target > 0 else math.inf
        critical.append(c)
        bound = c * math.sqrt(t) if math.isfinite(c) else 12 * math.sqrt(t)
        new_grid = np.linspace(-bound, bound, GRID_POINTS)
        if grid is None:
            new_density = stats.norm.pdf(new_grid / math.sqrt(t)) / math.sqrt(t)
        else:
            kernel = stats.norm.pdf((new_grid[:, None] - grid[None, :]) / math.sqrt(step)) / math.sqrt(step)
            new_density = np.trapezoid(kernel * density[None, :], grid, axis=1)
        grid, density, previous_t = new_grid, new_density, t
    return tuple(critical)


def _crossing_excess(
    c: float, target: float, t: float, step: float, grid: np.ndarray | None, density: np.ndarray | None
) -> float:
    """The chance of crossing ``+-c`` first at look time ``t`` (having stayed inside at every earlier look, whose
    continuation density is ``density`` on ``grid``; None at the first look), less ``target``."""
    if grid is None or density is None:
        return float(2 * stats.norm.sf(c)) - target
    bound, scale = c * math.sqrt(t), math.sqrt(step)
    outside = stats.norm.sf((bound - grid) / scale) + stats.norm.cdf((-bound - grid) / scale)
    return float(np.trapezoid(density * outside, grid)) - target


@functools.lru_cache(maxsize=4096)
def _t_quantile(level: float, df: int) -> float:
    """The two-sided ``level`` quantile of Student's t (a race asks for the same few again and again)."""
    return float(stats.t.ppf(1 - level / 2, df))


def looks(initial: int, maximum: int, step: int = 1) -> tuple[int, ...]:
    """The seed counts at which a race looks: ``initial``, ``initial + step`` ... up to ``maximum`` (always last)."""
    counts = list(range(initial, maximum, step))
    return (*counts, maximum)


@dataclass(frozen=True)
class Look:
    """One look at a comparison.

    Attributes:
        verdict: ``better``, ``worse``, ``equivalent``, ``undecided`` (stopped: futility or the last look) or
            ``racing`` (more seeds to come).
        n: paired seeds looked at.
        mean: mean paired difference (positive: the configuration is better, in the objective's direction).
        low, high: the repeated confidence interval of the mean difference at this look.
        level: the nominal two-sided level of this look (``2 - 2 Phi(c_k)``).
        conditional_power: the chance that the last look decides, at the observed mean and spread (NaN at the
            last look or with no spread).
    """

    verdict: str
    n: int
    mean: float
    low: float
    high: float
    level: float
    conditional_power: float


@dataclass(frozen=True)
class SequentialDesign:
    """A race's design: the looks, the level, the margin of equivalence and the futility threshold.

    Attributes:
        counts: the seed counts of the looks (:func:`looks`).
        alpha: two-sided error rate over all looks.
        margin: differences within ``+-margin`` count as equivalent (0: no equivalence verdict).
        futility: stop undecided when the chance that the last look decides is below this (0: never).
        spending: the alpha-spending function, one of :data:`SPENDING`.
    """

    counts: tuple[int, ...]
    alpha: float = 0.05
    margin: float = 0.0
    futility: float = 0.1
    spending: str = "obrien-fleming"

    @property
    def critical(self) -> tuple[float, ...]:
        return boundaries(tuple(n / self.counts[-1] for n in self.counts), self.alpha, self.spending)

    def half_width(self, look: int, n: int, std: float) -> float:
        """Half-width of the repeated interval at look index ``look`` with ``n`` differences of spread ``std``."""
        return _t_quantile(2 * stats.norm.sf(self.critical[look]), n - 1) * std / math.sqrt(n)

    def look(self, differences: np.ndarray) -> Look:
        """The verdict after the look whose seed count is ``len(differences)`` (a count of :attr:`counts`)."""
        n = len(differences)
        index = self.counts.index(n)
        last = index == len(self.counts) - 1
        mean = float(np.mean(differences))
        std = float(np.std(differences, ddof=1)) if n > 1 else math.nan
        level = float(2 * stats.norm.sf(self.critical[index]))
        half = self.half_width(index, n, std) if n > 1 else math.inf
        low, high = mean - half, mean + half
        if self.margin > 0 and -self.margin < low and high < self.margin:
            verdict = "equivalent"
        elif low > 0:
            verdict = "better"
        elif high < 0:
            verdict = "worse"
        else:
            verdict = "undecided" if last else "racing"
        power = math.nan if last or not std > 0 else self.conditional_power(mean, std, n)
        if verdict == "racing" and power < self.futility:
            verdict = "undecided"
        return Look(verdict, n, mean, low, high, level, power)

    def conditional_power(self, mean: float, std: float, n: int) -> float:
        """The chance that the last look decides, if the true difference is ``mean`` and the spread ``std``: the
        final mean is then normal around ``mean`` with variance ``(N - n) std^2 / N^2`` given the first ``n``."""
        final = self.counts[-1]
        half = self.half_width(len(self.counts) - 1, final, std)
        spread = math.sqrt(final - n) * std / final
        decided = stats.norm.sf((half - mean) / spread) + stats.norm.cdf((-half - mean) / spread)
        if self.margin > half:  # inside +-(margin - half): equivalent
            inner = self.margin - half
            decided += stats.norm.cdf((inner - mean) / spread) - stats.norm.cdf((-inner - mean) / spread)
        return float(min(1.0, decided))


def probability_of_improvement(differences: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """P(A > B) over paired seeds (ties count half) and its 95% percentile-bootstrap interval, resampling seeds
    (Bouthillier et al., MLSys 2021). NaN interval with fewer than two seeds."""
    wins = (np.sign(differences) + 1) / 2
    estimate = float(np.mean(wins)) if len(wins) else math.nan
    if len(wins) < 2:
        return estimate, math.nan, math.nan
    if np.all(wins == wins[0]):
        return estimate, estimate, estimate
    result = stats.bootstrap((wins,), np.mean, method="percentile", n_resamples=2000, random_state=seed)
    return estimate, float(result.confidence_interval.low), float(result.confidence_interval.high)
