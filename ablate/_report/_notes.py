"""The sentences under the report's tables: how the numbers were computed, what they resolve, the chance level."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ablate._report._format import BLANK
from ablate._report._model import ReportData, chance_level, minimize
from ablate.pipeline._metrics import metric_description
from ablate.pipeline._postprocess import MARKS
from ablate.stats import ALPHA, MAX_SEEDS, POWER, detectable_difference, seeds_needed

CI_NOTE = "Mean and sample std over seeds; 95% CI from Student's t (blank with fewer than two seeds)."


MARKS_NOTE = " ".join(f"[{mark}]: {meaning}." for mark, (_, meaning) in MARKS.items())


STATS_NOTE = f"{CI_NOTE} {MARKS_NOTE}"


BOOTSTRAP_NOTE = (
    " Bootstrap CI: 95% percentile interval of {metric} from a hierarchical bootstrap (2000 rounds: seeds "
    "resampled, then test images within each seed); it stays within [0, 1], unlike the t-interval over few seeds, "
    "but with 2-3 seeds it treats them as all there are and is narrower than the seed spread warrants."
)


def resolution_note(std: float, n: int, paired: bool, what: str) -> str:
    """One sentence: the smallest difference ``what`` resolves, and the seeds for half of it."""
    mde = detectable_difference(std, n, paired)
    if not math.isfinite(mde):
        return ""
    need = seeds_needed(mde / 2, std, paired)
    return (
        f" Resolution: with {n} seeds and seed std {std:.4f}, {what} detects a difference of {mde:.4f} "
        f"(alpha {ALPHA}, power {POWER}); half of it, {mde / 2:.4f}, would need {seed_count(need)} seeds."
    )


def between_rows_note(table: pd.DataFrame, metric: str, test: str = "a two-sample t-test between two rows") -> str:
    """:func:`resolution_note` for two rows of ``table`` (``<metric>.std`` and ``.n`` columns): the pooled
    seed std of its rows and their median seed count, two-sample t-test (``test`` says so in the note)."""
    spread = table[[f"{metric}.std", f"{metric}.n"]].dropna()
    if spread.empty:
        return ""
    n = int(spread[f"{metric}.n"].median())
    return resolution_note(float(np.sqrt((spread[f"{metric}.std"] ** 2).mean())), n, False, test)


def seed_count(seeds: float) -> str:
    return BLANK if math.isnan(seeds) else f"more than {MAX_SEEDS}" if math.isinf(seeds) else str(int(seeds))


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


def better(data: ReportData, metric: str) -> str:
    """Which way ``metric`` is better, as a table heading says it."""
    return "lower is better" if minimize(metric, data.study) else "higher is better"
