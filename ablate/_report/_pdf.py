"""Pages of report.pdf: one page layout, text pages, tables split to fit the page, a footer on every page."""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont, get_font
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.patches import Rectangle

from ablate._report._format import Table, numeric

PAGE = (11.69, 8.27)  # A4 landscape, inches
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "savefig.dpi": 110,
    "text.parse_math": False,  # study files, labels and errors may hold "$"; never read them as math
}
LEFT, RIGHT = 0.04, 0.96
TITLE_Y, FOOTER_Y = 0.955, 0.02
BODY_TOP = 0.88
PT = 1 / 72  # inch
WRAP = 150  # characters of 9 pt text across the page
FONT = 8  # table and listing text, pt
PAD = 4  # cell padding, pt
LINE = 1.35 * FONT  # table line height, pt
TEXT_LINES = 48  # monospaced lines per page
WIDE_COLUMNS = {"reason": 70, "configuration": 60, "baseline": 40, "post-processing": 48}
COLUMN_CAP = 30  # characters, before a cell wraps
MAX_ROWS = 60  # table rows drawn in the PDF; longer tables are read in the text files


@dataclass(frozen=True)
class Plot:
    """A figure page and the file stem of its PNG."""

    name: str
    figure: Figure


def wrap(text: str, width: int = WRAP, lines: int | None = None) -> str:
    """Every line of ``text`` wrapped to ``width`` characters (indentation kept); cut with "…" after ``lines``."""
    wrapped = [part for line in str(text).splitlines() for part in textwrap.wrap(line, width) or [""]] or [""]
    if lines is not None and len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 1], wrapped[lines - 1] + "…"]
    return "\n".join(wrapped)


def page(title: str, caption: str = "") -> Figure:
    """A landscape page with a title and a caption; its axes are laid out between them.

    Args:
        title: the page title.
        caption: what the page shows (wrapped below the axes).
    """
    caption = wrap(caption)
    lines = caption.count("\n") + 1 if caption else 0
    bottom = 0.05 + lines * 13 * PT / PAGE[1]
    fig = Figure(
        figsize=PAGE,
        layout=ConstrainedLayoutEngine(rect=(LEFT - 0.02, bottom, 0.96, BODY_TOP - bottom)),
    )
    fig.text(LEFT, TITLE_Y, title, fontsize=14, weight="bold", va="top")
    if caption:
        fig.text(LEFT, bottom - 0.01, caption, fontsize=9, va="top")
    return fig


class Document:
    """``report.pdf`` being written: every page gets the study name, a page number and, if partial, a mark."""

    def __init__(self, pages: PdfPages, footer: str, partial: bool) -> None:
        self.pages = pages
        self.footer = footer
        self.partial = partial
        self.count = 0

    def add(self, fig: Figure) -> None:
        self.count += 1
        fig.text(LEFT, FOOTER_Y, self.footer, fontsize=7, color="0.4")
        fig.text(RIGHT, FOOTER_Y, f"page {self.count}", fontsize=7, color="0.4", ha="right")
        if self.partial:
            fig.text(
                0.5,
                FOOTER_Y,
                "PARTIAL RESULTS: trials failed or missing",
                fontsize=8,
                color="red",
                weight="bold",
                ha="center",
            )
        self.pages.savefig(fig)


@contextmanager
def document(path: Path, title: str, footer: str, partial: bool) -> Iterator[Document]:
    with PdfPages(path, metadata={"Title": title, "Creator": "ablate"}) as pages:
        yield Document(pages, footer, partial)


def title_page(title: str, description: str, facts: list[tuple[str, str]], status: str, partial: bool) -> Figure:
    fig = page(title)
    y = BODY_TOP
    if description:
        text = wrap(description, 120)
        fig.text(LEFT, y, text, fontsize=11, va="top", style="italic")
        y -= (text.count("\n") + 2) * 15 * PT / PAGE[1]
    if partial:
        fig.text(
            LEFT,
            y,
            status,
            fontsize=12,
            color="white",
            weight="bold",
            va="top",
            bbox={"facecolor": "red", "edgecolor": "none", "pad": 5},
        )
        y -= 0.07
    for key, value in facts:
        value = wrap(value, 110)
        fig.text(LEFT, y, key, fontsize=10, weight="bold", va="top")
        fig.text(LEFT + 0.17, y, value, fontsize=10, va="top")
        y -= (value.count("\n") + 1) * 15 * PT / PAGE[1] + 0.012
    return fig


def text_pages(title: str, text: str) -> list[Figure]:
    """``text`` in a monospaced font, long lines wrapped, split over as many pages as it needs."""
    lines = wrap(text.expandtabs(4), 140).splitlines()
    chunks = [lines[i : i + TEXT_LINES] for i in range(0, len(lines), TEXT_LINES)] or [[]]
    figures = []
    for i, chunk in enumerate(chunks):
        fig = page(title + (f" ({i + 1}/{len(chunks)})" if len(chunks) > 1 else ""))
        fig.text(LEFT, BODY_TOP, "\n".join(chunk), family="monospace", fontsize=FONT, va="top", linespacing=1.3)
        figures.append(fig)
    return figures


# --- tables ---------------------------------------------------------------------------------------
def _pack(sizes: list[float], fixed: float, available: float) -> list[list[int]]:
    """Consecutive indices grouped greedily so that ``fixed`` plus a group's sizes stays within ``available``."""
    groups: list[list[int]] = [[]]
    used = fixed
    for i, size in enumerate(sizes):
        if groups[-1] and used + size > available:
            groups.append([])
            used = fixed
        groups[-1].append(i)
        used += size
    return groups


@functools.cache
def _advance(char: str, weight: str) -> float:
    """Advance width of one glyph of the default font at the table size, pt."""
    font = get_font(findfont(FontProperties(weight=weight)))
    font.set_size(FONT, 72)
    return font.load_char(ord(char)).linearHoriAdvance / 65536


def _width(text: str, weight: str = "normal") -> float:
    return max(sum(_advance(c, weight) for c in line) for line in text.split("\n"))


def table_pages(table: Table) -> list[Figure]:
    """``table`` drawn as cells, wrapped, split by columns (key columns repeated) and rows to fit the pages.

    Past :data:`MAX_ROWS` rows only the first ones (tables are ranked) and the emphasised ones are drawn; the
    note says so, and the Markdown, LaTeX and CSV files keep every row.
    """
    emphasis = table.emphasis or [False] * len(table.shown)
    keep = [i < MAX_ROWS or e for i, e in enumerate(emphasis)]
    shown = table.shown[keep].astype(str)
    emphasis = [e for e, k in zip(emphasis, keep, strict=True) if k]
    note = table.note
    if len(shown) < len(table.shown):
        note += f" Shown: the first {MAX_ROWS} of {len(table.shown)} rows; summary.md has them all."
    columns = list(shown.columns)
    cells = [[wrap(v, WIDE_COLUMNS.get(c, COLUMN_CAP)) for v in shown[c]] for c in columns]
    longest = [max((len(x) for cell in col for x in cell.split("\n")), default=0) for col in cells]
    headers = [wrap(c, max(12, n, *(len(w) for w in c.split()))) for c, n in zip(columns, longest, strict=True)]
    widths = [
        max(_width(h, "bold"), *(_width(cell) for cell in col)) + 2 * PAD for h, col in zip(headers, cells, strict=True)
    ]
    right = [numeric(shown[c]) for c in columns]
    keys = columns.index("configuration") + 1 if "configuration" in columns else 1
    packed = _pack(widths[keys:], sum(widths[:keys]), (RIGHT - LEFT) * PAGE[0] / PT)
    groups = [list(range(keys)) + [keys + i for i in group] for group in packed]
    note = wrap(note)
    top = BODY_TOP - (note.count("\n") + 1.6) * 12 * PT / PAGE[1]
    row_lines = [max(cells[c][r].count("\n") for c in range(len(columns))) + 1.4 for r in range(len(shown))]
    header_lines = max(h.count("\n") for h in headers) + 1.4
    chunks = _pack(row_lines, header_lines, (top - 0.06) * PAGE[1] / PT / LINE)
    figures = []
    total = len(groups) * len(chunks)
    for group in groups:
        for rows in chunks:
            part = f" ({len(figures) + 1}/{total})" if total > 1 else ""
            fig = page(table.title + part)
            fig.text(LEFT, BODY_TOP, note, fontsize=8.5, color="0.25", va="top")
            grid = [(header_lines, [headers[c] for c in group], "0.85", "bold")]
            for r in rows:
                shade = "#fff3c4" if emphasis[r] else ("0.96" if r % 2 else "white")
                grid.append((row_lines[r], [cells[c][r] for c in group], shade, "normal"))
            _draw_cells(fig, grid, [widths[c] for c in group], [right[c] for c in group], top)
            figures.append(fig)
    return figures


def _draw_cells(
    fig: Figure, grid: list[tuple[float, list[str], str, str]], widths: list[float], align_right: list[bool], top: float
) -> None:
    scale_x, scale_y = PT / PAGE[0], LINE * PT / PAGE[1]
    y = top
    for lines, texts, shade, weight in grid:
        height = lines * scale_y
        x = LEFT
        for text, width, right in zip(texts, widths, align_right, strict=True):
            w = width * scale_x
            fig.add_artist(
                Rectangle(
                    (x, y - height),
                    w,
                    height,
                    transform=fig.transFigure,
                    facecolor=shade,
                    edgecolor="0.75",
                    linewidth=0.4,
                )
            )
            anchor = x + w - PAD * scale_x if right else x + PAD * scale_x
            fig.text(
                anchor,
                y - height / 2,
                text,
                fontsize=FONT,
                va="center_baseline",
                ha="right" if right else "left",
                weight=weight,
                linespacing=1.2,
            )
            x += w
        y -= height
