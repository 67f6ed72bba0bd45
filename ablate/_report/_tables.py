"""The report's tables, in report order: configurations, metrics, the baseline comparison, ranks, marginals, the
paper's layouts and the failures. The numbers come from :mod:`._analysis`, the sentences from :mod:`._notes`."""

from __future__ import annotations

import pandas as pd

from ablate._report._analysis import Friedman, comparisons, friedman, marginal
from ablate._report._format import BLANK, Table, interval, mean_pm, number, number_or_blank, p_value
from ablate._report._model import Axis, ReportData, cooccurrence_metrics
from ablate._report._notes import (
    BOOTSTRAP_NOTE,
    MARKS_NOTE,
    STATS_NOTE,
    better,
    between_rows_note,
    chance_note,
    seed_count,
)
from ablate._report._paper import _lambda_table, _postprocess_table, _segmentation_table, _transfer_table
from ablate._results import PER_IMAGE_COLUMNS
from ablate.pipeline._metrics import is_metric, metric_entry, stage_prefix
from ablate.stats import ALPHA, POWER, WILCOXON_FROM


def _friedman_table(data: ReportData, test: Friedman) -> Table:
    ranks = pd.DataFrame({"configuration": test.ranks.index, "average_rank": test.ranks.to_numpy()})
    shown = pd.DataFrame({"configuration": ranks["configuration"], "average rank": ranks["average_rank"].map(number)})
    note = (
        f"Friedman test over {test.blocks} seeds (the blocks: seeds every configuration completed) of "
        f"{data.objective}: chi2 = {test.statistic:.2f}, p = {p_value(test.p)}. Rank 1 is the best configuration of "
        "a seed; two configurations whose average ranks differ by more than the critical difference "
        f"{test.critical_difference:.3f} differ at alpha {ALPHA} (Nemenyi; Demsar, JMLR 2006). With few seeds the "
        "critical difference is wide: the test then tells few configurations apart."
    )
    return Table(
        "friedman",
        "Ranks over seeds (Friedman)",
        note,
        shown,
        ranks.assign(
            statistic=test.statistic, p=test.p, blocks=test.blocks, critical_difference=test.critical_difference
        ),
    )


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
        title = f"Configurations ranked by {objective} ({better(data, objective)})"
        shown[f"{objective} mean"] = summary[f"{objective}.mean"].map(number)
        shown["std"] = summary[f"{objective}.std"].map(number)
        shown["95% t-CI (seeds)"] = [interval(r, objective) for _, r in summary.iterrows()]
        if per_image_mean(objective):  # its test images can be resampled too
            shown["95% CI (bootstrap)"] = [interval(r, "image_iou", "boot") for _, r in summary.iterrows()]
    for metric in (m for m in cooccurrence_metrics(objective) if m in data.metrics and m != objective):
        shown[f"{metric} ({better(data, metric)})"] = [mean_pm(r, metric) for _, r in summary.iterrows()]
    per_image = per_image_mean(objective)
    note = STATS_NOTE + (BOOTSTRAP_NOTE.format(metric=objective) if per_image else "")
    note += between_rows_note(summary, objective) if objective else ""
    note += chance_note(data, summary, objective)
    return Table("summary", title, note, shown, summary, summary["baseline"].tolist())


def _metrics_table(data: ReportData, summary: pd.DataFrame) -> Table:
    shown = pd.DataFrame({"configuration": summary["configuration"]})
    for metric in data.metrics:
        shown[metric] = [mean_pm(r, metric) for _, r in summary.iterrows()]
    note = f"Each metric as mean ± half-width of its 95% t-interval over seeds (one seed: the mean). {MARKS_NOTE}"
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
    shown["seeds for half"] = compared["seeds_for_half"].map(seed_count)
    note = (
        f"Difference from the baseline (configuration minus baseline) in {objective} over the seeds both completed: "
        f"paired t-test below {WILCOXON_FROM} pairs, else Wilcoxon signed-rank. "
        "p Holm: Holm's adjustment over all rows of the table (many configurations against one baseline). "
        "d_z: effect size, mean over standard deviation of the paired seed differences. "
        f"Detectable Δ: the smallest difference the paired seed t-test detects (alpha {ALPHA}, power {POWER}) "
        "at the observed std of the seed differences; seeds for half: the seeds a difference of half that "
        "size would need."
    )
    return Table("baseline", "Difference from the baseline", note, shown, compared.drop(columns=list(IMAGE_COLUMNS)))


#: The per-image columns of :func:`comparisons`: a view of the trained models, never a verdict's.
IMAGE_COLUMNS = ("delta_image_iou", "image_pairs", "p_images", "p_images_holm")


def _image_table(compared: pd.DataFrame) -> Table | None:
    """The per-image differences from the baseline, apart from every verdict."""
    if not compared["image_pairs"].gt(0).any():
        return None
    shown = pd.DataFrame({"configuration": compared["configuration"], "baseline": compared["baseline"]})
    shown["Δ IoU per image"] = compared["delta_image_iou"].map(lambda v: BLANK if pd.isna(v) else f"{v:+.4f}")
    shown["images"] = compared["image_pairs"].astype(str)
    shown["p (images)"] = compared["p_images"].map(p_value)
    shown["p Holm (images)"] = compared["p_images_holm"].map(p_value)
    note = (
        "On these trained models, not on the configurations: IoU per test image paired by image index within the "
        "seeds both completed, pooled, Wilcoxon signed-rank (two-sided), Holm over the rows. The images of one "
        "trained model are not replicates of its training, so a small p here says that these particular models "
        "differ on these images; whether a configuration trains better models is the seed-level question of the "
        "decisions table."
    )
    data = compared[["configuration", "baseline", *IMAGE_COLUMNS]]
    return Table("baseline-images", "Per-image differences of the trained models", note, shown, data)


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
        images = _image_table(compared)
        tables += [images] if images is not None else []
    test = friedman(data, summary)
    if test is not None:
        tables.append(_friedman_table(data, test))
    if len(data.axes) > 1:  # with one axis the marginal table repeats the summary
        margins = [(a, marginal(data, a)) for a in data.axes if a.discrete]
        # one value (or none run like with like) compares nothing
        tables += [_marginal_table(data, a, table) for a, table in margins if len(table) > 1]
    paper = (_transfer_table(data), _lambda_table(data), _postprocess_table(data), _segmentation_table(data, summary))
    tables += [t for t in paper if t is not None]
    return tables
