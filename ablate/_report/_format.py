"""A report table and its text forms: cells as text, Markdown and LaTeX."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

BLANK = "—"


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
