"""The numbers behind the report's tables: statistics per configuration, per axis value, and against the baseline.

Each seed counts once: marginal and paper-layout rows average a seed's trials over the other axes first, then take
the statistics over those per-seed means (three paradigms x two seeds are two samples, not six). The difference
from the baseline pairs the seeds both configurations completed; the per-image columns pair images by index
within shared seeds and pool them (Wilcoxon's signed-rank test: per-image IoUs are bounded and skewed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ablate._report._model import MISSING, Axis, ReportData, mark_suffix, minimize
from ablate._results import METRIC_PREFIX
from ablate.stats import (
    describe,
    detectable_difference,
    friedman_test,
    hierarchical_bootstrap,
    holm,
    image_test,
    seed_test,
    seeds_needed,
)


def grouped(scored: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Per group of ``by`` columns: configurations, completed trials, marks and ``<metric>.<stat>`` columns."""
    groups = scored.groupby(by, sort=False)
    out = pd.DataFrame(
        {
            "configurations": groups["config_id"].nunique(),
            "trials": groups["state"].agg(lambda s: int(s.eq("COMPLETE").sum())),
            "mark": groups["marks"].agg(mark_suffix),
        }
    )
    return pd.concat([out] + [describe(groups, METRIC_PREFIX + m).add_prefix(f"{m}.") for m in metrics], axis=1)


def pooled(scored: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """:func:`grouped` with each seed counted once: metrics are averaged over the group's trials of a seed (the other
    axes' values) before the statistics over seeds. Counts and marks are :func:`grouped`'s."""
    columns = [METRIC_PREFIX + m for m in metrics]
    per_seed = scored.groupby(by + ["seed"], sort=False)[columns].mean().groupby(level=by, sort=False)
    return pd.concat(
        [grouped(scored, by, [])] + [describe(per_seed, METRIC_PREFIX + m).add_prefix(f"{m}.") for m in metrics],
        axis=1,
    )


def trial_images(done: pd.DataFrame) -> dict[tuple[str, Any], Any]:
    """(configuration id, seed) -> that trial's per-image IoUs, for the completed trials that stored them."""
    return {(r.config_id, r.seed): r.per_image_iou for r in done.itertuples() if r.per_image_iou is not None}


def image_pairs(images: dict[tuple[str, Any], Any], first: str, second: str, seeds: list[Any]) -> np.ndarray:
    """``second - first`` per-image IoU differences, paired by image index in each seed both have, pooled."""
    diffs = []
    for seed in seeds:
        a, b = images.get((first, seed)), images.get((second, seed))
        if a is None or b is None or len(a) != len(b):
            continue
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        keep = np.isfinite(a) & np.isfinite(b)
        diffs.append(b[keep] - a[keep])
    return np.concatenate(diffs) if diffs else np.empty(0)


def configurations(data: ReportData) -> pd.DataFrame:
    """One row per configuration: label, axis values, flags, completed seeds, rank and every metric's statistics."""
    stats_ = grouped(data.scored, ["config_id"], data.metrics)
    first = data.scored.groupby("config_id", sort=False).first()
    out = pd.DataFrame({"configuration": first["label"], **{a.name: first[a.column] for a in data.axes}})
    out["oracle"] = data.scored.groupby("config_id", sort=False)["oracle"].any()
    out["baseline"] = first["baseline"].astype(bool)
    out["supervision"] = first.get("segment_masks")
    out["seeds"] = stats_["trials"]
    out["pruned"] = data.scored.groupby("config_id", sort=False)["state"].agg(lambda s: s.eq("PRUNED").any())
    objective = data.objective
    rank = pd.Series(math.nan, index=out.index)
    if objective:
        rank = stats_[f"{objective}.mean"].rank(ascending=minimize(objective, data.study), method="min")
    out["rank"] = rank.astype("Int64")
    out = out.join(stats_.drop(columns=["configurations", "trials", "mark"]))
    per_seed = data.completed.groupby("config_id", sort=False)["per_image_iou"].agg(
        lambda series: [np.asarray(v, dtype=float) for v in series if v is not None]
    )
    bounds = {c: hierarchical_bootstrap(per_seed.get(c, [])) for c in out.index}
    out["image_iou.boot_low"] = [bounds[c][0] for c in out.index]
    out["image_iou.boot_high"] = [bounds[c][1] for c in out.index]
    return out.sort_values(["rank", "configuration"], na_position="last").reset_index()


def comparisons(data: ReportData, summary: pd.DataFrame) -> pd.DataFrame:
    """Each configuration against the baseline configuration that shares its values on the other axes."""
    objective = data.objective
    bases = summary[summary["baseline"]]
    if objective is None or bases.empty:
        return pd.DataFrame()
    shared = [a.name for a in data.axes if a.path not in (data.study.baseline or {})]
    done = data.completed
    by_seed = done.pivot_table(index="seed", columns="config_id", values=METRIC_PREFIX + objective)
    images = trial_images(done)
    rows = []
    for _, row in summary[~summary["baseline"]].iterrows():
        base = _matching_baseline(bases, row, shared)
        # a configuration or its baseline without a completed trial (failed, interrupted) has no pairs: n/a row
        both = base["config_id"] in by_seed and row["config_id"] in by_seed
        pair = by_seed[[base["config_id"], row["config_id"]]].dropna() if both else None
        diff = (pair.iloc[:, 1] - pair.iloc[:, 0]).to_numpy() if pair is not None else np.empty(0)
        test, p_seeds = seed_test(diff)
        std = float(np.std(diff, ddof=1)) if len(diff) >= 2 else math.nan
        effect = diff.mean() / std if std and math.isfinite(std) else math.nan  # Cohen's d of paired differences
        mde = detectable_difference(std, len(diff))
        per_image = image_pairs(images, base["config_id"], row["config_id"], list(by_seed.index))
        rows.append(
            {
                "configuration": row["configuration"],
                "baseline": base["configuration"],
                "delta": diff.mean() if len(diff) else math.nan,
                "seed_pairs": len(diff),
                "seed_test": test,
                "p_seeds": p_seeds,
                "effect_dz": effect,
                "detectable": mde,
                "seeds_for_half": seeds_needed(mde / 2, std),
                "delta_image_iou": per_image.mean() if len(per_image) else math.nan,
                "image_pairs": len(per_image),
                "p_images": image_test(per_image),
            }
        )
    out = pd.DataFrame(rows)
    if not out.empty:
        out["p_seeds_holm"] = holm(out["p_seeds"])
        out["p_images_holm"] = holm(out["p_images"])
    return out


def _matching_baseline(bases: pd.DataFrame, row: pd.Series, shared: list[str]) -> pd.Series:
    """The baseline configuration ``row`` is compared with: the one sharing most of its values on the other
    axes. An axis a configuration leaves unset (another grid of a union) matches any value, so every
    configuration has a baseline."""

    def agreement(base: pd.Series) -> tuple[int, int]:
        equal = sum(base[a] == row[a] for a in shared)
        conflicting = sum(base[a] != row[a] and MISSING not in (base[a], row[a]) for a in shared)
        return -conflicting, equal

    return max((base for _, base in bases.iterrows()), key=agreement)


@dataclass(frozen=True)
class Friedman:
    """Friedman's test over seeds, with the Nemenyi critical difference (Demsar 2006).

    Attributes:
        ranks: configuration label -> average rank of its objective over the seeds (1 = best), best first.
        statistic: Friedman's chi-square.
        p: its p-value.
        blocks: the seeds every configuration completed.
        critical_difference: average ranks further apart than this differ at level ALPHA (Nemenyi).
    """

    ranks: pd.Series
    statistic: float
    p: float
    blocks: int
    critical_difference: float


def friedman(data: ReportData, summary: pd.DataFrame) -> Friedman | None:
    """Friedman's test over seeds for studies of three or more configurations; None otherwise. The blocks are the
    seeds every configuration completed, the values each seed's objective: a seed is the unit, as in every
    verdict (blocks of test images would take one trained model's images for replicates of its training)."""
    objective, done = data.objective, data.completed
    if objective is None or len(summary) < 3 or done.empty:
        return None
    labels = dict(zip(summary["config_id"], summary["configuration"], strict=True))
    by_seed = done.pivot_table(index="seed", columns="config_id", values=METRIC_PREFIX + objective)
    configs = [c for c in labels if c in by_seed.columns]
    blocks = by_seed[configs].dropna().to_numpy() * (-1.0 if minimize(objective, data.study) else 1.0)
    if len(configs) < 3 or len(blocks) < 2:
        return None
    test = friedman_test(blocks)
    order = np.argsort(test.ranks, kind="stable")
    return Friedman(
        ranks=pd.Series(test.ranks[order], index=[labels[configs[i]] for i in order]),
        statistic=test.statistic,
        p=test.p,
        blocks=len(blocks),
        critical_difference=test.critical_difference,
    )


def marginal(data: ReportData, axis: Axis) -> pd.DataFrame:
    """Per value of ``axis``: statistics over seeds of each seed's mean over the other axes (of :func:`balanced`
    trials), in the axis' order. Trials of another grid of a union, which left the axis at the base config, are no
    value of it: pooled under "(base)" they mixed unrelated configurations (the teacher and the student alone as a
    lambda)."""
    scored = balanced(data, [axis])
    scored = scored[scored[axis.column].ne(MISSING)]
    out = pooled(scored, [axis.column], data.metrics).reindex(axis.labels).dropna(subset=["trials"])
    return out.rename_axis(axis.name).reset_index()


def balanced(data: ReportData, axes: list[Axis]) -> pd.DataFrame:
    """The scored trials whose values of the other axes were run with every combination of ``axes``' values: a mean
    pooled over the other axes then compares like with like. In a union of grids (distances compared at the global
    level, levels with the cosine distance) the global level's mean otherwise pools three distances and the other
    levels' one. Trials where ``axes`` keep the base config's value (another grid's) are left as they are. Tuned
    continuous axes are pooled over: their samples never repeat, so no sample is run with every value."""
    scored = data.scored
    columns = [a.column for a in axes]
    others = [a.column for a in data.axes if a not in axes and not a.continuous]
    searched = ~scored[columns].eq(MISSING).any(axis=1)
    if not others or not searched.any():
        return scored
    cells = len(scored.loc[searched, columns].drop_duplicates())
    key = scored[others].apply(tuple, axis=1)  # the other axes' values of each trial
    runs = scored[searched].groupby(key[searched])[columns].apply(lambda group: len(group.drop_duplicates()))
    return scored[~searched | key.isin(list(runs.index[runs.eq(cells)]))]
