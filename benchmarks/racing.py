"""Racing over seeds against fixed seed counts, on simulated studies: error rates, power and trials spent.

No training: each scenario draws per-seed results of a reference and its configurations from known distributions
(normal, and the bimodal outcome the measured teacher-student students show: a seed's student takes the transfer or
does not), so every verdict can be scored against the truth. The race is the harness's own procedure
(:class:`ablate.stats.SequentialDesign`: repeated confidence intervals at Lan-DeMets boundaries, futility stop), run
seed by seed as ``ablate run`` runs it: a configuration gets another seed while its comparison races; the reference
runs as many seeds as its longest comparison. The fixed design runs ``n`` seeds of everything and decides with the
paired t-test at the same alpha. Seeds of different configurations are drawn independently (no pairing benefit).

Reported per scenario and design: the false-positive rate (better or worse for a configuration with no true
difference, per comparison), the wrong-sign rate, the power (the correct better or worse for one with a difference),
and the trials spent per study; ``max error``: the largest false-positive or wrong-sign rate of a scenario.
``savings``: one minus the race's trials over those of the smallest fixed design whose mean power reaches the
race's. ``against: best`` (F-Race) runs through the harness's own replay (:func:`ablate.study.race_plan`) over 2, 4
and 8 identical configurations, where every verdict of a difference is wrong.

    python benchmarks/racing.py [--size tiny]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from _common import parse_args, print_table, write_result
from scipy import stats

from ablate.stats import SequentialDesign, looks
from ablate.study import RaceSpec, race_plan

REPEATS = {"tiny": 40, "default": 4000}  # simulated studies per scenario
FIXED_SEEDS = range(3, 41)


@dataclass(frozen=True)
class Outcome:
    """Per-seed results of one configuration: normal around ``mean``, or with probability ``p_high`` around
    ``high`` and else around ``mean`` (a bimodal training)."""

    mean: float
    std: float
    p_high: float = 0.0
    high: float = 0.0

    @property
    def expected(self) -> float:
        return (1 - self.p_high) * self.mean + self.p_high * self.high

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        values = rng.normal(self.mean, self.std, shape)
        if self.p_high:
            takes = rng.random(shape) < self.p_high
            values = np.where(takes, rng.normal(self.high, self.std, shape), values)
        return values


# the lambda study's measured spreads (benchmarks/FINDINGS.md): the student alone 0.18 (seed std 0.034), students
# of teacher-student at 0.06-0.09 unless a seed takes the transfer (0.32); two configurations without a difference
REFERENCE = Outcome(0.18, 0.034)
SCENARIOS: dict[str, dict[str, Outcome]] = {
    "lambda": {
        "no difference": REFERENCE,
        "no difference, wider": Outcome(0.18, 0.06),
        "shift +0.03": Outcome(0.21, 0.034),
        "shift -0.05": Outcome(0.13, 0.034),
        "takes 20%": Outcome(0.07, 0.02, 0.2, 0.32),
        "takes 50%": Outcome(0.07, 0.02, 0.5, 0.32),
        "takes 80%": Outcome(0.07, 0.02, 0.8, 0.32),
    },
    "normal": {
        "no difference": REFERENCE,
        "shift +0.02": Outcome(0.20, 0.034),
        "shift +0.04": Outcome(0.22, 0.034),
        "shift -0.08": Outcome(0.10, 0.034),
    },
}


def race(design: SequentialDesign, differences: np.ndarray) -> tuple[str, int]:
    """The verdict of one comparison and the seeds it used, looking after each of the design's seed counts."""
    for n in design.counts:
        look = design.look(differences[:n])
        if look.verdict != "racing":
            return look.verdict, n
    raise AssertionError("the last look always decides")


def fixed(differences: np.ndarray, n: int, alpha: float) -> str:
    """The paired t-test's verdict on the first ``n`` differences of every simulated study at once."""
    head = differences[..., :n]
    p = stats.ttest_1samp(head, 0.0, axis=-1).pvalue
    mean = head.mean(axis=-1)
    return np.where(p < alpha, np.where(mean > 0, "better", "worse"), "undecided")


def score(verdicts: np.ndarray, truth: float) -> dict[str, float]:
    """Shares of verdicts: wrong ones (a difference claimed where there is none, or of the wrong sign) and right."""
    if truth == 0:
        return {"false_positive": float(np.isin(verdicts, ("better", "worse")).mean())}
    right, wrong = ("better", "worse") if truth > 0 else ("worse", "better")
    return {"power": float((verdicts == right).mean()), "wrong_sign": float((verdicts == wrong).mean())}


def _error(scores: dict[str, float]) -> float:
    """The rate of wrong verdicts: a difference claimed where there is none, or one of the wrong sign."""
    return max(scores.get("false_positive", 0.0), scores.get("wrong_sign", 0.0))


def simulate(name: str, outcomes: dict[str, Outcome], design: SequentialDesign, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(sum(map(ord, name)))  # the same draws on every run
    most = max(design.counts[-1], max(FIXED_SEEDS))
    reference = REFERENCE.draw(rng, (repeats, most))
    rows: dict[str, Any] = {}
    spent = np.zeros(repeats)
    longest = np.zeros(repeats)
    for label, outcome in outcomes.items():
        differences = outcome.draw(rng, (repeats, most)) - reference
        raced = [race(design, d[: design.counts[-1]]) for d in differences]
        verdicts = np.array([v for v, _ in raced])
        seeds = np.array([n for _, n in raced])
        spent += seeds
        longest = np.maximum(longest, seeds)
        truth = outcome.expected - REFERENCE.expected
        rows[label] = {
            "true_difference": truth,
            "race": {**score(verdicts, truth), "mean_seeds": float(seeds.mean())},
            "fixed": {n: score(fixed(differences, n, design.alpha), truth) for n in FIXED_SEEDS},
        }
    race_trials = float((spent + longest).mean())  # the reference runs as many seeds as its longest comparison
    with_effect = [r for r in rows.values() if r["true_difference"] != 0]
    race_power = float(np.mean([r["race"]["power"] for r in with_effect]))
    fixed_power = {n: float(np.mean([r["fixed"][n]["power"] for r in with_effect])) for n in FIXED_SEEDS}
    matching = next((n for n in FIXED_SEEDS if fixed_power[n] >= race_power), None)
    fixed_trials = None if matching is None else matching * (len(outcomes) + 1)
    return {
        "configurations": rows,
        "race_trials": race_trials,
        "race_mean_power": race_power,
        # any wrong verdict: a difference claimed where there is none, or one of the wrong sign
        "race_max_error": max(
            max(r["race"].get("false_positive", 0.0), r["race"].get("wrong_sign", 0.0)) for r in rows.values()
        ),
        "fixed_mean_power": fixed_power,
        "fixed_seeds_for_race_power": matching,
        "fixed_trials_for_race_power": fixed_trials,
        "savings": None if fixed_trials is None else 1 - race_trials / fixed_trials,
    }


def simulate_best(configurations: int, repeats: int, spec: RaceSpec) -> dict[str, Any]:
    """``against: best`` over identical configurations: every verdict of a difference is wrong."""
    rng = np.random.default_rng(configurations)
    seeds = list(range(spec.maximum))
    names = {f"c{i}": {} for i in range(configurations)}
    wrong = comparisons = studies_wrong = 0
    trials = []
    for _ in range(repeats):
        draws = REFERENCE.draw(rng, (configurations, spec.maximum))
        results = {(c, s): float(draws[i, s]) for i, c in enumerate(names) for s in seeds}
        plan = race_plan(spec, names, results, seeds, lambda config: None)
        verdicts = [c.verdict for c in plan.comparisons]
        claimed = sum(v in ("better", "worse") for v in verdicts)
        wrong += claimed
        comparisons += configurations - 1
        studies_wrong += claimed > 0
        trials.append(sum(plan.seeds.values()))
    return {
        "false_positive_per_comparison": wrong / comparisons,
        "studies_with_a_false_positive": studies_wrong / repeats,
        "mean_trials": float(np.mean(trials)),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(__doc__.splitlines()[0], REPEATS, argv)
    designs = {
        spending: SequentialDesign(looks(3, 12), alpha=0.05, margin=0.0, futility=0.1, spending=spending)
        for spending in ("obrien-fleming", "pocock")
    }
    results = {
        f"{scenario}/{spending}": simulate(scenario, outcomes, design, args.repeats)
        for scenario, outcomes in SCENARIOS.items()
        for spending, design in designs.items()
    }
    best = {
        f"best/identical-{k}": simulate_best(k, max(10, args.repeats // 4), RaceSpec("best", 3, 12, futility=0.1))
        for k in (2, 4, 8)
    }
    rows = []
    for key, result in results.items():
        fixed_at = result["fixed_seeds_for_race_power"]
        rows.append(
            [
                key,
                result["race_max_error"],
                result["race_mean_power"],
                result["race_trials"],
                fixed_at if fixed_at is not None else f"> {max(FIXED_SEEDS)}",
                result["fixed_trials_for_race_power"] or math.nan,
                result["savings"] if result["savings"] is not None else math.nan,
            ]
        )
    print_table(
        ["scenario/spending", "max error", "mean power", "race trials", "fixed seeds", "fixed trials", "savings"],
        rows,
    )
    print_table(
        ["against: best", "false positives per comparison", "studies with one", "trials"],
        [
            [k, r["false_positive_per_comparison"], r["studies_with_a_false_positive"], r["mean_trials"]]
            for k, r in best.items()
        ],
    )
    setting = {"seeds": "3..12, one a round", "alpha": 0.05, "futility": 0.1, "repeats": args.repeats}
    write_result("racing", args, {"setting": setting, "results": results, "best": best})
    return results


if __name__ == "__main__":
    main()
