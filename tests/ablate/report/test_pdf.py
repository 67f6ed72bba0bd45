"""Report pages: long and wide tables split to fit, long text over several pages."""

import pandas as pd
from matplotlib.patches import Rectangle

from ablate._report._format import Table
from ablate._report._pdf import MAX_ROWS, RIGHT, TEXT_LINES, table_pages, text_pages


def _table(rows: int, columns: int, emphasis: list[bool] | None = None) -> Table:
    shown = pd.DataFrame({"configuration": [f"postprocess=CRF(sxy={i}) + SAM" for i in range(rows)]})
    for c in range(columns):
        shown[f"metric_{c}"] = [f"0.{i:04d} ± 0.0123" for i in range(rows)]
    return Table("t", "A table", "A note.", shown, shown, emphasis or [])


def _cells(fig) -> list[Rectangle]:
    return [a for a in fig.artists if isinstance(a, Rectangle)]


def test_long_table_splits_by_rows_and_cuts_past_max_rows():
    pages = table_pages(_table(50, 2))
    assert len(pages) == 2 and all("(1/2)" in t.get_text() for t in pages[0].texts if "A table" in t.get_text())
    drawn = sum(len(_cells(p)) for p in pages) // 3 - len(pages)  # 3 columns, one header row per page
    assert drawn == 50
    emphasis = [i == 99 for i in range(100)]
    pages = table_pages(_table(100, 1, emphasis))
    texts = [t.get_text() for p in pages for t in p.texts]
    assert sum(len(_cells(p)) for p in pages) // 2 - len(pages) == MAX_ROWS + 1  # the emphasised row is kept
    assert any("Shown: the first 60 of 100 rows" in t for t in texts)
    assert "postprocess=CRF(sxy=99) + SAM" in texts


def test_wide_table_splits_by_columns_and_fits_the_page():
    pages = table_pages(_table(5, 14))
    assert len(pages) > 1
    for page in pages:
        assert "postprocess=CRF(sxy=0) + SAM" in [t.get_text() for t in page.texts]  # key column repeated
        assert max(r.get_x() + r.get_width() for r in _cells(page)) <= RIGHT


def test_long_text_goes_over_pages():
    text = "\n".join(f"line {i}: " + "x" * 200 for i in range(TEXT_LINES))  # every line wraps once
    pages = text_pages("Study file", text)
    assert len(pages) == 2
    assert "(1/2)" in pages[0].texts[0].get_text()
