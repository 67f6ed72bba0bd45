"""Writing a study's report from its stored trials and cached artifacts (nothing is trained).

Files under the study folder: ``trials.csv``; ``summary.csv`` (every statistic per configuration);
``summary.md`` and ``summary.tex`` (every table); ``tables/<table>.csv``; ``figures/<figure>.png``;
``report.pdf``. ``tables/`` and ``figures/`` are rewritten as a whole each time.
"""

from __future__ import annotations

import datetime
import json
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


def write_report(stored: StoredStudy) -> Path:
    """Write the report of an opened :class:`~ablate.storage.StoredStudy`; returns the path of ``report.pdf``."""
    return write(trials_frame(stored), stored.study, stored.folder, stored.optuna_study)


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
    frame.drop(columns=list(PER_IMAGE_COLUMNS), errors="ignore").to_csv(folder / "trials.csv", index=False)
    data = prepare(frame, study, folder)
    summary = configurations(data) if not data.scored.empty else pd.DataFrame()
    decided = decisions(data, summary) if not summary.empty else pd.DataFrame()
    tables = ([decisions_table(data, decided)] if not decided.empty else []) + build_tables(data, summary)
    failures = failures_table(data) if not data.status.failures.empty else None
    _write_tables(data, summary, tables, failures)
    path = folder / "report.pdf"
    with matplotlib.rc_context(STYLE):
        plots = build_plots(data, summary, optuna_study) if not summary.empty else []
        race = race_figure(data, decided)
        plots = ([race] if race is not None else []) + plots
        figures = _clear(folder / "figures", "*.png")
        for plot in plots:
            plot.figure.savefig(figures / f"{plot.name}.png")
            plot.figure.set_layout_engine("none")  # keep the layout just computed instead of redoing it for the PDF
        _write_pdf(path, data, tables, plots, failures)
    return path


def _clear(directory: Path, pattern: str) -> Path:
    """``directory``, emptied of the report's own files from an earlier run."""
    directory.mkdir(exist_ok=True)
    for old in directory.glob(pattern):
        old.unlink()
    return directory


def _write_tables(data: ReportData, summary: pd.DataFrame, tables: list[Table], failures: Table | None) -> None:
    folder = data.folder
    summary.drop(columns="config_id", errors="ignore").to_csv(folder / "summary.csv", index=False)
    directory = _clear(folder / "tables", "*.csv")
    everything = tables + ([failures] if failures else [])
    for table in everything:
        table.data.to_csv(directory / f"{table.name}.csv", index=False)
    status = data.status.describe()
    head = f"# Report of study '{data.study.name}'\n\n{'**' + status + '**' if data.status.partial else status}\n\n"
    (folder / "summary.md").write_text(head + "\n".join(to_markdown(t) for t in everything))
    tex = f"% Report of study '{data.study.name}': {status}\n% Needs \\usepackage{{booktabs}}.\n\n"
    (folder / "summary.tex").write_text(tex + "\n".join(to_latex(t) for t in everything))


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
