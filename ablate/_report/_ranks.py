"""Demsar's critical-difference diagram: the configurations' average ranks over seeds (Friedman, Nemenyi)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablate._report._analysis import friedman
from ablate._report._model import ReportData, short_labels
from ablate._report._pdf import Plot, page, wrap

MAX_CONFIGS = 20  # configurations per figure: more leave no legible labels


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
