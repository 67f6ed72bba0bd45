"""Writing a study's report from its stored trials and cached artifacts (nothing is trained).

Files under the study folder: ``trials.csv``; ``summary.csv`` (every statistic per configuration);
``summary.md`` and ``summary.tex`` (every table); ``tables/<table>.csv``; ``figures/<figure>.png``;
``report.pdf``. ``tables/`` and ``figures/`` are rewritten as a whole each time.

Every file is written into a staging folder first and renamed into place once the whole report is written, so a
reader never sees a half-written file and a report that fails half-way leaves the previous one as it was. Writers
of one study folder take turns (a lock on ``.report.lock``): processes that finish one study together (workers,
array tasks) each write a complete report in turn, each from the trials stored when its turn came.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import matplotlib
import optuna
import pandas as pd

import ablate
from ablate._report._analysis import configurations
from ablate._report._decisions import decisions, decisions_table, race_figure
from ablate._report._format import Table, to_latex, to_markdown
from ablate._report._model import ReportData, prepare
from ablate._report._pdf import STYLE, document, table_pages, text_pages, title_page
from ablate._report._plots import Plot, build_plots
from ablate._report._tables import build_tables, failures_table
from ablate._results import PER_IMAGE_COLUMNS, trials_frame
from ablate.storage import StoredStudy
from ablate.study import Study

#: The report's folders and its files in them, rewritten as a whole each time (other files there are left alone).
REWRITTEN = {"tables": "*.csv", "figures": "*.png"}


def write_report(stored: StoredStudy) -> Path:
    """Write the report of an opened :class:`~ablate.storage.StoredStudy`; returns the path of ``report.pdf``."""
    with report_lock(stored.folder):  # the trials are read in turn too: a later turn never writes older ones
        return write(trials_frame(stored), stored.study, stored.folder, stored.optuna_study)


@contextlib.contextmanager
def report_lock(folder: Path) -> Iterator[None]:
    """Hold the study folder's report lock (other processes writing its report wait)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".report.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write(frame: pd.DataFrame, study: Study, folder: Path, optuna_study: optuna.Study | None = None) -> Path:
    """Write the report of ``study`` from its trial table.

    Args:
        frame: :func:`ablate._results.trials_frame` of the study (may be empty).
        study: the study.
        folder: the study folder; artifacts are read from ``folder/artifacts``.
        optuna_study: the study's Optuna study, for parameter importance (left out without it).

    Returns:
        The path of ``report.pdf``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".report-", dir=folder) as staging:
        out = Path(staging)
        frame.drop(columns=list(PER_IMAGE_COLUMNS), errors="ignore").to_csv(out / "trials.csv", index=False)
        data = prepare(frame, study, folder)
        summary = configurations(data) if not data.scored.empty else pd.DataFrame()
        decided = decisions(data, summary) if not summary.empty else pd.DataFrame()
        tables = ([decisions_table(data, decided)] if not decided.empty else []) + build_tables(data, summary)
        failures = failures_table(data) if not data.status.failures.empty else None
        _write_tables(out, data, summary, tables, failures)
        with matplotlib.rc_context(STYLE):
            plots = build_plots(data, summary, optuna_study) if not summary.empty else []
            race = race_figure(data, decided)
            plots = ([race] if race is not None else []) + plots
            (out / "figures").mkdir()
            for plot in plots:
                plot.figure.savefig(out / "figures" / f"{plot.name}.png")
                plot.figure.set_layout_engine("none")  # keep the layout just computed instead of redoing it
            _write_pdf(out / "report.pdf", data, tables, plots, failures)
        _publish(out, folder)
    return folder / "report.pdf"


def _publish(staging: Path, folder: Path) -> None:
    """Rename every file of ``staging`` into ``folder`` (each rename is atomic), the PDF last: once it is new, so is
    every other file. Then drop the files an earlier report left in ``tables/`` and ``figures/``."""
    new = {file.relative_to(staging) for file in staging.rglob("*") if file.is_file()}
    for directory in REWRITTEN:
        (folder / directory).mkdir(exist_ok=True)
    for name in sorted(new, key=lambda name: name.name == "report.pdf"):
        os.replace(staging / name, folder / name)
    for directory, pattern in REWRITTEN.items():
        for old in (folder / directory).glob(pattern):
            if old.relative_to(folder) not in new:
                old.unlink()


def _write_tables(
    out: Path, data: ReportData, summary: pd.DataFrame, tables: list[Table], failures: Table | None
) -> None:
    summary.drop(columns="config_id", errors="ignore").to_csv(out / "summary.csv", index=False)
    directory = out / "tables"
    directory.mkdir()
    everything = tables + ([failures] if failures else [])
    for table in everything:
        table.data.to_csv(directory / f"{table.name}.csv", index=False)
    status = data.status.describe()
    head = f"# Report of study '{data.study.name}'\n\n{'**' + status + '**' if data.status.partial else status}\n\n"
    (out / "summary.md").write_text(head + "\n".join(to_markdown(t) for t in everything))
    tex = f"% Report of study '{data.study.name}': {status}\n% Needs \\usepackage{{booktabs}}.\n\n"
    (out / "summary.tex").write_text(tex + "\n".join(to_latex(t) for t in everything))


def _versions() -> str:
    return ", ".join(f"{name} {metadata.version(name)}" for name in ("torch", "timm", "optuna"))


def _device(frame: pd.DataFrame) -> str:
    """The devices the trials recorded, else this machine's (the one writing the report)."""
    recorded = sorted(set(frame["device"].dropna())) if "device" in frame else []
    if recorded:
        return ", ".join(recorded)
    import torch

    current = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{current} (the machine writing this report; the trials did not record theirs)"


def _write_pdf(path: Path, data: ReportData, tables: list[Table], plots: list[Plot], failures: Table | None) -> None:
    study, status = data.study, data.status
    facts = [
        ("Trials", status.describe()),
        ("Search", study.describe()),
        ("Baseline", json.dumps(study.baseline) if study.baseline else "none set"),
        ("Study file", str(study.path)),
        ("Study folder", str(data.folder)),
        ("Written", datetime.datetime.now().strftime("%Y-%m-%d %H:%M")),
        ("Code version", f"ablate {ablate.__version__}"),
        ("Libraries", _versions()),
        ("Device", _device(data.frame)),
    ]
    if data.scored.empty:
        facts.append(("Results", "no trials are stored yet: nothing to tabulate or plot"))
    elif not data.metrics:
        facts.append(("Results", "no trial completed: there are no metrics to tabulate or plot"))
    title = f"Study report: {study.name}"
    study_text = study.path.read_text() if study.path.is_file() else f"({study.path} cannot be read)"
    with document(path, title, f"ablate report · {study.name}", status.partial) as pdf:
        pdf.add(title_page(title, study.description, facts, status.describe(), status.partial))
        for fig in text_pages(f"Study file: {study.path.name}", study_text):
            pdf.add(fig)
        for table in tables:
            for fig in table_pages(table):
                pdf.add(fig)
        for plot in plots:
            pdf.add(plot.figure)
        if failures is None:
            pdf.add(text_pages("Failed trials", "No trial failed or is unfinished.")[0])
        else:
            for fig in table_pages(failures):
                pdf.add(fig)
