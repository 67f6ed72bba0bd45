"""Whole reports for each study shape: files, PDF pages (by their text), the partial mark."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState
from pypdf import PdfReader

from ablate._report import write_report
from ablate._report._model import prepare
from ablate._results import trials_frame
from ablate.study import Distribution

GRID = {"transfer.lambda": [0.5, 1.0], "transfer.level": ["global", "channel"]}
TITLES = (
    "Configurations ranked by smoke_iou",
    "Difference from the baseline",
    "Marginal: transfer.level",
    "λ sweep (paper layout)",
    "Heat map",
    "Per-image IoU",
    "Critical-difference diagram",
    "Ranks over seeds (Friedman)",
    "Qualitative gallery",
    "Parameter importance",
)


def _pages(path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


def _count(pages: list[str], text: str) -> int:
    return sum(text in page for page in pages)


@pytest.fixture(scope="module")
def grid_report(synthetic, tmp_path_factory):
    """2 x 2 grid x 3 seeds with one failed trial: a partial report."""
    folder = tmp_path_factory.mktemp("grid")
    specs = synthetic.grid(GRID, 3, lambda p: 0.2 + 0.2 * p["transfer.lambda"], np.random.default_rng(0))
    specs[1] = synthetic.Spec(specs[1].params, 1, state=TrialState.FAIL, error="Diverged: loss is NaN at epoch 3")
    study = synthetic.study(folder, GRID, seeds=3, baseline={"transfer.lambda": 1.0})
    stored = synthetic.stored(study, specs, folder)
    return stored, write_report(stored), specs


def test_grid_report_files(grid_report):
    stored, path, specs = grid_report
    assert path == stored.folder / "report.pdf"
    trials = pd.read_csv(stored.folder / "trials.csv")
    assert len(trials) == len(specs) and "per_image_iou" not in trials
    summary = pd.read_csv(stored.folder / "summary.csv")
    assert len(summary) == 4 and {"smoke_iou.mean", "smoke_iou.ci_low", "smoke_iou.n", "rank"} <= set(summary)
    tables = {p.stem for p in (stored.folder / "tables").glob("*.csv")}
    expected = {"summary", "metrics", "baseline", "friedman", "marginal-lambda", "marginal-level", "paper-lambda"}
    expected |= {"paper-transfer", "decisions", "baseline-images"}
    assert tables == expected | {"failures"}
    assert (stored.folder / "summary.md").read_text().split("\n## ")[1].startswith("Decisions over seeds")
    figures = {p.stem for p in (stored.folder / "figures").glob("*.png")}
    assert {
        "configurations",
        "axis-lambda",
        "axis-level",
        "heatmap-lambda-level",
        "per-image-iou",
        "critical-difference",
        "gallery",
    } <= figures
    assert (stored.folder / "summary.tex").read_text().count(r"\begin{tabular}") == len(tables)


def test_grid_report_pages(grid_report):
    pages = _pages(grid_report[1])
    assert "Study report: synthetic" in pages[0] and "ablate 0.1.0" in pages[0] and "optuna" in pages[0]
    assert "Study file: study.yaml" in pages[1] and "transfer.lambda" in pages[1]
    for title in TITLES:
        assert _count(pages, title) >= 1, title
    assert "Failed and unfinished trials" in pages[-1] and "Diverged: loss is NaN at epoch 3" in pages[-1]


def test_partial_mark(grid_report):
    stored, path, _ = grid_report
    pages = _pages(path)
    assert "PARTIAL: 11 of 12 trials completed (1 failed, 0 not run)" in pages[0]
    assert _count(pages, "PARTIAL RESULTS") == len(pages)  # on every page
    assert (stored.folder / "summary.md").read_text().startswith("# Report of study 'synthetic'\n\n**PARTIAL")


def test_complete_and_missing_trials(synthetic, tmp_path):
    grid = {"transfer.lambda": [0.5, 1.0]}
    specs = synthetic.grid(grid, 2, lambda p: 0.4, np.random.default_rng(0))
    study = synthetic.study(tmp_path, grid, seeds=2)
    pages = _pages(write_report(synthetic.stored(study, specs, tmp_path)))
    assert "4 of 4 trials completed" in pages[0] and _count(pages, "PARTIAL") == 0
    assert "No trial failed" in pages[-1]
    missing = prepare(trials_frame(synthetic.stored(study, specs[:3], tmp_path, artifacts=False)), study, tmp_path)
    assert missing.status.describe() == "PARTIAL: 3 of 4 trials completed (0 failed, 1 not run)"


def test_only_failed_trials(synthetic, tmp_path):
    grid = {"transfer.lambda": [0.5, 1.0]}
    specs = [
        synthetic.Spec(
            {"transfer.lambda": lam}, seed, state=TrialState.FAIL, error=f"ValueError: bad {lam}/{seed} in $HOME/$x_1"
        )
        for lam in (0.5, 1.0)
        for seed in range(2)
    ]
    study = synthetic.study(tmp_path, grid, seeds=2, baseline={"transfer.lambda": 1.0})
    pages = _pages(write_report(synthetic.stored(study, specs, tmp_path)))
    assert "PARTIAL: 0 of 4 trials completed (4 failed, 0 not run)" in pages[0]
    assert "no trial completed" in pages[0]
    assert all(f"ValueError: bad {lam}/{seed} in $HOME/$x_1" in pages[-1] for lam in (0.5, 1.0) for seed in range(2))
    assert not list((tmp_path / "figures").glob("*.png"))


def test_no_trials_at_all(synthetic, tmp_path):
    study = synthetic.study(tmp_path, {"transfer.lambda": [0.5, 1.0]}, seeds=2)
    pages = _pages(write_report(synthetic.stored(study, [], tmp_path)))
    assert "PARTIAL: 0 of 4 trials completed (0 failed, 4 not run)" in pages[0] and "no trials are stored" in pages[0]


def test_one_configuration(synthetic, tmp_path):
    rng = np.random.default_rng(0)
    specs = [
        synthetic.Spec({}, seed, metrics=(m := synthetic.metrics(rng, 0.4))[0], per_image=m[1]) for seed in range(3)
    ]
    study = synthetic.study(tmp_path, None, seeds=3)
    pages = _pages(write_report(synthetic.stored(study, specs, tmp_path)))
    assert _count(pages, "base config") >= 2 and _count(pages, "Qualitative gallery") == 1
    assert _count(pages, "Marginal") == 0 and _count(pages, "Heat map") == 0
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["smoke_iou.mean"].iloc[0] == pytest.approx(np.mean([s.metrics["smoke_iou"] for s in specs]))


def test_tuning_study_with_200_trials(synthetic, tmp_path):
    rng = np.random.default_rng(0)
    tune = [Distribution("transfer.lambda", "float", 0.1, 2.0), Distribution("train.lr", "float", 1e-4, 1e-2, log=True)]
    specs = []
    for _ in range(200):
        params = {"transfer.lambda": float(rng.uniform(0.1, 2.0)), "train.lr": float(10 ** rng.uniform(-4, -2))}
        metrics, per_image = synthetic.metrics(rng, 0.5 - 0.2 * abs(params["transfer.lambda"] - 1))
        specs.append(synthetic.Spec(params, 0, metrics=metrics, per_image=per_image))
    study = synthetic.study(tmp_path, None, seeds=1, tune=tune, n_trials=200)
    pages = _pages(write_report(synthetic.stored(study, specs, tmp_path, artifacts=False)))
    assert "200 of 200 trials completed" in pages[0]
    for title in ("Optimisation history", "Parameter importance", "Metrics against transfer.lambda"):
        assert _count(pages, title) == 1, title
    assert _count(pages, "Shown: the first 60 of 200 rows") >= 1  # long tables are cut in the PDF only
    assert len(pd.read_csv(tmp_path / "summary.csv")) == 200


def test_union_grid_axes_get_no_heat_map(synthetic, tmp_path):
    """The lambda study's shape: lambda in one grid, the paradigm in another; the two are never crossed."""
    import dataclasses

    from ablate._report._plots import heatmap_figures

    teacher, student = {"name": "single", "network": "teacher"}, {"name": "single", "network": "student"}
    grid = [{"transfer.lambda": [0.5, 1.0]}, {"paradigm": [teacher, student]}]
    study = dataclasses.replace(synthetic.study(tmp_path, None, seeds=2, baseline={"paradigm": student}), grid=grid)
    params = [{"transfer.lambda": 0.5}, {"transfer.lambda": 1.0}, {"paradigm": teacher}, {"paradigm": student}]
    specs = [synthetic.Spec(p, seed, metrics={"smoke_iou": 0.1 * seed + 0.2}) for p in params for seed in range(2)]
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    assert len(data.axes) == 2 and heatmap_figures(data) == []


def test_captions_and_gallery_rows_name_what_the_dataset_names(synthetic, tmp_path):
    """Another data set, another co-occurring object: nothing in the figures speaks of smoke or chimneys."""
    from ablate._report._analysis import configurations
    from ablate._report._gallery import gallery_figure
    from ablate._report._plots import per_image_figure

    grid = {"transfer.lambda": [0.5, 1.0]}
    specs = synthetic.grid(grid, 2, lambda p: 0.2 + 0.2 * p["transfer.lambda"], np.random.default_rng(0))
    study = synthetic.study(tmp_path, grid, seeds=2)
    stored = synthetic.stored(study, specs, tmp_path, names={"class": "boat", "object": "water"})
    data = prepare(trials_frame(stored), study, tmp_path)
    summary = configurations(data)
    gallery = gallery_figure(data, summary).figure
    texts = [t.get_text() for t in gallery.texts] + [t.get_text() for ax in gallery.axes for t in ax.get_yticklabels()]
    assert any("Ground truth: boat outlined green, water dashed cyan" in t for t in texts)
    assert {"boat + water", "boat", "water", "clean"} <= {t.split("\n")[0] for t in texts}
    assert not any("smoke" in t.lower() or "chimney" in t.lower() for t in texts)
    per_image = per_image_figure(data, summary).figure
    assert any(t.get_text().startswith("Boat IoU of every test image with boat") for t in per_image.texts)


def test_a_report_without_the_trials_artifacts_says_the_gallery_is_missing(synthetic, tmp_path):
    from ablate._report._analysis import configurations
    from ablate._report._gallery import gallery_figure

    grid = {"transfer.lambda": [0.5, 1.0]}
    specs = synthetic.grid(grid, 2, lambda p: 0.2 + 0.2 * p["transfer.lambda"], np.random.default_rng(0))
    study = synthetic.study(tmp_path, grid, seeds=2)
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    plot = gallery_figure(data, configurations(data))
    caption = " ".join(t.get_text() for t in plot.figure.texts).replace("\n", " ")
    assert plot.name == "gallery" and "Not shown: none of the completed trials' gallery files" in caption
    assert "run `ablate report` where the trials ran" in caption


def test_union_grids_marginals_leave_out_other_grids_and_a_report_without_any_is_written(synthetic, tmp_path):
    from ablate._report._analysis import marginal

    rng = np.random.default_rng(0)
    # the projection study: conv and MLP at the base alignment, no projection only with the class-map alignment
    grid = [{"transfer.projection": ["conv", "mlp"]}, {"transfer.projection": ["none"], "student.align": ["class_map"]}]
    study = dataclasses.replace(synthetic.study(tmp_path, None, seeds=2), grid=grid)
    params = [{"transfer.projection": p} for p in ("conv", "mlp")]
    params += [{"transfer.projection": "none", "student.align": "class_map"}]
    specs = []
    for p in params:
        for seed in range(2):
            metrics, per_image = synthetic.metrics(rng, 0.3)
            specs.append(synthetic.Spec(p, seed, metrics=metrics, per_image=per_image))
    stored = synthetic.stored(study, specs, tmp_path, artifacts=False)
    data = prepare(trials_frame(stored), study, tmp_path)
    align, projection = (next(a for a in data.axes if a.path == p) for p in ("student.align", "transfer.projection"))
    # "(base)" pooled conv and MLP as an alignment; no alignment was run with every projection
    assert marginal(data, align)["align"].tolist() == ["class_map"] and marginal(data, projection).empty
    pages = _pages(write_report(stored))  # the empty marginal crashed the PDF: exit 2 after every trial ran
    assert _count(pages, "Marginal:") == 0 and _count(pages, "Failed trials") == 1


def test_a_report_that_fails_half_way_leaves_the_previous_one_as_it_was(grid_report, monkeypatch):
    import ablate._report._write

    stored, path, _ = grid_report
    before = {f: f.read_bytes() for f in stored.folder.rglob("*") if f.is_file() and f.suffix != ".db"}

    def fail(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(ablate._report._write, "_write_pdf", fail)  # tables and figures are written by then
    with pytest.raises(RuntimeError, match="the disk is full"):
        write_report(stored)
    after = {f: f.read_bytes() for f in stored.folder.rglob("*") if f.is_file() and f.suffix != ".db"}
    assert after == before  # no file replaced, none half-written, no staging folder left behind


def test_processes_finishing_one_study_together_write_one_complete_report_in_turn(grid_report, tmp_path):
    """Workers or array tasks that finish a study at once each write its report: they take turns, so no reader sees
    a file of one report beside a half-written file of the other."""
    import multiprocessing
    import os

    import ablate._report._write

    stored, path, _ = grid_report
    inside = tmp_path / "inside"  # exists while a writer is in write(): a second one creating it meets it
    write = ablate._report._write.write

    def alone(*args, **kwargs):
        try:
            os.close(os.open(inside, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            os._exit(3)  # two writers at once
        try:
            return write(*args, **kwargs)
        finally:
            inside.unlink()

    ablate._report._write.write = alone
    try:
        context = multiprocessing.get_context("fork")  # the children share the stored stand-in
        writers = [context.Process(target=write_report, args=(stored,)) for _ in range(2)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(120)
    finally:
        ablate._report._write.write = write
    assert [w.exitcode for w in writers] == [0, 0]
    assert _count(_pages(path), "Decisions over seeds") >= 1
    assert not list(stored.folder.glob(".report-*"))
