"""The report's figures, each drawn on a report page with a caption (saved as PNG and into the PDF).

Intervals are the same Student-t 95% intervals as in the tables, so figures and tables agree.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import optuna
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ablate._report._analysis import balanced, grouped, marginal
from ablate._report._gallery import gallery_figure
from ablate._report._model import (
    MISSING,
    Axis,
    ReportData,
    chance_caption,
    chance_level,
    cooccurrence_metrics,
    mark_suffix,
    minimize,
    short_labels,
)
from ablate._report._pdf import Plot, page, wrap
from ablate._report._ranks import critical_difference_figure
from ablate._results import METRIC_PREFIX
from ablate.pipeline._metrics import metric_description, stage_prefix

MAX_CONFIGS = 20  # configurations per figure: more leave no legible labels
MAX_HEATMAPS = 6
FANOVA_TREES = 32
LABEL_WIDTH = 38
INTERVALS = "Dots: mean with its 95% t-interval over seeds; small dots: single trials."


def _row_labels(ax: Axes, positions: Any, labels: list[str]) -> None:
    """Row tick labels wrapped, in a font small enough that their lines do not overlap."""
    wrapped = [wrap(label, LABEL_WIDTH, lines=3) for label in short_labels(labels)]
    lines = sum(w.count("\n") + 1 for w in wrapped)
    height = ax.get_position().height * ax.figure.get_figheight() * 72  # pt, before layout: an upper bound
    ax.set_yticks(positions, wrapped, fontsize=float(np.clip(0.8 * height / (1.2 * lines), 5, 8)))


def _panels(data: ReportData) -> list[str]:
    """The objective and, beside it, the co-occurrence metrics."""
    return [m for m in dict.fromkeys((data.objective, *cooccurrence_metrics(data.objective))) if m in data.metrics]


def _axis_label(data: ReportData, metric: str) -> str:
    return f"{metric} ({'lower' if minimize(metric, data.study) else 'higher'} is better)"


def _ranked(summary: pd.DataFrame) -> pd.DataFrame:
    """Configurations for a per-configuration figure: all, or the baseline plus the best and the worst."""
    ranked = summary[summary["rank"].notna()].reset_index(drop=True)
    if len(ranked) <= MAX_CONFIGS:
        return ranked
    half = MAX_CONFIGS // 2
    return ranked[ranked["baseline"] | (ranked.index < half) | (ranked.index >= len(ranked) - half)]


def _selection_note(shown: pd.DataFrame, summary: pd.DataFrame) -> str:
    total = int(summary["rank"].notna().sum())
    return "" if len(shown) == total else f" Shown: the baseline and the {MAX_CONFIGS // 2} best and worst of {total}."


def _intervals(ax: Axes, table: pd.DataFrame, metric: str, colours: list[Any], points: list[np.ndarray]) -> None:
    """Horizontal mean +- CI per row of ``table`` (first row on top) with single trials as small dots."""
    for i, (colour, values) in enumerate(zip(colours, points, strict=True)):
        mean, low, high = (table[f"{metric}.{k}"].iloc[i] for k in ("mean", "ci_low", "ci_high"))
        error = [[mean - low], [high - mean]] if np.isfinite(low) else None
        ax.errorbar(mean, i, xerr=error, fmt="o", color=colour, capsize=3, markersize=5)
        ax.scatter(values, np.full(len(values), i + 0.12), s=9, color=colour, alpha=0.5, linewidths=0)
    ax.set_ylim(len(table) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)


def _interval_panels(
    fig: Figure, data: ReportData, table: pd.DataFrame, labels: list[str], colours: list[Any], column: str, keys: list
) -> None:
    """One panel per metric (objective first): every row of ``table`` as an interval, trials from ``column``."""
    metrics = _panels(data)
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    done = data.completed
    for ax, metric in zip(axes, metrics, strict=True):
        values = done.groupby(column)[METRIC_PREFIX + metric]
        points = [values.get_group(k).dropna().to_numpy() if k in values.groups else np.empty(0) for k in keys]
        _intervals(ax, table, metric, colours, points)
        _chance_line(ax.axvline, data, metric)
        ax.set_xlabel(_axis_label(data, metric))
    _row_labels(axes[0], range(len(labels)), labels)


def _chance_line(draw: Any, data: ReportData, metric: str) -> None:
    """The chance level of ``metric`` as a dashed line (``draw``: the axes' ``axvline`` or ``axhline``)."""
    level = chance_level(data, metric)
    if level is not None:
        draw(level[1], color="0.3", linestyle="--", linewidth=1, zorder=0)


def configurations_figure(data: ReportData, summary: pd.DataFrame) -> Plot | None:
    if data.objective is None:
        return None
    shown = _ranked(summary)
    shown_metrics = [m for m in _panels(data) if m != data.objective]
    meanings = "; ".join(f"{m}: {metric_description(m)}" for m in shown_metrics)
    caption = (
        f"Each configuration ranked by {data.objective} (best on top)"
        + (f" with the co-occurrence metrics beside it ({meanings})" if meanings else "")
        + f". {INTERVALS}{_selection_note(shown, summary)}{chance_caption(data, data.objective)}"
    )
    fig = page("Configurations", caption)
    colours = [data.colour("", label) for label in shown["configuration"]]
    _interval_panels(fig, data, shown, list(shown["configuration"]), colours, "config_id", list(shown["config_id"]))
    return Plot("configurations", fig)


def axis_figure(data: ReportData, axis: Axis) -> Plot | None:
    """Metrics per value of one axis, pooled over the other axes: intervals, or a line with a band for numbers."""
    if data.objective is None:
        return None
    table = marginal(data, axis)
    if table.empty:  # no value of it was run with the same values of the other axes as another
        return None
    pooled = " (pooled over the other axes)" if len(data.axes) > 1 else ""
    if not axis.numeric:
        caption = f"Metrics per value of {axis.path}{pooled}. {INTERVALS}{chance_caption(data, data.objective)}"
        fig = page(f"Axis: {axis.path}", caption)
        labels = list(table[axis.name])
        colours = [data.colour(axis.path, label) for label in labels]
        _interval_panels(
            fig,
            data,
            table,
            [f"{v}{m}" for v, m in zip(labels, table["mark"], strict=True)],
            colours,
            axis.column,
            labels,
        )
        return Plot(f"axis-{axis.name}", fig)
    band = " Line and band: mean and 95% t-interval per value." if axis.discrete else ""
    caption = f"Metrics against {axis.path}{pooled}.{band} Dots: single trials.{chance_caption(data, data.objective)}"
    fig = page(f"Metrics against {axis.path}", caption)
    metrics = _panels(data)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    table = table[table[axis.name].isin(axis.positions)]
    x = table[axis.name].map(axis.positions).to_numpy()
    trials = data.completed[data.completed[axis.column].isin(axis.positions)]
    log = any(d.path == axis.path and d.log for d in data.study.tune)
    for ax, metric in zip(axes, metrics, strict=True):
        if axis.discrete:
            ax.plot(x, table[f"{metric}.mean"], marker="o", color="C0")
            ax.fill_between(x, table[f"{metric}.ci_low"], table[f"{metric}.ci_high"], color="C0", alpha=0.2)
        ax.scatter(
            trials[axis.column].map(axis.positions),
            trials[METRIC_PREFIX + metric],
            s=12,
            color="C0",
            alpha=0.5,
            linewidths=0,
        )
        _chance_line(ax.axhline, data, metric)
        if log:
            _log_x(ax)
        ax.set_xlabel(axis.path)
        ax.set_ylabel(_axis_label(data, metric))
        ax.grid(alpha=0.3)
    return Plot(f"axis-{axis.name}", fig)


def _log_x(ax: Axes) -> None:
    """A log x axis with plain-text tick labels: matplotlib's own are math text (``$\\mathdefault{10^{-3}}$``),
    which the report's style leaves unparsed since study values may hold "$"."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False))


def heatmap_figures(data: ReportData) -> list[Plot]:
    """The objective over each pair of discrete axes (mean over seeds and any further axes)."""
    objective = data.objective
    discrete = [a for a in data.axes if a.discrete]
    if objective is None:
        return []
    plots = []
    for first, second in itertools.islice(itertools.combinations(discrete, 2), MAX_HEATMAPS):
        table = grouped(balanced(data, [first, second]), [first.column, second.column], [objective])[
            f"{objective}.mean"
        ]
        # values left at the base config ("(base)") belong to another grid of a union: not a crossing
        grid = (
            table.unstack()
            .reindex(
                index=[v for v in first.labels if v != MISSING], columns=[v for v in second.labels if v != MISSING]
            )
            .dropna(how="all")
            .dropna(axis=1, how="all")
        )
        if not _crossed(grid):  # nothing to map: the axes were not varied together
            continue
        further = " and the other axes' values run with every cell" if len(data.axes) > 2 else ""
        caption = f"Mean {objective} over seeds{further} for each pair of {first.path} and {second.path} values."
        fig = page(f"Heat map: {first.name} × {second.name}", caption)
        ax = fig.subplots()
        cmap = "viridis_r" if minimize(objective, data.study) else "viridis"  # brighter is better either way
        sns.heatmap(
            grid,
            annot=len(grid) * len(grid.columns) <= 150,
            fmt=".3f",
            annot_kws={"fontsize": 10},
            cmap=cmap,
            ax=ax,
            cbar_kws={"label": _axis_label(data, objective)},
        )
        rows, columns = data.marks(first), data.marks(second)
        _row_labels(ax, np.arange(len(grid)) + 0.5, [v + rows[v] for v in grid.index])
        tilt = 30 if len(grid.columns) > 6 else 0  # many columns: slanted labels keep clear of each other
        columns = [wrap(v, 16, lines=3) for v in short_labels([v + columns[v] for v in grid.columns])]
        ax.set_xticks(np.arange(len(grid.columns)) + 0.5, columns, rotation=tilt, ha="right" if tilt else "center")
        ax.set_ylabel(first.path)
        ax.set_xlabel(second.path)
        plots.append(Plot(f"heatmap-{first.name}-{second.name}", fig))
    return plots


def _crossed(grid: pd.DataFrame) -> bool:
    """Whether two rows of ``grid`` have values in two common columns: some 2 x 2 block is complete, so the
    second axis' effect is seen at two values of the first (a tuning sampler's scattered pairs are not)."""
    present = grid.notna().to_numpy(int)
    shared = present @ present.T  # row x row: the columns both rows have values in
    np.fill_diagonal(shared, 0)
    return bool((shared >= 2).any())


def per_image_figure(data: ReportData, summary: pd.DataFrame) -> Plot | None:
    shown = _ranked(summary)
    done = data.completed[data.completed["label"].isin(shown["configuration"])]
    long = done[["label", "per_image_iou"]].dropna().explode("per_image_iou")
    long = long.assign(iou=pd.to_numeric(long["per_image_iou"])).dropna(subset=["iou"])
    if long.empty:
        return None
    fg = data.names()["class"]
    whose = "The stage-3 segmenter's " if stage_prefix(data.objective) == "seg_" else ""  # what the objective asks of
    caption = (
        f"{whose}{fg if whose else fg.capitalize()} IoU of every test image with {fg}, pooled over seeds, per "
        "configuration in rank order: "
        "box = quartiles, whiskers = 1.5 IQR, triangle = mean (the objective when it is the mean of these)."
        + _selection_note(shown, summary)
    )
    fig = page("Per-image IoU", caption)
    ax = fig.subplots()
    order = [c for c in shown["configuration"] if c in set(long["label"])]
    boxes = ax.boxplot(
        [long.loc[long["label"].eq(c), "iou"].to_numpy() for c in order],
        orientation="horizontal",
        patch_artist=True,
        showmeans=True,
        widths=0.6,
        medianprops={"color": "black"},
        meanprops={"marker": "^", "markerfacecolor": "black", "markeredgecolor": "black"},
        flierprops={"markersize": 2},
    )
    for box, configuration in zip(boxes["boxes"], order, strict=True):
        box.set_facecolor(data.colour("", configuration))
    _row_labels(ax, range(1, len(order) + 1), order)
    ax.invert_yaxis()
    ax.set_xlabel(f"{fg} IoU per image")
    ax.grid(axis="x", alpha=0.3)
    return Plot("per-image-iou", fig)


def importance_figure(data: ReportData, optuna_study: optuna.Study | None) -> Plot | None:
    """fANOVA importance of the searched paths for the first objective; None when it cannot be computed."""
    if optuna_study is None or len(data.axes) < 2 or len(data.completed) < 2:
        return None
    try:
        importance = optuna.importance.get_param_importances(
            optuna_study,
            # half of Optuna's default forest keeps hundreds of trials quick
            evaluator=optuna.importance.FanovaImportanceEvaluator(n_trees=FANOVA_TREES, seed=0),
            target=lambda t: t.values[0],
        )
    except (RuntimeError, ValueError):  # e.g. too few distinct values or completed trials
        return None
    if not any(importance.values()):  # no parameter shared by every trial (a union of grids): nothing to show
        return None
    caption = (
        f"fANOVA importance of each searched path for {data.study.objectives[0].metric}: the share of the "
        f"objective's variance it explains across completed trials (Optuna, {FANOVA_TREES} trees, seed 0)."
    )
    fig = page("Parameter importance", caption)
    ax = fig.subplots()
    names = list(importance)[::-1]
    bars = ax.barh([wrap(n, 30) for n in names], [importance[n] for n in names], color="C0", height=0.5)
    ax.bar_label(bars, fmt="%.3f", padding=3)
    ax.set_xlabel("importance")
    ax.grid(axis="x", alpha=0.3)
    return Plot("importance", fig)


def history_figure(data: ReportData) -> Plot | None:
    """Objective per trial number with the best value so far (tuning studies)."""
    objective = data.objective
    if not data.study.is_tuning or objective is None:
        return None
    done = data.completed.sort_values("number")
    values = done[METRIC_PREFIX + objective]
    best = values.cummin() if minimize(objective, data.study) else values.cummax()
    failed = data.frame[data.frame["state"].eq("FAIL")]["number"]
    caption = f"{objective} of every completed trial by trial number and the best so far; crosses: failed trials."
    fig = page("Optimisation history", caption)
    ax = fig.subplots()
    marks = done["marks"].map(lambda held: mark_suffix(pd.Series([held])))
    marked_colours = iter(["C3", "C4", "C5", "C6"])
    for mark, trials in done.groupby(marks, sort=True):
        colour = "C0" if not mark else next(marked_colours, "C7")
        ax.scatter(trials["number"], trials[METRIC_PREFIX + objective], s=14, color=colour, label=f"trial{mark}")
    ax.step(done["number"], best, where="post", color="C1", label="best so far")
    if len(failed):
        ax.scatter(failed, np.full(len(failed), values.min()), marker="x", color="red", label="failed")
    ax.set_xlabel("trial number")
    ax.set_ylabel(_axis_label(data, objective))
    ax.legend()
    ax.grid(alpha=0.3)
    return Plot("history", fig)


def build_plots(data: ReportData, summary: pd.DataFrame, optuna_study: optuna.Study | None) -> list[Plot]:
    """Every figure the study's shape and stored trials allow, in report order."""
    plots = [configurations_figure(data, summary)]
    plots += [axis_figure(data, a) for a in data.axes]
    plots += heatmap_figures(data)
    plots += [per_image_figure(data, summary), critical_difference_figure(data, summary)]
    plots += [gallery_figure(data, summary)]
    plots += [importance_figure(data, optuna_study), history_figure(data)]
    return [p for p in plots if p is not None]
