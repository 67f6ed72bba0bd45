"""Two (or more) studies side by side: every configuration of each against one reference configuration.

The reference is the first study's baseline configuration (its ``baseline:``), else its best one by the
metric. Each other configuration is compared with it over the seeds both completed, by the report's seed-level
rules: the mean paired difference, the verdict of the report's decisions table at one look (better or worse when
the paired t-interval excludes 0), P(A > B), the paired test (paired t below 10 pairs, Wilcoxon from 10) and Holm's
adjustment over all rows. Studies are told apart by name, configurations by their searched values.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ablate._registries import METRICS
from ablate._results import METRIC_PREFIX, latest_per_identity, load_results
from ablate.config._resolve import ConfigError
from ablate.pipeline._metrics import is_metric, lower_is_better
from ablate.stats import SequentialDesign, holm, probability_of_improvement, seed_test
from ablate.study import load_study

COLUMNS = [
    "study",
    "configuration",
    "seeds",
    "mean",
    "std",
    "shared seeds",
    "difference",
    "verdict",
    "P(A > B)",
    "test",
    "p",
    "p Holm",
]


def _per_seed(frame: pd.DataFrame, column: str) -> dict[str, pd.Series]:
    """Configuration label -> objective by seed, of the completed trials (the latest attempt per seed); every
    configuration that ran is a key, one whose every seed failed with no value."""
    latest = latest_per_identity(frame)
    done = latest[latest["state"].eq("COMPLETE") & latest[column].notna()]
    return {
        label: done[done["configuration"].eq(label)].set_index("seed")[column]
        for label in dict.fromkeys(latest["configuration"])
    }


def compare_studies(
    paths: list[str | Path],
    outs: list[str | Path | None],
    metric: str | None = None,
    storages: list[str | None] | None = None,
) -> pd.DataFrame:
    """The side-by-side table (columns :data:`COLUMNS`; ``attrs["metric"]``: the metric), the reference first.

    Args:
        paths: the study files; the first one holds the reference configuration.
        outs: each study's folder (None: ``reports/<name>``).
        metric: the metric compared (default: the first study's first objective).
        storages: each study's Optuna storage URL (None: the SQLite file in its folder).

    Raises:
        ConfigError: a study is missing or has no completed trial with the metric.
    """
    studies = [load_study(p, check_configs=False, need_plugins=False) for p in paths]
    metric = metric or studies[0].objectives[0].metric
    if not is_metric(metric) and not any(study.missing_plugins for study in studies):
        raise ConfigError(f"--metric: {METRICS.unknown_message(metric)}")
    column = METRIC_PREFIX + metric
    values: dict[str, dict[str, pd.Series]] = {}
    baselines: dict[str, list[str]] = {}
    names = [s.name for s in studies]
    names = [f"{n} ({i + 1})" if names.count(n) > 1 else n for i, n in enumerate(names)]  # one study, two folders
    for name, study, out, storage in zip(names, studies, outs, storages or [None] * len(studies), strict=True):
        frame = load_results(study, out=out, storage=storage)
        if frame.empty or column not in frame or not frame[column].notna().any():
            raise ConfigError(f"{study.path}: no completed trial of study '{study.name}' has {metric}")
        values[name] = _per_seed(frame, column)
        baselines[name] = list(dict.fromkeys(frame.loc[frame["baseline"], "configuration"]))
    first = names[0]
    # the objective's direction, else the metric's own: the best of a lower-is-better metric is its smallest
    directions = [o.direction == "maximize" for o in studies[0].objectives if o.metric == metric]
    maximize = directions[0] if directions else not (is_metric(metric) and lower_is_better(metric))
    means = {label: series.mean() for label, series in values[first].items() if len(series)}
    reference = baselines[first][0] if baselines[first] else (max if maximize else min)(means, key=means.get)
    base = values[first][reference]
    rows = []
    for name, configurations in values.items():
        for label, series in configurations.items():
            shared = sorted(set(series.index) & set(base.index))
            diff = series[shared].to_numpy(float) - base[shared].to_numpy(float)
            is_reference = name == first and label == reference
            test, p = ("", math.nan) if is_reference else seed_test(diff)
            better = diff if maximize else -diff  # in the metric's direction: positive is better
            decided = len(shared) >= 2 and not is_reference
            verdict = SequentialDesign((len(shared),), futility=0.0).look(better).verdict if decided else ""
            rows.append(
                {
                    "study": name,
                    "configuration": f"{label} (reference)" if is_reference else label,
                    "seeds": len(series),
                    "mean": series.mean(),
                    "std": series.std(ddof=1) if len(series) > 1 else math.nan,
                    "shared seeds": len(shared),
                    "difference": math.nan if is_reference or not shared else float(np.mean(diff)),
                    "verdict": verdict,
                    "P(A > B)": probability_of_improvement(better)[0] if decided else math.nan,
                    "test": test,
                    "p": p,
                }
            )
    table = pd.DataFrame(rows, columns=COLUMNS[:-1])
    table["p Holm"] = holm(table["p"])
    order = table["configuration"].str.endswith("(reference)").map({True: 0, False: 1})
    table = table.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order")
    table = table.reset_index(drop=True)
    table.attrs["metric"] = metric
    return table
