"""Statistics over seeds and test images, and the report's tables (numbers for CSV, text for Markdown/LaTeX/PDF).

Choices:

* Spread over seeds: sample std (ddof 1) and a 95% confidence interval from Student's t with n - 1 degrees
  of freedom, ``mean +- t(0.975, n-1) * std / sqrt(n)``; undefined (blank) with fewer than two seeds.
* Difference from the baseline over seeds: the seeds both configurations completed are paired. Fewer than
  :data:`WILCOXON_FROM` pairs use the paired t-test (Wilcoxon's signed-rank test cannot reach p < 0.05 with
  five pairs or fewer, and seeds are usually few); from then on Wilcoxon's test, which needs no normality.
* Difference over test images: ``per_image_iou`` paired by image index within each shared seed, pooled over
  the seeds, images without smoke (NaN) dropped; Wilcoxon's signed-rank test (per-image IoUs are bounded and
  skewed, so no t-test). Zero differences are dropped by the test; all-zero differences give p = 1.
* Marginal and paper-layout tables average each seed's trials with the row's value over the other axes first,
  then take the statistics over those per-seed means: a seed counts once, however many values of the other axes
  it ran (three paradigms x two seeds are two samples, not six).
* Resolution: the smallest difference a comparison detects with probability :data:`POWER` at level
  :data:`ALPHA` (two-sided), from the exact power of the t-test (noncentral t) with the observed standard
  deviation: of the paired seed differences against the baseline, or the pooled seed std of the
  configurations for two-sample comparisons between rows. With it, the seeds a difference of half that size
  would need at the same spread.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ablate._config import get_dotted, resolve
from ablate._metrics import is_metric, metric_description, metric_entry, stage_prefix
from ablate._reference import Reference
from ablate._report._model import (
    MISSING,
    Axis,
    ReportData,
    chance_level,
    component_label,
    cooccurrence_metrics,
    elide,
    minimize,
    oracle_suffix,
    value_label,
)
from ablate._results import METRIC_PREFIX, PER_IMAGE_COLUMNS

CONFIDENCE = 0.95
BOOTSTRAP_ROUNDS = 2000
ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 10_000
WILCOXON_FROM = 10
MAX_SEED_COLUMNS = 6
BLANK = "—"

TRANSFER_PATHS = {
    "paradigm": ("paradigm", "paradigm.name"),
    "distance": ("transfer.distance", "transfer.distance.name"),
    "level": ("transfer.level", "transfer.level.name"),
}
CI_NOTE = "Mean and sample std over seeds; 95% CI from Student's t (blank with fewer than two seeds)."
ORACLE_NOTE = "[oracle]: a post-processing step looked at the ground truth, so the numbers are an upper bound."
STATS_NOTE = f"{CI_NOTE} {ORACLE_NOTE}"
BOOTSTRAP_NOTE = (
    " Bootstrap CI: 95% percentile interval of {metric} from a hierarchical bootstrap (2000 rounds: seeds "
    "resampled, then test images within each seed); it stays within [0, 1], unlike the t-interval over few seeds, "
    "but with 2-3 seeds it treats them as all there are and is narrower than the seed spread warrants."
)


@dataclass(frozen=True)
class Table:
    """One report table.

    Attributes:
        name: file stem of its CSV under ``tables/``.
        title: heading.
        note: what it shows and how the numbers were computed.
        shown: the cells as text (Markdown, LaTeX, PDF).
        data: the numbers (CSV).
        emphasis: rows of ``shown`` to highlight (the baseline).
    """

    name: str
    title: str
    note: str
    shown: pd.DataFrame
    data: pd.DataFrame
    emphasis: list[bool] = field(default_factory=list)


# --- numbers -------------------------------------------------------------------------------------
def describe(groups: Any, column: str) -> pd.DataFrame:
    """Mean, std, 95% t-interval and count of ``column`` per group (NaN values not counted)."""
    agg = groups[column].agg(["mean", "std", "count"])
    n = agg["count"]
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * agg["std"] / np.sqrt(n)
    return pd.DataFrame(
        {"mean": agg["mean"], "std": agg["std"], "ci_low": agg["mean"] - half, "ci_high": agg["mean"] + half, "n": n}
    )


def grouped(scored: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Per group of ``by`` columns: configurations, completed trials, oracle mark and ``<metric>.<stat>`` columns."""
    groups = scored.groupby(by, sort=False)
    out = pd.DataFrame(
        {
            "configurations": groups["config_id"].nunique(),
            "trials": groups["state"].agg(lambda s: int(s.eq("COMPLETE").sum())),
            "mark": groups["oracle"].agg(oracle_suffix),
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


def _power(effect: float, n: int, paired: bool) -> float:
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
    while _power(effect, n, paired) < POWER:  # bracket the root, then solve for the standardised effect
        effect *= 2
    return std * float(optimize.brentq(lambda d: _power(d, n, paired) - POWER, 0.0, effect, xtol=1e-6))


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
    while _power(effect, high, paired) < POWER:
        if high >= MAX_SEEDS:
            return math.inf
        low, high = high, min(2 * high, MAX_SEEDS)
    while low < high:  # power grows with n: the first n that reaches it
        middle = (low + high) // 2
        low, high = (middle + 1, high) if _power(effect, middle, paired) < POWER else (low, middle)
    return float(high)


def resolution_note(std: float, n: int, paired: bool, what: str) -> str:
    """One sentence: the smallest difference ``what`` resolves, and the seeds for half of it."""
    mde = detectable_difference(std, n, paired)
    if not math.isfinite(mde):
        return ""
    need = seeds_needed(mde / 2, std, paired)
    return (
        f" Resolution: with {n} seeds and seed std {std:.4f}, {what} detects a difference of {mde:.4f} "
        f"(alpha {ALPHA}, power {POWER}); half of it, {mde / 2:.4f}, would need {_count(need)} seeds."
    )


def between_rows_note(table: pd.DataFrame, metric: str, test: str = "a two-sample t-test between two rows") -> str:
    """:func:`resolution_note` for two rows of ``table`` (``<metric>.std`` and ``.n`` columns): the pooled
    seed std of its rows and their median seed count, two-sample t-test (``test`` says so in the note)."""
    spread = table[[f"{metric}.std", f"{metric}.n"]].dropna()
    if spread.empty:
        return ""
    n = int(spread[f"{metric}.n"].median())
    return resolution_note(float(np.sqrt((spread[f"{metric}.std"] ** 2).mean())), n, False, test)


def _count(seeds: float) -> str:
    return BLANK if math.isnan(seeds) else f"more than {MAX_SEEDS}" if math.isinf(seeds) else str(int(seeds))


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


def image_test(diff: np.ndarray) -> float:
    return _signed_p(diff, stats.wilcoxon) if len(diff) else math.nan


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


def hierarchical_bootstrap(per_seed: list[np.ndarray], rounds: int = BOOTSTRAP_ROUNDS) -> tuple[float, float]:
    """95% percentile interval of the mean per-image IoU, resampling seeds and then images within each seed.

    Each round draws as many seeds as there are, with replacement, and for each drawn seed as many of its images
    (those with smoke: finite IoU), and averages the per-seed means, as the reported smoke_iou does. The interval
    stays inside the metric's range, unlike a t-interval over two or three seeds. NaN with fewer than two seeds.
    """
    seeds = [a[np.isfinite(a)] for a in per_seed]
    seeds = [a for a in seeds if a.size]
    if len(seeds) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(0)  # the same report twice gives the same interval
    # resampled mean of every seed in every round: [seeds, rounds]
    means = np.stack([a[rng.integers(a.size, size=(rounds, a.size))].mean(axis=1) for a in seeds])
    drawn = rng.integers(len(seeds), size=(rounds, len(seeds)))
    totals = means[drawn, np.arange(rounds)[:, None]].mean(axis=1)
    low, high = np.quantile(totals, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(low), float(high)


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
    """Friedman's test over blocks of (seed, test image), with the Nemenyi critical difference (Demsar 2006).

    Attributes:
        ranks: configuration label -> average rank of its per-image smoke IoU (1 = best), best first.
        statistic: Friedman's chi-square.
        p: its p-value.
        blocks: the (seed, image) blocks every configuration has an IoU for.
        critical_difference: average ranks further apart than this differ at level ALPHA (Nemenyi).
    """

    ranks: pd.Series
    statistic: float
    p: float
    blocks: int
    critical_difference: float


def friedman(data: ReportData, summary: pd.DataFrame) -> Friedman | None:
    """The test for studies of three or more configurations with per-image IoUs; None otherwise."""
    done = data.completed
    if len(summary) < 3 or done.empty:
        return None
    labels = dict(zip(summary["config_id"], summary["configuration"], strict=True))
    images = trial_images(done)
    configs = [c for c in labels if any(key[0] == c for key in images)]
    seeds = [s for s in sorted(done["seed"].unique()) if all((c, s) in images for c in configs)]
    blocks = []
    for seed in seeds:
        table = np.array([np.asarray(images[(c, seed)], dtype=float) for c in configs])  # [k, images]
        if len({len(row) for row in table}) != 1:
            continue
        blocks.append(table[:, np.isfinite(table).all(axis=0)].T)
    blocks_array = np.concatenate(blocks) if blocks else np.empty((0, len(configs)))
    k, n = len(configs), len(blocks_array)
    if k < 3 or n < 2:
        return None
    ranks = stats.rankdata(-blocks_array, axis=1).mean(axis=0)  # ties share their mean rank
    if (blocks_array == blocks_array[:, :1]).all():  # every block one tie: no difference (scipy divides 0 by 0)
        statistic, p = 0.0, 1.0
    else:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.friedmanchisquare(*blocks_array.T)
        statistic, p = float(result.statistic), float(result.pvalue)
    q = stats.studentized_range.ppf(1 - ALPHA, k, np.inf) / math.sqrt(2)
    order = np.argsort(ranks, kind="stable")
    return Friedman(
        ranks=pd.Series(ranks[order], index=[labels[configs[i]] for i in order]),
        statistic=statistic,
        p=p,
        blocks=n,
        critical_difference=float(q * math.sqrt(k * (k + 1) / (6 * n))),
    )


def _friedman_table(test: Friedman) -> Table:
    data = pd.DataFrame({"configuration": test.ranks.index, "average_rank": test.ranks.to_numpy()})
    shown = pd.DataFrame({"configuration": data["configuration"], "average rank": data["average_rank"].map(number)})
    note = (
        f"Friedman test over {test.blocks} blocks (seed, test image) of per-image IoU: chi2 = "
        f"{test.statistic:.2f}, p = {p_value(test.p)}. Rank 1 is the best IoU in a block; two configurations whose "
        f"average ranks differ by more than the critical difference {test.critical_difference:.3f} differ at "
        f"alpha {ALPHA} (Nemenyi; Demsar, JMLR 2006). Blocks share images across seeds, so they are not independent."
    )
    return Table(
        "friedman",
        "Ranks over seeds and test images (Friedman)",
        note,
        shown,
        data.assign(
            statistic=test.statistic, p=test.p, blocks=test.blocks, critical_difference=test.critical_difference
        ),
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


# --- text ----------------------------------------------------------------------------------------
def number(value: Any, digits: int = 4) -> str:
    return BLANK if value is None or pd.isna(value) else f"{value:.{digits}f}"


def number_or_blank(value: Any) -> str:
    return BLANK if pd.isna(value) else str(value)


def p_value(value: float) -> str:
    return BLANK if pd.isna(value) else "<0.001" if value < 0.001 else f"{value:.3f}"


def interval(row: pd.Series, metric: str, kind: str = "ci") -> str:
    low, high = row.get(f"{metric}.{kind}_low"), row.get(f"{metric}.{kind}_high")
    return BLANK if pd.isna(low) else f"[{number(low)}, {number(high)}]"


def mean_pm(row: pd.Series, metric: str) -> str:
    """``mean ± CI half-width`` (just the mean with one seed)."""
    mean, low = row.get(f"{metric}.mean"), row.get(f"{metric}.ci_low")
    return number(mean) if pd.isna(low) else f"{number(mean)} ± {number(mean - low)}"


def _direction(data: ReportData, metric: str) -> str:
    return "lower is better" if minimize(metric, data.study) else "higher is better"


def per_image_mean(metric: str | None) -> bool:
    """Whether ``metric`` is the mean of the per-image IoUs the report pairs (registered ``per_image_iou_mean``,
    of the test pseudo-masks or of the stage-3 segmenter)."""
    if metric is None or not is_metric(metric) or stage_prefix(metric) == "train_":
        return False
    return bool(metric_entry(metric).meta.get("per_image_iou_mean"))


def _summary_table(data: ReportData, summary: pd.DataFrame) -> Table:
    objective = data.objective
    rank = summary["rank"].map(number_or_blank).where(~summary["pruned"] | summary["rank"].notna(), "pruned")
    shown = pd.DataFrame({"rank": rank, "configuration": summary["configuration"]})
    shown["seeds"] = summary["seeds"].astype(str)
    title = "Configurations"
    if objective:
        title = f"Configurations ranked by {objective} ({_direction(data, objective)})"
        shown[f"{objective} mean"] = summary[f"{objective}.mean"].map(number)
        shown["std"] = summary[f"{objective}.std"].map(number)
        shown["95% t-CI (seeds)"] = [interval(r, objective) for _, r in summary.iterrows()]
        if per_image_mean(objective):  # its test images can be resampled too
            shown["95% CI (bootstrap)"] = [interval(r, "image_iou", "boot") for _, r in summary.iterrows()]
    for metric in (m for m in cooccurrence_metrics(objective) if m in data.metrics and m != objective):
        shown[f"{metric} ({_direction(data, metric)})"] = [mean_pm(r, metric) for _, r in summary.iterrows()]
    per_image = per_image_mean(objective)
    note = STATS_NOTE + (BOOTSTRAP_NOTE.format(metric=objective) if per_image else "")
    note += between_rows_note(summary, objective) if objective else ""
    note += chance_note(data, summary, objective)
    return Table("summary", title, note, shown, summary, summary["baseline"].tolist())


def chance_note(data: ReportData, table: pd.DataFrame, metric: str | None) -> str:
    """How many rows of ``table`` (with ``<metric>.mean``) score no better than the chance level of ``metric``
    ("" without one)."""
    level = chance_level(data, metric)
    if level is None:
        return ""
    chance, value = level
    means = table[f"{metric}.mean"].dropna()
    worse = means > value if minimize(metric, data.study) else means <= value
    return (
        f" Chance level: {chance} is {value:.4f} on these test images ({metric_description(chance)}"
        f"); {int(worse.sum())} of {len(means)} rows score no better."
    )


def _metrics_table(data: ReportData, summary: pd.DataFrame) -> Table:
    shown = pd.DataFrame({"configuration": summary["configuration"]})
    for metric in data.metrics:
        shown[metric] = [mean_pm(r, metric) for _, r in summary.iterrows()]
    note = f"Each metric as mean ± half-width of its 95% t-interval over seeds (one seed: the mean). {ORACLE_NOTE}"
    return Table("metrics", "All metrics per configuration", note, shown, summary, summary["baseline"].tolist())


def _comparison_table(data: ReportData, compared: pd.DataFrame) -> Table:
    objective = data.objective
    shown = pd.DataFrame({"configuration": compared["configuration"], "baseline": compared["baseline"]})
    shown[f"Δ {objective}"] = compared["delta"].map(lambda v: BLANK if pd.isna(v) else f"{v:+.4f}")
    shown["seeds"] = compared["seed_pairs"].astype(str)
    shown["test"] = compared["seed_test"].replace("", BLANK)
    shown["p (seeds)"] = compared["p_seeds"].map(p_value)
    shown["p Holm"] = compared["p_seeds_holm"].map(p_value)
    shown["d_z"] = compared["effect_dz"].map(lambda v: number(v, 2))
    shown["detectable Δ"] = compared["detectable"].map(number)
    shown["seeds for half"] = compared["seeds_for_half"].map(_count)
    shown["Δ IoU per image"] = compared["delta_image_iou"].map(lambda v: BLANK if pd.isna(v) else f"{v:+.4f}")
    shown["images"] = compared["image_pairs"].astype(str)
    shown["p (images)"] = compared["p_images"].map(p_value)
    shown["p Holm (images)"] = compared["p_images_holm"].map(p_value)
    note = (
        f"Difference from the baseline (configuration minus baseline). Seeds: {objective} of the seeds both "
        f"completed, paired t-test below {WILCOXON_FROM} pairs, else Wilcoxon signed-rank. Images: IoU "
        "per test image paired by image index within shared seeds, pooled, Wilcoxon signed-rank (two-sided). "
        "p Holm: Holm's adjustment over all rows of the table (many configurations against one baseline). "
        "d_z: effect size, mean over standard deviation of the paired seed differences. "
        f"Detectable Δ: the smallest difference the paired seed t-test detects (alpha {ALPHA}, power {POWER}) "
        "at the observed std of the seed differences; seeds for half: the seeds a difference of half that "
        "size would need."
    )
    return Table("baseline", "Difference from the baseline", note, shown, compared)


def _marginal_table(data: ReportData, axis: Axis, table: pd.DataFrame) -> Table:
    objective = data.objective
    shown = pd.DataFrame({axis.name: table[axis.name] + table["mark"]})
    shown["configurations"] = table["configurations"].astype(int).astype(str)
    shown["trials"] = table["trials"].astype(int).astype(str)
    if objective:
        shown[f"{objective} mean"] = table[f"{objective}.mean"].map(number)
        shown["std"] = table[f"{objective}.std"].map(number)
        shown["95% CI"] = [interval(r, objective) for _, r in table.iterrows()]
    for metric in (m for m in cooccurrence_metrics(objective) if m in data.metrics and m != objective):
        shown[metric] = [mean_pm(r, metric) for _, r in table.iterrows()]
    note = (
        f"Each value of {axis.path}: per seed, the mean over the values of the other axes run with every value of "
        f"{axis.path} (completed trials); the statistics are over those per-seed means. " + STATS_NOTE
    )
    return Table(f"marginal-{axis.name}", f"Marginal: {axis.path}", note, shown, table.assign(axis=axis.path))


def _bare(label: str) -> str:
    """A value label without component parameters, as the paper names rows: ``CRF(sxy=3) + SAM`` -> ``CRF + SAM``."""
    return elide(label).replace("(…)", "")


def _axis(data: ReportData, path: str | tuple[str, ...]) -> Axis | None:
    paths = (path,) if isinstance(path, str) else path
    return next((a for a in data.axes if a.path in paths), None)


def _reference(data: ReportData) -> Reference | None:
    """The study's reference numbers when they are in the objective's metric."""
    reference = data.study.reference
    return reference if reference is not None and reference.metric == data.objective else None


def _paper_note(data: ReportData, what: str) -> tuple[Reference | None, str]:
    reference = _reference(data)
    paper = (
        f" 'paper': the published number ({reference.source}; {reference.path.name}), matched by component names."
        if reference
        else ""
    )
    layout = f"{what} in the layout of the paper's table, each seed averaged over any other axes."
    return reference, f"{layout}{paper} {STATS_NOTE}"


def _chain_label(chain: tuple[str, ...]) -> str:
    return " + ".join(component_label(step) for step in chain) or "none"


def _transfer_table(data: ReportData) -> Table | None:
    axes = {role: _axis(data, paths) for role, paths in TRANSFER_PATHS.items()}
    objective = data.objective
    if objective is None or not (axes["distance"] or axes["level"]):  # a paradigm axis alone is no transfer table
        return None
    base = resolve(data.study.config)  # an axis the study does not vary shows the base config's component
    scored = data.scored.assign(
        **{
            role: data.scored[axis.column] if axis else value_label(get_dotted(base, TRANSFER_PATHS[role][0])["name"])
            for role, axis in axes.items()
        }
    )
    roles = list(TRANSFER_PATHS)
    table = pooled(scored, roles, [objective]).reset_index()
    reference, note = _paper_note(data, "Knowledge transfer")
    published = {tuple(map(component_label, k)): v for k, v in (reference.transfer if reference else {}).items()}
    # rows in the reference's order (the paper's), others after them
    order = {role: list(dict.fromkeys(k[i] for k in published)) for i, role in enumerate(roles)}
    rank = [table[r].map(lambda v, r=r: order[r].index(v) if v in order[r] else len(order[r])) for r in roles]
    table = table.iloc[np.lexsort(rank[::-1])].reset_index(drop=True)
    with_paper = reference is not None
    if with_paper:
        table["paper"] = [published.get(tuple(map(_bare, k))) for k in table[roles].itertuples(index=False)]
    shown = table[roles].copy()
    shown["level"] += table["mark"]
    _result_columns(shown, table, objective)
    if with_paper:
        shown["paper"] = table["paper"].map(number)
    note += between_rows_note(table, objective) + chance_note(data, table, objective)
    return Table("paper-transfer", "Knowledge-transfer ablation (paper layout)", note, shown, table)


def _result_columns(shown: pd.DataFrame, table: pd.DataFrame, metric: str) -> None:
    shown["trials"] = table["trials"].astype(int).astype(str)
    shown[f"{metric} mean"] = table[f"{metric}.mean"].map(number)
    shown["95% CI"] = [interval(r, metric) for _, r in table.iterrows()]


def _lambda_table(data: ReportData) -> Table | None:
    axis = _axis(data, "transfer.lambda")
    objective = data.objective
    if objective is None or axis is None or not axis.numeric or not axis.discrete:
        return None
    table = marginal(data, axis)  # without the configurations of other grids (single-network baselines)
    reference, note = _paper_note(data, "λ sweep")
    with_paper = reference is not None
    if with_paper:
        table["paper"] = table[axis.name].map(lambda v: reference.lambdas.get(axis.positions.get(v)))
    rows = {
        f"{objective} mean": table[f"{objective}.mean"].map(number),
        "95% CI": [interval(r, objective) for _, r in table.iterrows()],
        "trials": table["trials"].astype(int).astype(str),
    } | ({"paper": table["paper"].map(number)} if with_paper else {})
    shown = pd.DataFrame([list(v) for v in rows.values()], columns=(table[axis.name] + table["mark"]).tolist())
    shown.insert(0, "λ", list(rows))
    note += between_rows_note(table, objective) + chance_note(data, table, objective)
    return Table("paper-lambda", "λ sweep (paper layout)", note, shown, table)


def _postprocess_table(data: ReportData) -> Table | None:
    axis = _axis(data, "postprocess")
    objective = data.objective
    if objective is None or axis is None:
        return None
    table = marginal(data, axis)
    column = METRIC_PREFIX + objective
    runs = balanced(data, [axis])
    per_seed = runs[runs["state"].eq("COMPLETE")].pivot_table(index=axis.column, columns="seed", values=column)
    seeds = list(per_seed.columns)[:MAX_SEED_COLUMNS]
    table = table.join(per_seed[seeds].add_prefix("seed ").reindex(table[axis.name]).reset_index(drop=True))
    reference, note = _paper_note(data, "Post-processing")
    note += " Seed columns: the objective of that seed (its mean over any other axes)" + (
        f" (first {MAX_SEED_COLUMNS} seeds)." if len(per_seed.columns) > MAX_SEED_COLUMNS else "."
    )
    shown = pd.DataFrame({"post-processing": table[axis.name] + table["mark"]})
    for seed in seeds:
        shown[f"seed {seed}"] = table[f"seed {seed}"].map(number)
    _result_columns(shown, table, objective)
    if reference is not None:
        published = {_chain_label(chain): seeds for chain, seeds in reference.postprocess.items()}
        paper = table[axis.name].map(lambda v: published.get(_bare(v), (None, None)))
        table["paper_best_seed"], table["paper_worse_seed"] = paper.str[0], paper.str[1]
        shown["paper best seed"] = table["paper_best_seed"].map(number)
        shown["paper worse seed"] = table["paper_worse_seed"].map(number)
    note += between_rows_note(table, objective) + chance_note(data, table, objective)
    return Table("paper-postprocess", "Post-processing (paper layout)", note, shown, table)


SUPERVISION = {"pseudo": "pseudo-masks", "ground_truth": "ground truth (upper bound)"}


def _segmentation_table(data: ReportData, summary: pd.DataFrame) -> Table | None:
    """Stage 3 in the layout of WSSS papers: pseudo-mask quality on train, the segmenter trained on them on test."""
    if not any(m.startswith("seg_") for m in data.metrics):
        return None
    columns = {
        "train_miou": "pseudo-mask mIoU (train)",
        "train_smoke_iou": "pseudo-mask smoke IoU (train)",
        "miou": "pseudo-mask mIoU (test)",
        "seg_miou": "segmenter mIoU (test)",
        "seg_smoke_iou": "segmenter smoke IoU (test)",
    } | {m: f"segmenter {m.removeprefix('seg_')} ({_direction(data, m)})" for m in cooccurrence_metrics("seg_miou")}
    shown = pd.DataFrame({"configuration": summary["configuration"]})
    shown["trained on"] = summary["supervision"].map(SUPERVISION).fillna(BLANK)
    for metric, title in columns.items():
        if metric in data.metrics:
            # a segmenter trained on the true masks learned from no pseudo-mask: those cells stay blank there
            learned = metric.startswith("seg_") | ~summary["supervision"].eq("ground_truth")
            cells = [mean_pm(row, metric) for _, row in summary.iterrows()]
            shown[title] = [cell if keep else BLANK for cell, keep in zip(cells, learned, strict=True)]
    names = data.names()
    note = (
        "The three steps of WSSS as IRN, ToCo or CLIP-ES report them: the CAM pseudo-masks of the train split (the "
        f"trial's CAM method and post-processing, an image labelled {names['class']}-free has no mask) against the "
        "train split's masks, and the segmenter trained on those pseudo-masks, evaluated on the test split with the "
        f"metrics of the pseudo-masks; its co-occurrence metrics ask whether the final model still marks the "
        f"{names['object']}. 'ground truth (upper bound)': the same segmenter trained on the true train masks, the "
        f"fully supervised bound. Mean ± half-width of the 95% t-interval over seeds. {ORACLE_NOTE}"
    )
    if "seg_smoke_iou" in data.metrics:
        note += between_rows_note(summary, "seg_smoke_iou", "segmenter smoke IoU, a two-sample t-test between two rows")
    return Table("wsss", "Weakly supervised segmentation (WSSS layout)", note, shown, summary)


def failures_table(data: ReportData) -> Table:
    """Every trial that did not complete, with its reason and whether a later attempt completed it."""
    failed = data.status.failures
    shown = pd.DataFrame(
        {
            "trial": failed["number"].astype(str),
            "configuration": failed["label"],
            "seed": failed["seed"].astype(str),
            "state": failed["state"].str.lower(),
            "reason": failed["error"].where(failed["error"].astype(bool), failed["state"].map(UNFINISHED)),
            "rerun completed": failed["rerun"].map({True: "yes", False: "no"}),
        }
    )
    note = "Trials that failed or did not finish; 'rerun completed': a later attempt of the same seed completed."
    numbers = failed.drop(columns=list(PER_IMAGE_COLUMNS), errors="ignore")
    return Table("failures", "Failed and unfinished trials", note, shown, numbers)


UNFINISHED = {"FAIL": "no reason recorded", "RUNNING": "running or interrupted", "WAITING": "queued"}


def build_tables(data: ReportData, summary: pd.DataFrame) -> list[Table]:
    """Every result table the study's shape allows, in report order (none without any trial).

    Args:
        data: the prepared trials.
        summary: :func:`configurations` of ``data``.
    """
    if data.scored.empty:
        return []
    tables = [_summary_table(data, summary)]
    if len(data.metrics) > 1:
        tables.append(_metrics_table(data, summary))
    compared = comparisons(data, summary)
    if not compared.empty:
        tables.append(_comparison_table(data, compared))
    test = friedman(data, summary)
    if test is not None:
        tables.append(_friedman_table(test))
    if len(data.axes) > 1:  # with one axis the marginal table repeats the summary
        margins = [(a, marginal(data, a)) for a in data.axes if a.discrete]
        # one value (or none run like with like) compares nothing
        tables += [_marginal_table(data, a, table) for a, table in margins if len(table) > 1]
    paper = (_transfer_table(data), _lambda_table(data), _postprocess_table(data), _segmentation_table(data, summary))
    tables += [t for t in paper if t is not None]
    return tables


# --- Markdown and LaTeX ----------------------------------------------------------------------------
def to_markdown(table: Table) -> str:
    def cells(values: list[Any]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [f"## {table.title}", "", table.note, "", cells(list(table.shown.columns))]
    lines.append("|" + "|".join("---" for _ in table.shown.columns) + "|")
    lines += [cells(list(row)) for row in table.shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def numeric(column: pd.Series) -> bool:
    """Whether every cell is a number or blank (right-aligned)."""
    return bool(column.map(lambda v: v == BLANK or str(v).lstrip("+-<").replace(".", "", 1).isdigit()).all())


_LATEX = str.maketrans(
    {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "±": r"$\pm$",
        "Δ": r"$\Delta$",
        "λ": r"$\lambda$",
        "—": "--",
        "<": r"$<$",
    }
)


def to_latex(table: Table) -> str:
    """A ``table`` float with a booktabs ``tabular`` (numeric columns right-aligned)."""

    align = "".join("r" if numeric(table.shown[c]) else "l" for c in table.shown.columns)
    row = " & ".join
    lines = [
        r"\begin{table}[ht]",
        r"\centering\small",
        rf"\caption{{{table.title.translate(_LATEX)}. {table.note.translate(_LATEX)}}}",
        rf"\label{{tab:{table.name}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        row(str(c).translate(_LATEX) for c in table.shown.columns) + r" \\",
        r"\midrule",
        *(row(str(v).translate(_LATEX) for v in r) + r" \\" for r in table.shown.itertuples(index=False)),
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"
