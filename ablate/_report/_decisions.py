"""The report's verdicts: each configuration against its reference, decided over seeds (the unit of replication).

In a race (``race:``) the verdicts are the race's own, replayed from the stored trials as the runner reached them.
In a study with fixed seeds they come from the same procedure with one look: the 95% confidence interval of the
paired seed differences (the paired t-interval). Per-image numbers never enter a verdict: the test images of one
trained model are not replicates of the training.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import ticker

from ablate._report._format import BLANK, Table, number
from ablate._report._model import MARK_NAME, ReportData, failed_pairs, minimize, objective_results
from ablate._report._notes import seed_count
from ablate._report._pdf import Plot, page
from ablate._results import METRIC_PREFIX
from ablate.stats import ALPHA, POWER, SequentialDesign, probability_of_improvement, seeds_needed
from ablate.study import Comparison, baseline_of, oriented, study_plan

VERDICT_COLOURS = {
    "better": "C2",
    "worse": "C3",
    "equivalent": "C0",
    "undecided": "0.6",
    "racing": "0.8",
    "failed": "C1",
}


def decisions(data: ReportData, summary: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison: configuration, reference, verdict, seeds, mean difference (configuration minus
    reference, in the objective's units) with its interval, P(A > B) with its bootstrap interval, the seeds a
    decision would need, and (in a race) the seeds at which it was decided. Empty without a reference."""
    study = data.study
    metric = study.objectives[0].metric
    column = METRIC_PREFIX + metric
    done = data.completed
    if done.empty or column not in done:
        return pd.DataFrame()
    stored = objective_results(done, study)
    results = oriented(study, stored)
    labels = dict(zip(summary["config_id"], summary["configuration"], strict=True))
    seeds = list(study.seeds)
    failed = failed_pairs(data.status.failures)
    comparisons = study_plan(study, stored, failed).comparisons if study.race else _fixed(data, results, labels)
    sign = -1.0 if minimize(metric, study) else 1.0
    rows = []
    for comparison in comparisons:
        look = comparison.look
        diff = _differences(results, comparison, seeds if study.race else None, look.n if look else 0)
        std = float(np.std(diff, ddof=1)) if len(diff) > 1 else math.nan
        p, p_low, p_high = probability_of_improvement(diff)
        low, high = (look.low, look.high) if look else (math.nan, math.nan)
        mean = look.mean if look else math.nan
        verdict = comparison.verdict if study.race else look.verdict if look else "undecided"
        rows.append(
            {
                "configuration": labels.get(comparison.config, comparison.config),
                "reference": labels.get(comparison.reference, comparison.reference),
                "verdict": verdict,
                "seeds": len(diff),
                "delta": sign * mean,
                "delta_low": sign * (low if sign > 0 else high),
                "delta_high": sign * (high if sign > 0 else low),
                "p_improvement": p,
                "p_improvement_low": p_low,
                "p_improvement_high": p_high,
                "seeds_for_decision": seeds_needed(abs(mean), std) if verdict in ("undecided", "racing") else math.nan,
                "looks": len(comparison.looks),
            }
        )
    return pd.DataFrame(rows)


def _fixed(data: ReportData, results: dict[tuple[str, int], float], labels: dict[str, str]) -> list[Comparison]:
    """Each configuration of a study with fixed seeds against its baseline, at one look (``results`` oriented)."""
    reference_of = baseline_of(data.study)
    comparisons = []
    for config in labels:
        reference = reference_of(config)
        if reference is None:
            continue
        comparison = Comparison(config, reference)
        shared = sorted({s for c, s in results if c == config} & {s for c, s in results if c == reference})
        if len(shared) >= 2:
            diff = np.array([results[(config, s)] - results[(reference, s)] for s in shared])
            comparison.look = SequentialDesign((len(shared),), ALPHA, futility=0.0).look(diff)
            comparison.looks.append(len(shared))
        comparisons.append(comparison)
    return comparisons


def _differences(
    results: dict[tuple[str, int], float], comparison: Comparison, seeds: list[int] | None, n: int
) -> np.ndarray:
    """The oriented paired differences the comparison's last look saw (a race: its first ``n`` seeds)."""
    config, reference = comparison.config, comparison.reference
    if seeds is None:
        seeds = sorted({s for c, s in results if c == config} & {s for c, s in results if c == reference})
    else:
        seeds = seeds[:n]
    pairs = [(results.get((config, s)), results.get((reference, s))) for s in seeds]
    return np.array([a - b for a, b in pairs if a is not None and b is not None], dtype=float)


def decisions_table(data: ReportData, decided: pd.DataFrame) -> Table:
    """The decisions as the report's first table."""
    metric = data.study.objectives[0].metric
    shown = pd.DataFrame({"configuration": decided["configuration"], "reference": decided["reference"]})
    shown["verdict"] = [
        _qualified(verdict, config, reference)
        for verdict, config, reference in zip(
            decided["verdict"], decided["configuration"], decided["reference"], strict=True
        )
    ]
    shown["seeds"] = decided["seeds"].astype(str)
    shown[f"Δ {metric}"] = decided["delta"].map(lambda v: BLANK if pd.isna(v) else f"{v:+.4f}")
    shown["interval"] = [
        BLANK if pd.isna(low) else f"[{low:+.4f}, {high:+.4f}]"
        for low, high in zip(decided["delta_low"], decided["delta_high"], strict=True)
    ]
    shown["P(A > B)"] = [
        BLANK if pd.isna(p) else f"{number(p, 2)} [{number(low, 2)}, {number(high, 2)}]"
        for p, low, high in zip(
            decided["p_improvement"], decided["p_improvement_low"], decided["p_improvement_high"], strict=True
        )
    ]
    shown["seeds for a decision"] = decided["seeds_for_decision"].map(seed_count)
    return Table("decisions", "Decisions over seeds", _note(data), shown, decided)


def _qualified(verdict: str, *labels: str) -> str:
    """The verdict with the marks of the configurations it compares: ``better [random weights]`` is a verdict on
    an untrained step, not on the method."""
    marks = sorted({mark for label in labels for mark in MARK_NAME.findall(label)})
    return f"{verdict} [{', '.join(marks)}]" if marks else verdict


def _note(data: ReportData) -> str:
    race = data.study.race
    unit = (
        "Each configuration against its reference over paired seeds (seed k of both is the same seed), the seed "
        "being the unit of replication. Better or worse: the interval of the mean paired difference (configuration "
        "minus reference) excludes 0"
    )
    if race is None:
        procedure = (
            f"; the interval is the paired t-interval at level {1 - ALPHA:g} (one look at the seeds the study ran)."
        )
    else:
        margin = f"; equivalent: it lies within ±{race.margin:g}" if race.margin else ""
        every = "every seed" if race.step == 1 else f"every {race.step} seeds"
        futility = (
            f"stopped because the last look would decide with a chance under {race.futility:g} at the observed "
            "difference (futility), or at the maximum"
            if race.futility
            else "no decision by the maximum"
        )
        procedure = (
            f"{margin}. Race against {race.against}: a configuration got another seed only while undecided, looking "
            f"after {every} from {race.initial} to {race.maximum}; the intervals are repeated confidence intervals "
            f"(Jennison & Turnbull 1989) at Lan-DeMets {race.spending} boundaries, so a verdict is wrong with "
            f"probability at most about {race.alpha:g} however many looks the race took (measured by "
            f"benchmarks/racing.py; against the best, the comparisons of a round share alpha). Undecided: {futility}; "
            "racing: the run stopped before the comparison did; failed: a seed it needed failed in every attempt."
        )
    return (
        f"{unit}{procedure} P(A > B): the share of paired seeds in which the configuration beats its reference, with "
        "its 95% percentile-bootstrap interval over seeds (Bouthillier et al., MLSys 2021). Seeds for a decision: "
        f"the seeds per configuration a paired t-test needs to detect the observed difference at the observed "
        f"spread (alpha {ALPHA}, power {POWER})."
    )


def race_figure(data: ReportData, decided: pd.DataFrame) -> Plot | None:
    """Seeds each configuration of a race ran, coloured by its verdict."""
    race = data.study.race
    if race is None or decided.empty:
        return None
    caption = (
        f"Seeds each configuration ran before its comparison with its reference stopped (from {race.initial} to "
        f"{race.maximum}), coloured by the verdict; the reference ran as many as its longest comparison."
    )
    fig = page("Race over seeds", caption)
    ax = fig.add_subplot(1, 1, 1)
    order = decided.iloc[::-1]
    colours = [VERDICT_COLOURS[v] for v in order["verdict"]]
    ax.barh(order["configuration"], order["seeds"], color=colours, height=0.6)
    for y, (seeds, verdict) in enumerate(zip(order["seeds"], order["verdict"], strict=True)):
        ax.text(seeds + 0.1, y, verdict, va="center", fontsize=8)
    ax.set_xlim(0, race.maximum + 2)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.axvline(race.initial, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("seeds")
    return Plot("race", fig)
