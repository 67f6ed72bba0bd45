"""The report's figures, each drawn on a report page with a caption (saved as PNG and into the PDF).

Intervals are the same Student-t 95% intervals as in the tables, so figures and tables agree.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
import seaborn as sns
from matplotlib import colormaps, ticker
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from scipy import ndimage

from ablate._metrics import metric_description, per_image_iou, stage_prefix
from ablate._report._analysis import balanced, friedman, grouped, marginal
from ablate._report._model import (
    MISSING,
    Axis,
    ReportData,
    chance_caption,
    chance_level,
    cooccurrence_metrics,
    minimize,
    short_labels,
)
from ablate._report._pdf import page, wrap
from ablate._results import METRIC_PREFIX

MAX_CONFIGS = 20  # configurations per figure: more leave no legible labels
MAX_HEATMAPS = 6
FANOVA_TREES = 32
MAX_GALLERY_ROWS = 8
PANEL, GAP = 96, 4  # gallery panel side and gap, pixels
LABEL_WIDTH = 38
CLASS_OUTLINE, OBJECT_OUTLINE, PRED = "lime", "cyan", (1.0, 0.15, 0.1)
INTERVALS = "Dots: mean with its 95% t-interval over seeds; small dots: single trials."


@dataclass(frozen=True)
class Plot:
    """A figure page and the file stem of its PNG."""

    name: str
    figure: Figure


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
    for oracle, trials in done.groupby("oracle"):
        label, colour = ("trial [oracle]", "C3") if oracle else ("trial", "C0")
        ax.scatter(trials["number"], trials[METRIC_PREFIX + objective], s=14, color=colour, label=label)
    ax.step(done["number"], best, where="post", color="C1", label="best so far")
    if len(failed):
        ax.scatter(failed, np.full(len(failed), values.min()), marker="x", color="red", label="failed")
    ax.set_xlabel("trial number")
    ax.set_ylabel(_axis_label(data, objective))
    ax.legend()
    ax.grid(alpha=0.3)
    return Plot("history", fig)


# --- gallery ----------------------------------------------------------------------------------------
def _sources(data: ReportData, summary: pd.DataFrame) -> list[tuple[str, pd.Series, dict[str, np.ndarray]]]:
    """(role, summary row, stored gallery) for the baseline, the best and the worst configuration.

    All come from one seed they all completed where there is one, so they show the same training seed.
    """
    ranked = summary[summary["rank"].notna()]
    picks: dict[str, tuple[str, pd.Series]] = {}
    for role, rows in (("baseline", ranked[ranked["baseline"]]), ("best", ranked.head(1)), ("worst", ranked.tail(1))):
        if not rows.empty:
            config = rows.iloc[0]["config_id"]
            picks[config] = (f"{picks[config][0]} = {role}" if config in picks else role, rows.iloc[0])
    done = data.completed
    stored = []
    for config, (role, row) in picks.items():
        trials = done[done["config_id"].eq(config)]
        files = {s: data.folder / gallery for s, gallery in trials[["seed", "gallery"]].values}
        paths = {s: p for s, p in files.items() if p.is_file()}
        if paths:  # artifacts of a trial can be gone (deleted, other machine); show the others
            stored.append((role, row, paths))
    common = set.intersection(*(set(paths) for *_, paths in stored)) if stored else set()
    return [(role, row, dict(np.load(paths[min(common or paths)]))) for role, row, paths in stored]


def _case(mask: np.ndarray, other: np.ndarray | None, names: dict[str, str]) -> str:
    """Which of the class and the co-occurring object a test image shows, e.g. ``smoke + chimney``."""
    shown = [names["class"]] if mask.any() else []
    shown += [names["object"]] if other is not None and other.any() else []
    return " + ".join(shown) or "clean"


class _Mosaic:
    """The gallery as one RGB image of equally sized panels (one image draws far faster than 64 axes)."""

    def __init__(self, rows: int, columns: int, shape: tuple[int, ...]) -> None:
        scale = PANEL / max(shape[:2])
        self.size = (round(shape[0] * scale), round(shape[1] * scale))
        self.index = tuple(np.arange(n) * m // n for n, m in zip(self.size, shape[:2], strict=True))
        height, width = self.size
        self.pixels = np.ones((rows * (height + GAP) - GAP, columns * (width + GAP) - GAP, 3))

    def fit(self, array: np.ndarray) -> np.ndarray:
        """``array`` resampled (nearest) to the panel size."""
        return array[self.index[0]][:, self.index[1]]

    def origin(self, row: int, column: int) -> tuple[int, int]:
        return row * (self.size[0] + GAP), column * (self.size[1] + GAP)

    def put(self, row: int, column: int, rgb: np.ndarray) -> None:
        y, x = self.origin(row, column)
        self.pixels[y : y + self.size[0], x : x + self.size[1]] = rgb

    def outlines(self, rgb: np.ndarray, mask: np.ndarray, other: np.ndarray | None) -> np.ndarray:
        """``rgb`` with the border pixels of the class mask (solid) and the co-occurring object's (dashed) painted."""
        rgb = rgb.copy()
        for outlined, colour, dashed in ((mask, CLASS_OUTLINE, False), (other, OBJECT_OUTLINE, True)):
            if outlined is None:
                continue
            inside = self.fit(outlined > 0)
            edge = inside & ~ndimage.binary_erosion(inside, border_value=1)
            if dashed:
                yy, xx = np.indices(edge.shape)
                edge &= (yy + xx) // 4 % 2 == 0
            rgb[edge] = to_rgb(colour)
        return rgb


def gallery_figure(data: ReportData, summary: pd.DataFrame) -> Plot | None:
    sources = _sources(data, summary)
    if not sources:
        if data.completed.empty:
            return None
        # say so rather than drop the page: a report written away from the trials' study folder has no images
        caption = (
            f"Not shown: none of the completed trials' gallery files (artifacts/trial-<number>.npz) is in "
            f"{data.folder}. The process that runs a trial writes them into its own study folder, so a report "
            "written on another machine (or after they were deleted) has none; run `ablate report` where the "
            "trials ran, or copy their artifacts/ folder here."
        )
        fig = page("Qualitative gallery", caption)
        fig.subplots().axis("off")
        return Plot("gallery", fig)
    first = sources[0][2]
    rows = min(MAX_GALLERY_ROWS, len(first["indices"]))
    cooccur = first.get("cooccur")
    names = data.names()
    segmented = all("seg_pred" in arrays for *_, arrays in sources)  # stage 3: the segmenter's masks too
    per = 3 if segmented else 2  # panels per configuration
    mosaic = _Mosaic(rows, 2 + per * len(sources), first["images"].shape[1:])
    jet = colormaps["jet"]
    scores = []
    for r in range(rows):
        image = mosaic.fit(first["images"][r] / 255.0)
        mask, outline = first["masks"][r], cooccur[r] if cooccur is not None else None
        mosaic.put(r, 0, image)
        mosaic.put(r, 1, mosaic.outlines(image, mask, outline))
        for p, (*_, arrays) in enumerate(sources):
            cam = np.clip(mosaic.fit(arrays["cams"][r].astype(np.float32)), 0, 1)
            mosaic.put(r, 2 + per * p, 0.5 * image + 0.5 * jet(cam)[..., :3])
            for offset, key in enumerate(["pred", "seg_pred"][: per - 1], start=1):
                pred = arrays[key][r]
                shaded = np.where(mosaic.fit(pred)[..., None], 0.45 * image + 0.55 * np.array(PRED), image)
                mosaic.put(r, 2 + per * p + offset, mosaic.outlines(shaded, mask, outline))
                if mask.any():
                    iou = per_image_iou(pred[None], mask[None])[0]
                    scores.append((*mosaic.origin(r, 2 + per * p + offset), f"{iou:.2f}"))
    caption = (
        f"Fixed test images (the first of each case). Ground truth: {names['class']} outlined green, "
        f"{names['object']} dashed cyan. Per configuration: its CAM (jet, 0 to 1) over the image, and its "
        f"pseudo-mask (red) with the same outlines"
        + (", then the stage-3 segmenter's mask (red)" if segmented else "")
        + f"; number: the image's {names['class']} IoU. One seed that all shown configurations completed where "
        "there is one."
    )
    fig = page("Qualitative gallery", caption)
    ax, key = fig.subplots(1, 2, width_ratios=[3, 1])
    ax.imshow(mosaic.pixels, interpolation="nearest")
    height, width = mosaic.size
    for y, x, text in scores:
        ax.text(x + 2, y + height - 3, text, fontsize=7, color="white", bbox={"facecolor": "black", "pad": 1})
    titles, colours = ["image", "ground\ntruth"], ["black", "black"]
    for role, row, _ in sources:
        titles += [f"{wrap(role, 9)}\n{kind}" for kind in ["CAM", "mask", "segmenter"][:per]]
        colours += [data.colour("", row["configuration"])] * per
    ax.xaxis.tick_top()
    ax.set_xticks([mosaic.origin(0, c)[1] + width / 2 for c in range(len(titles))], titles, fontsize=7)
    for label, colour in zip(ax.get_xticklabels(), colours, strict=True):
        label.set_color(colour)
    row_names = [
        f"{_case(first['masks'][r], cooccur[r] if cooccur is not None else None, names)}\n{first['names'][i]}"
        for r, i in enumerate(first["indices"][:rows])
    ]
    ax.set_yticks([mosaic.origin(r, 0)[0] + height / 2 for r in range(rows)], row_names, fontsize=7)
    key.axis("off")
    y = 1.0
    for role, row, _ in sources:
        text = f"{role} (rank {row['rank']}):\n{wrap(row['configuration'], 40, lines=8)}"
        key.text(0, y, text, va="top", fontsize=8, color=data.colour("", row["configuration"]))
        y -= 0.04 * (text.count("\n") + 2)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return Plot("gallery", fig)


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"= {value:.3f}"


def cd_groups(ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """The maximal runs ``(first, last)`` of ascending ``ranks`` whose spread is below ``cd``.

    Each start's furthest reach comes from one binary search, so this is O(k log k) in the configurations
    (a pairwise scan was quadratic: hours at 10,000 configurations). A run is kept when it is longer than
    one configuration and the run of the previous start does not already reach its last one.
    """
    last = np.searchsorted(ranks, ranks + cd, side="left") - 1  # furthest index within cd of each start
    return [
        (start, int(end)) for start, end in enumerate(last) if end > start and (start == 0 or end > last[start - 1])
    ]


def critical_difference_figure(data: ReportData, summary: pd.DataFrame) -> Plot | None:
    """Demsar's critical-difference diagram: average ranks on a line, groups not told apart joined by a bar."""
    test = friedman(data, summary)
    if test is None:
        return None
    ranks, cd, k = test.ranks, test.critical_difference, len(test.ranks)
    shown = min(k, MAX_CONFIGS)  # the best ones: more leave no legible labels
    caption = (
        f"Average rank of {data.objective} over {test.blocks} seeds (the blocks: seeds every configuration "
        "completed), 1 = best. Friedman "
        f"chi2 = {test.statistic:.2f}, p {_p(test.p)}. Bars join configurations whose average ranks differ by "
        f"less than the critical difference CD = {cd:.3f} (Nemenyi, alpha 0.05): those the test cannot tell apart."
        + (f" Shown: the {shown} best of {k}." if shown < k else "")
    )
    fig = page("Critical-difference diagram", caption)
    ax = fig.subplots()
    ax.set_xlim(0.8, k + 0.2)
    ax.invert_xaxis()  # best (rank 1) on the right, as in Demsar's figures
    ax.set_ylim(-(shown + 2), 2)
    ax.hlines(0, 1, k, color="black", linewidth=1)
    ax.set_xticks(range(1, k + 1))
    ax.xaxis.set_ticks_position("top")
    ax.tick_params(axis="y", left=False, labelleft=False)
    for spine in ("left", "right", "bottom"):
        ax.spines[spine].set_visible(False)
    ax.plot([k, k - cd], [1.2, 1.2], color="black", linewidth=2)
    ax.text(k - cd / 2, 1.4, "CD", ha="center", va="bottom", fontsize=8)
    labels = short_labels(list(ranks.index[:shown]))
    for i, (label, rank) in enumerate(zip(labels, ranks.iloc[:shown], strict=True)):
        y = -(i + 1)
        right = i < (shown + 1) // 2  # the better half labelled on the right, the rest on the left
        end = 0.8 if right else k + 0.2
        ax.plot([rank, rank, end], [0, y, y], color=data.colour("", ranks.index[i]), linewidth=1)
        text = f"{wrap(label, 40, lines=2)} ({rank:.2f})"  # two lines keep a long label's "(baseline)" mark
        ax.text(
            end,
            y,
            "\n".join(f" {line} " for line in text.splitlines()),
            va="center",
            ha="left" if right else "right",
            fontsize=7,
        )
    cliques: list[tuple[int, int]] = []
    for start, end in cd_groups(ranks.to_numpy(), cd):
        end = min(end, shown - 1)  # a group running past the shown rows ends at the last one shown
        if start < end and (not cliques or end > cliques[-1][1]):
            cliques.append((start, end))
    for row, (start, end) in enumerate(cliques):
        y = -0.3 - 0.25 * row
        ax.plot([ranks.iloc[start] - 0.03, ranks.iloc[end] + 0.03], [y, y], color="black", linewidth=3)
    return Plot("critical-difference", fig)


def build_plots(data: ReportData, summary: pd.DataFrame, optuna_study: optuna.Study | None) -> list[Plot]:
    """Every figure the study's shape and stored trials allow, in report order."""
    plots = [configurations_figure(data, summary)]
    plots += [axis_figure(data, a) for a in data.axes]
    plots += heatmap_figures(data)
    plots += [per_image_figure(data, summary), critical_difference_figure(data, summary)]
    plots += [gallery_figure(data, summary)]
    plots += [importance_figure(data, optuna_study), history_figure(data)]
    return [p for p in plots if p is not None]
