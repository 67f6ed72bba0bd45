"""Tables in the layout of the method's paper: knowledge transfer, the lambda sweep, post-processing, and WSSS.

Each is built when the study searches the axes it lays out, with the study's reference numbers beside the results.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablate._reference import Reference
from ablate._report._analysis import balanced, marginal, pooled
from ablate._report._format import BLANK, Table, interval, mean_pm, number
from ablate._report._model import Axis, ReportData, component_label, cooccurrence_metrics, elide, value_label
from ablate._report._notes import MARKS_NOTE, STATS_NOTE, better, between_rows_note, chance_note
from ablate._results import METRIC_PREFIX
from ablate.config._resolve import get_dotted, resolve

MAX_SEED_COLUMNS = 6
TRANSFER_PATHS = {
    "paradigm": ("paradigm", "paradigm.name"),
    "distance": ("transfer.distance", "transfer.distance.name"),
    "level": ("transfer.level", "transfer.level.name"),
}


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
    } | {m: f"segmenter {m.removeprefix('seg_')} ({better(data, m)})" for m in cooccurrence_metrics("seg_miou")}
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
        f"fully supervised bound. Mean ± half-width of the 95% t-interval over seeds. {MARKS_NOTE}"
    )
    if "seg_smoke_iou" in data.metrics:
        note += between_rows_note(summary, "seg_smoke_iou", "segmenter smoke IoU, a two-sample t-test between two rows")
    return Table("wsss", "Weakly supervised segmentation (WSSS layout)", note, shown, summary)
