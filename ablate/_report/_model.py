"""What every part of the report shares: the trials by state, the searched axes, readable labels, colours."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import seaborn as sns

from ablate._registries import ALL as REGISTRIES
from ablate._registries import METRICS
from ablate._registry import RegistryError
from ablate._results import METRIC_PREFIX, latest_per_identity
from ablate.pipeline._metrics import chance_metric, lower_is_better, metric_description, stage_prefix
from ablate.pipeline._postprocess import MARKS
from ablate.storage import decode
from ablate.study import Objective, Study

#: A numeric axis with more distinct values is treated as continuous (no table row or colour per value).
MAX_LEVELS = 12
MISSING = "(base)"
SHORT = 28  # characters of a figure label before component parameters are elided
BASELINE_COLOUR = (0.35, 0.35, 0.35)


def component_label(name: str) -> str:
    """How reports write a component name: its registered label (``crf`` -> ``CRF``), else the name."""
    for registry in REGISTRIES.values():
        if name in registry:
            return registry.get(name).label
    return name


def cooccurrence_metrics(beside: str | None = None) -> list[str]:
    """The metrics registered as measuring co-occurrence bias, shown beside the objective wherever there is room;
    of the same stage as the metric ``beside`` (``seg_chimney_claimed`` beside ``seg_smoke_iou``)."""
    prefix = stage_prefix(beside)
    return [prefix + name for name in METRICS.tagged("cooccurrence")]


def chance_level(data: ReportData, metric: str | None) -> tuple[str, float] | None:
    """The chance level of ``metric`` on the study's test images: its chance metric (:func:`chance_metric`) and
    that metric's value, which depends on the test masks only; None without one, or when it differs between the
    completed trials (a study over several datasets: each configuration's is in the all-metrics table)."""
    chance = chance_metric(metric)
    if chance is None or chance not in data.metrics:
        return None
    values = data.completed[METRIC_PREFIX + chance].dropna()
    if values.empty or values.max() - values.min() > 1e-9:
        return None
    return chance, float(values.mean())


def chance_caption(data: ReportData, metric: str | None) -> str:
    """The sentence a figure with :func:`chance_level`'s line adds to its caption ("" without one)."""
    level = chance_level(data, metric)
    if level is None:
        return ""
    chance, value = level
    return f" Dashed line: {chance} {value:.4f}, {metric_description(chance)}."


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def value_label(value: Any) -> str:
    """A short readable label: post-processing chains as ``CRF + SAM``, components by name plus parameters."""
    value = decode(value)
    if is_missing(value):
        return MISSING  # a grid of the union kind left this path at the base config's value
    if isinstance(value, list):
        return " + ".join(value_label(v) for v in value) or "none"
    if isinstance(value, dict):
        name = value_label(value["name"]) if "name" in value else ""
        extra = ", ".join(f"{k}={value_label(v)}" for k, v in value.items() if k != "name")
        return f"{name}({extra})" if name and extra else name or extra
    if isinstance(value, float):
        return f"{value:.4g}"
    return component_label(str(value))


def elide(label: str) -> str:
    """``label`` with component parameters replaced by an ellipsis: ``CRF(sxy=3) + SAM`` -> ``CRF(…) + SAM``.

    Only parentheses right after a name hold parameters; ``(baseline)`` and ``(base)`` stay.
    """
    out: list[str] = []
    depth = 0
    for char in label:
        if depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif char == "(" and out and (out[-1][-1].isalnum() or out[-1][-1] == "_"):
            out.append("(…)")
            depth = 1
        else:
            out.append(char)
    return "".join(out)


# the marks labels carry: " (baseline)", " [oracle]", " [incl. random weights]" ... (see :func:`mark_suffix`)
_ANY_MARK = "|".join(map(re.escape, MARKS))
_MARK = re.compile(rf" \(baseline\)| \[(?:incl\. )?(?:{_ANY_MARK})\]")
#: The name of each ``[mark]`` or ``[incl. mark]`` in a label.
MARK_NAME = re.compile(rf"\[(?:incl\. )?({_ANY_MARK})\]")


def _unmarked(label: str) -> str:
    return _MARK.sub("", label)


def short_labels(labels: list[str]) -> list[str]:
    """Labels for figures: long ones elided, unless that would make two of them read alike (marks such as
    "(baseline)" do not count: ``single(…)`` and ``single(…) (baseline)`` say nothing of which is which)."""
    short = [elide(label) if len(label) > SHORT else label for label in labels]
    distinct = len({_unmarked(label) for label in short}) == len({_unmarked(label) for label in labels})
    return short if distinct else labels


def mark_suffix(marks: pd.Series) -> str:
    """How a group of trials is marked, from their ``marks`` (see ``ablate.pipeline._postprocess.MARKS``):
    `` [m]`` for a mark every trial has, `` [incl. m]`` for one only some of them have."""
    held = [set(m) for m in marks]
    suffix = ""
    for mark in sorted(set().union(*held)):
        suffix += f" [{mark}]" if all(mark in h for h in held) else f" [incl. {mark}]"
    return suffix


@dataclass(frozen=True)
class Axis:
    """One searched dotted path with more than one value among the trials.

    Attributes:
        path: the dotted path.
        name: the short name shown (last path part, full path where that is ambiguous).
        labels: the value labels in display order (numeric order for numbers, else first use).
        positions: label -> number for numeric axes (empty otherwise).
        continuous: tuned over a continuous range: its values are samples, not levels, however few.
    """

    path: str
    name: str
    labels: list[str]
    positions: dict[str, float]
    continuous: bool = False

    @property
    def column(self) -> str:
        """The frame column holding this axis' value labels."""
        return f"label:{self.path}"

    @property
    def numeric(self) -> bool:
        return bool(self.positions)

    @property
    def discrete(self) -> bool:
        """Levels, few enough for one table row, bar and colour per value."""
        return not self.continuous and (not self.numeric or len(self.labels) <= MAX_LEVELS)


def _short_names(paths: list[str]) -> dict[str, str]:
    short = {p: p.removesuffix(".name").rsplit(".", 1)[-1] for p in paths}
    return {p: s if list(short.values()).count(s) == 1 else p for p, s in short.items()}


def _axes(frame: pd.DataFrame, study: Study) -> list[Axis]:
    paths = [d.path for d in study.tune] if study.is_tuning else list(dict.fromkeys(k for g in study.grid for k in g))
    paths = [p for p in paths if p in frame]
    names = _short_names(paths)
    continuous = {d.path for d in study.tune if d.size() is None}
    axes = []
    for path in paths:
        values = [decode(v) for v in frame.sort_values("number")[path]]
        numbers = [v for v in values if not is_missing(v)]
        numeric = bool(numbers) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers)
        ordered = (sorted(set(numbers)) + [None] * (len(numbers) < len(values))) if numeric else values
        labels = list(dict.fromkeys(value_label(v) for v in ordered))
        if len(labels) > 1:
            positions = {value_label(v): float(v) for v in numbers} if numeric else {}
            axes.append(Axis(path, names[path], labels, positions, continuous=path in continuous))
    return axes


def _metrics(frame: pd.DataFrame, objectives: list[Objective]) -> list[str]:
    """Metrics with at least one defined value: objectives first, then co-occurrence, then the rest."""
    stored = [c.removeprefix(METRIC_PREFIX) for c in frame if c.startswith(METRIC_PREFIX)]
    defined = [m for m in stored if frame[METRIC_PREFIX + m].notna().any()]
    beside = cooccurrence_metrics(objectives[0].metric if objectives else None)
    first = list(dict.fromkeys([o.metric for o in objectives] + beside))
    return [m for m in first if m in defined] + sorted(m for m in defined if m not in first)


def minimize(metric: str, study: Study) -> bool:
    """Whether smaller is better: the objective's direction, else the metric's own attribute."""
    for objective in study.objectives:
        if objective.metric == metric:
            return objective.direction == "minimize"
    try:
        return lower_is_better(metric)
    except RegistryError:  # a plugin metric whose module is not loaded now
        return False


@dataclass(frozen=True)
class Status:
    """How complete the study is.

    Attributes:
        expected: (configuration, seed) pairs a complete run holds; None for a time budget only.
        completed: pairs with a completed trial.
        unfinished: the latest attempt of every pair that did not complete and was not pruned.
        failures: every trial that did not complete, with ``rerun`` saying whether a later attempt completed.
    """

    expected: int | None
    completed: int
    unfinished: pd.DataFrame
    failures: pd.DataFrame
    pruned: int = 0  # configurations a pruner stopped at their first seed (their other seeds never run)

    @property
    def not_run(self) -> int:
        return max(0, (self.expected or 0) - self.completed - self.pruned - len(self.unfinished))

    @property
    def partial(self) -> bool:
        return bool(len(self.unfinished) or self.not_run)

    def describe(self) -> str:
        total = self.expected if self.expected is not None else self.completed + len(self.unfinished)
        text = f"{self.completed} of {total} trials completed"
        text += f", {self.pruned} pruned" if self.pruned else ""
        if not self.partial:
            return text
        failed = int(self.unfinished["state"].eq("FAIL").sum()) if len(self.unfinished) else 0
        other = len(self.unfinished) - failed
        parts = [f"{failed} failed"] + ([f"{other} unfinished"] if other else []) + [f"{self.not_run} not run"]
        return f"PARTIAL: {text} ({', '.join(parts)})"


def objective_results(done: pd.DataFrame, study: Study) -> dict[tuple[str, int], float]:
    """(configuration id, seed) -> the first objective's value, of the completed trials in ``done``."""
    column = METRIC_PREFIX + study.objectives[0].metric
    if column not in done:
        return {}
    ran = done.dropna(subset=[column])
    return dict(zip(zip(ran["config_id"], ran["seed"], strict=True), ran[column], strict=True))


def failed_pairs(failures: pd.DataFrame) -> set[tuple[str, int]]:
    """(configuration id, seed) of the pairs among ``failures`` (:attr:`Status.failures`) whose every attempt
    failed."""
    if failures.empty:
        return set()
    lost = failures[failures["state"].eq("FAIL") & ~failures["rerun"]]
    return set(zip(lost["config_id"], lost["seed"], strict=True))


def _status(frame: pd.DataFrame, latest: pd.DataFrame, study: Study) -> Status:
    if frame.empty:
        return Status(study.total_trials(), 0, frame, frame)
    done, pruned = latest["state"].eq("COMPLETE"), latest["state"].eq("PRUNED")
    completed_identities = set(latest.loc[done, "identity"])
    failures = frame[~frame["state"].isin(["COMPLETE", "PRUNED"])]
    failures = failures.assign(rerun=lambda f: f["identity"].isin(completed_identities))
    results = objective_results(latest[done], study) if study.race is not None else None
    # a race's total is what its rounds so far ask for
    expected = study.expected_trials(pruned=int(pruned.sum()), results=results, failed=failed_pairs(failures))
    return Status(expected, int(done.sum()), latest[~done & ~pruned], failures, int(pruned.sum()))


@dataclass(frozen=True)
class ReportData:
    """The stored trials prepared once for tables, figures and pages.

    Attributes:
        study: the study.
        folder: the study folder (artifacts are read from ``folder/artifacts``).
        frame: every trial (the trial table) plus a label column per axis and ``label`` per configuration.
        scored: one row per (configuration, seed), metrics NaN unless the trial completed.
        axes: the searched paths with more than one value.
        metrics: metric names with any defined value, the objective first.
        status: completeness.
        colours: ``(axis path, value label)`` and ``("", configuration label)`` -> RGB colour.
    """

    study: Study
    folder: Path
    frame: pd.DataFrame
    scored: pd.DataFrame
    axes: list[Axis]
    metrics: list[str]
    status: Status
    colours: dict[tuple[str, str], tuple[float, float, float]]

    @property
    def objective(self) -> str | None:
        """The first objective's metric when any trial defines it (ranking, tests and plots use it)."""
        metric = self.study.objectives[0].metric
        return metric if metric in self.metrics else None

    def names(self) -> dict[str, str]:
        """``class`` and ``object``: what the masks and co-occurrence masks mark, as the trials' dataset names them."""
        stored = [n for n in self.frame.get("names", pd.Series(dtype=object)) if isinstance(n, dict)]
        return {"class": "foreground", "object": "co-occurring object", **(stored[-1] if stored else {})}

    @property
    def completed(self) -> pd.DataFrame:
        return self.scored[self.scored["state"].eq("COMPLETE")]

    def marks(self, axis: Axis) -> dict[str, str]:
        """Value label -> its marks (see :func:`mark_suffix`)."""
        return self.scored.groupby(axis.column)["marks"].agg(mark_suffix).to_dict()

    def colour(self, key: str, label: str) -> tuple[float, float, float]:
        """The colour of an axis value (key: the axis path) or of a configuration (key: "")."""
        return self.colours.get((key, label), BASELINE_COLOUR)


def _config_labels(frame: pd.DataFrame, axes: list[Axis]) -> pd.Series:
    """``name=value, ...`` over the axes (values left at the base config omitted), then the marks."""
    parts = pd.Series("", index=frame.index)
    for axis in axes:
        shown = frame[axis.column].ne(MISSING)
        joiner = parts.where(parts.eq(""), parts + ", ")
        parts = parts.where(~shown, joiner + f"{axis.name}=" + frame[axis.column])
    parts = parts.replace("", "base config")
    marks = frame.groupby("config_id")["marks"].transform(mark_suffix)
    return parts + marks + frame["baseline"].map({True: " (baseline)", False: ""})


def _palette(axes: list[Axis], configs: list[str]) -> dict[tuple[str, str], tuple[float, float, float]]:
    """One colour per value of each axis and per configuration (the baseline keeps grey), built once."""
    colours: dict[tuple[str, str], tuple[float, float, float]] = {}
    for key, labels in [(a.path, a.labels) for a in axes if a.discrete] + [("", configs)]:
        shades = sns.color_palette("tab10" if len(labels) <= 10 else "husl", len(labels))
        colours.update({(key, label): tuple(shade) for label, shade in zip(labels, shades, strict=True)})
    colours.update({("", c): BASELINE_COLOUR for c in configs if c.endswith("(baseline)")})
    return colours


def prepare(frame: pd.DataFrame, study: Study, folder: Path) -> ReportData:
    """Label the trial table and split it by state.

    Args:
        frame: the trial table (:func:`ablate._results.trials_frame`), possibly empty.
        study: the study it belongs to.
        folder: the study folder.
    """
    if frame.empty:
        return ReportData(study, folder, frame, frame, [], [], _status(frame, frame, study), {})
    axes = _axes(frame, study)
    frame = frame.assign(**{a.column: frame[a.path].map(value_label) for a in axes})
    # the per-image IoU that tests, intervals and plots pair is that of the stage the objective measures: the
    # stage-3 segmenter's for a seg_ objective, none for a train_ one (other images)
    stage = stage_prefix(study.objectives[0].metric if study.objectives else None)
    if stage:
        frame = frame.assign(per_image_iou=frame.get(f"{stage}per_image_iou"))
    frame = frame.assign(label=_config_labels(frame, axes))
    latest = latest_per_identity(frame)
    metrics = _metrics(latest[latest["state"].eq("COMPLETE")], study.objectives)
    columns = [METRIC_PREFIX + m for m in metrics]
    scored = latest.copy()
    scored.loc[~scored["state"].eq("COMPLETE"), columns] = math.nan  # a failed attempt's partial metrics don't count
    colours = _palette(axes, sorted(frame["label"].unique()))
    return ReportData(study, folder, frame, scored, axes, metrics, _status(frame, latest, study), colours)
