"""Racing over seeds: a configuration gets another seed only while its comparison is undecided.

A study with ``seeds: {initial: 3, max: 12}`` and a ``race:`` block runs every configuration's first ``initial``
seeds, then looks at each comparison after every round (``step`` more seeds, paired: seed k of every configuration
is the same seed) with the sequential design of :class:`ablate.stats.SequentialDesign`. A comparison stops when it
is decided (better, worse, equivalent within ``margin``), when the last look cannot plausibly decide it (futility),
or at ``max``; its configuration then gets no more seeds.

``against: baseline`` compares each configuration with the baseline configuration that shares most of its other
values; the baseline runs as many seeds as its longest comparison. ``against: best`` is F-Race's use: after each
round the configuration with the best mean is the reference, and those decided against it stop; the K - 1
comparisons of a round share alpha (Bonferroni), since the best of K means is the most extreme of them. A seed that
failed in every attempt stops the comparisons that need it (verdict ``failed``) instead of holding the race.

The race's state is never stored: :func:`race_plan` replays it from the completed trials, so every worker, a resumed
run and the report reach the same verdicts and the same next seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ablate.stats import SPENDING, Look, SequentialDesign, looks
from ablate.storage import config_id

if TYPE_CHECKING:
    from ablate.study._spec import Study

AGAINST = ("baseline", "best")
RACE_KEYS = {
    "against": "the reference of each comparison: baseline (the study's baseline:) or best (the best mean so far)",
    "alpha": "error rate of a verdict over all looks (default 0.05)",
    "margin": "differences within +-margin are equivalent (default 0: no equivalence verdict)",
    "futility": "stop undecided when the last look would decide with a chance below this (default 0.1; 0: never)",
    "spending": f"alpha-spending function: {', '.join(SPENDING)} (default obrien-fleming)",
    "step": "seeds each round adds (default 1)",
}


@dataclass(frozen=True)
class RaceSpec:
    """A study's ``race:`` block with its ``seeds: {initial, max}``."""

    against: str
    initial: int
    maximum: int
    alpha: float = 0.05
    margin: float = 0.0
    futility: float = 0.1
    spending: str = "obrien-fleming"
    step: int = 1

    @property
    def design(self) -> SequentialDesign:
        counts = looks(self.initial, self.maximum, self.step)
        return SequentialDesign(counts, self.alpha, self.margin, self.futility, self.spending)

    def describe(self) -> str:
        margin = f", margin {self.margin:g}" if self.margin else ""
        return (
            f"race against {self.against} ({self.step} seed a round, alpha {self.alpha:g}{margin}, "
            f"{self.spending} boundaries, futility {self.futility:g})"
        )


def parse_race(raw: Any, seeds: Any) -> RaceSpec:
    """A :class:`RaceSpec` from a study's ``race:`` block and its ``seeds: {initial, max}``.

    Raises:
        ValueError: the message names the key and what is wrong with it.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"race: expected a mapping of {', '.join(RACE_KEYS)}, got {raw!r}")
    for key in raw:
        if key not in RACE_KEYS:
            raise ValueError(f"race.{key}: unknown key; race keys: {', '.join(RACE_KEYS)}")
    if not isinstance(seeds, dict) or set(seeds) != {"initial", "max"}:
        raise ValueError(f"seeds: a race needs seeds: {{initial: N, max: M}}, got {seeds!r}")
    initial, maximum = seeds["initial"], seeds["max"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (initial, maximum)) or initial < 2:
        raise ValueError(f"seeds: initial and max must be counts, initial at least 2, got {seeds!r}")
    if maximum < initial:
        raise ValueError(f"seeds.max: {maximum} is below seeds.initial: {initial}")
    spec = RaceSpec(raw.get("against", "baseline"), initial, maximum)
    values = {key: raw[key] for key in ("alpha", "margin", "futility", "spending", "step") if key in raw}
    spec = RaceSpec(**{**spec.__dict__, **values})
    if spec.against not in AGAINST:
        raise ValueError(f"race.against: expected one of {', '.join(AGAINST)}, got {spec.against!r}")
    checks = {
        "alpha": isinstance(spec.alpha, float) and 0 < spec.alpha < 1,
        "margin": isinstance(spec.margin, int | float) and not isinstance(spec.margin, bool) and spec.margin >= 0,
        "futility": isinstance(spec.futility, int | float)
        and not isinstance(spec.futility, bool)
        and 0 <= spec.futility < 1,
        "step": isinstance(spec.step, int) and not isinstance(spec.step, bool) and spec.step >= 1,
    }
    for key, ok in checks.items():
        if not ok:
            raise ValueError(f"race.{key}: {getattr(spec, key)!r} is out of range ({RACE_KEYS[key]})")
    if spec.spending not in SPENDING:
        raise ValueError(f"race.spending: expected one of {', '.join(SPENDING)}, got {spec.spending!r}")
    return spec


@dataclass
class Comparison:
    """One configuration's race against its reference.

    Attributes:
        config: the configuration's id.
        reference: its reference's id (``against: best``: the best at its last look).
        look: its latest look (None before its first round completed).
        looks: the seed counts at which it was looked at, in order.
        failed: a seed it needed (its own or its reference's) failed with no attempt left: it stopped there.
    """

    config: str
    reference: str
    look: Look | None = None
    looks: list[int] = field(default_factory=list)
    failed: bool = False

    @property
    def racing(self) -> bool:
        return not self.failed and (self.look is None or self.look.verdict == "racing")

    @property
    def verdict(self) -> str:
        """The look's verdict; ``failed`` when a seed it needed failed, ``racing`` before its first look."""
        return "failed" if self.failed else self.look.verdict if self.look else "racing"


@dataclass
class RacePlan:
    """Where a race stands: the seeds each configuration should have run, and each comparison's state."""

    seeds: dict[str, int]  # configuration id -> how many of the study's seeds it runs (so far)
    comparisons: list[Comparison]


def race_plan(
    spec: RaceSpec,
    configurations: dict[str, dict[str, Any]],
    results: dict[tuple[str, int], float],
    seeds: list[int],
    reference_of: Callable[[str], str | None],
    failed: Collection[tuple[str, int]] = (),
) -> RacePlan:
    """Replay the race on the completed results.

    Args:
        spec: the race.
        configurations: configuration id -> parameters, in the study's order.
        results: (configuration id, seed) -> the objective, oriented so that higher is better, of completed trials.
        seeds: the study's seeds (``max`` of them), in order.
        reference_of: ``against: baseline``: the id of a configuration's baseline (None for a baseline itself).
        failed: (configuration id, seed) pairs that failed with no attempt left: a comparison that needs one stops
            there, failed, instead of waiting for it for ever.
    """
    design = spec.design
    failed = set(failed)

    def lost(config: str, n: int) -> bool:
        return any((config, s) in failed for s in seeds[:n])

    def differences(config: str, reference: str, n: int) -> np.ndarray | None:
        pairs = [(results.get((config, s)), results.get((reference, s))) for s in seeds[:n]]
        if any(a is None or b is None for a, b in pairs):
            return None  # the round is not complete: the race stands here
        return np.array([a - b for a, b in pairs], dtype=float)

    if spec.against == "best":
        return _race_best(spec, list(configurations), differences, results, seeds, lost)
    plan = RacePlan({c: design.counts[0] for c in configurations}, [])
    for config in configurations:
        reference = reference_of(config)
        if reference is None:
            continue
        comparison = Comparison(config, reference)
        plan.comparisons.append(comparison)
        for n in design.counts:
            plan.seeds[config] = n
            if lost(config, n) or lost(reference, n):
                comparison.failed = True
                break
            diff = differences(config, reference, n)
            if diff is None:
                break
            comparison.look = design.look(diff)
            comparison.looks.append(n)
            if not comparison.racing:
                break
            plan.seeds[config] = design.counts[min(design.counts.index(n) + 1, len(design.counts) - 1)]
    for comparison in plan.comparisons:  # a reference runs as many seeds as its longest comparison
        plan.seeds[comparison.reference] = max(plan.seeds[comparison.reference], plan.seeds[comparison.config])
    return plan


def _race_best(
    spec: RaceSpec,
    configs: list[str],
    differences: Callable[[str, str, int], np.ndarray | None],
    results: dict[tuple[str, int], float],
    seeds: list[int],
    lost: Callable[[str, int], bool],
) -> RacePlan:
    """F-Race: after each round the best mean is every comparison's reference; a decided configuration stops. The
    K - 1 comparisons of a round share alpha (Bonferroni): the best is the maximum of K means, so each comparison
    at the full alpha would claim a difference among identical configurations far more often than alpha."""
    share = spec.alpha / max(1, len(configs) - 1)
    design = SequentialDesign(spec.design.counts, share, spec.margin, spec.futility, spec.spending)
    plan = RacePlan({c: design.counts[0] for c in configs}, [])
    comparisons = {c: Comparison(c, "") for c in configs}
    active = list(configs)
    best = None
    for index, n in enumerate(design.counts):
        for config in active:
            plan.seeds[config] = n
        for config in [c for c in active if lost(c, n)]:
            comparisons[config].failed = True
            active.remove(config)
        if not active or any((c, s) not in results for c in active for s in seeds[:n]):
            break
        best = max(active, key=lambda c: np.mean([results[(c, s)] for s in seeds[:n]]))
        still = [best]
        for config in active:
            if config == best:
                continue
            comparison = comparisons[config]
            comparison.reference = best
            comparison.look = design.look(differences(config, best, n))
            comparison.looks.append(n)
            if comparison.racing:
                still.append(config)
        active = still
        if len(active) == 1 or index == len(design.counts) - 1:
            break
    plan.comparisons = [c for c in comparisons.values() if c.config != best and (c.look is not None or c.failed)]
    return plan


def baseline_of(study: Study) -> Callable[[str], str | None]:
    """Configuration id -> the id of the baseline configuration it is compared with: the one sharing most of its
    values on the other axes, as the report pairs a row with its baseline (None for a baseline, or no baseline)."""
    configurations = {config_id(p): p for p in study.configurations()}
    baselines = [c for c, p in configurations.items() if study.is_baseline(p)]
    shared = sorted({path for p in configurations.values() for path in p} - set(study.baseline or {}))

    def reference_of(config: str) -> str | None:
        if config in baselines or not baselines or config not in configurations:
            return None
        params = configurations[config]

        def agreement(base: str) -> tuple[int, int]:
            other = configurations[base]
            both = [k for k in shared if k in params and k in other]
            return -sum(params[k] != other[k] for k in both), sum(params[k] == other[k] for k in both)

        return max(baselines, key=agreement)

    return reference_of


def oriented(study: Study, results: dict[tuple[str, int], float]) -> dict[tuple[str, int], float]:
    """First-objective values turned so that higher is better."""
    sign = 1.0 if study.objectives[0].direction == "maximize" else -1.0
    return {key: sign * value for key, value in results.items()}


def study_plan(
    study: Study, results: dict[tuple[str, int], float], failed: Collection[tuple[str, int]] = ()
) -> RacePlan:
    """:func:`race_plan` of a racing grid study on its completed trials' first-objective values ``results``
    ((configuration id, seed) -> value as stored) and its pairs ``failed`` with no attempt left."""
    assert study.race is not None
    configurations = {config_id(p): p for p in study.configurations()}
    return race_plan(study.race, configurations, oriented(study, results), study.seeds, baseline_of(study), failed)
