"""Studies that grow: the storage steps of a study holding 100, 1,000 and 10,000 completed trials.

For each size a tuning study (``tune: transfer.lambda``, one seed) gets that many completed trials written
straight into its storage, without training: each with the user attributes a real trial stores (every
metric, 320 per-image IoUs, a 10-epoch history, the resolved config). Then, on that storage, it measures:

- ``claim_record_s``: one more trial through the runner's own path: ask the sampler, check it is no
  duplicate, count its place for the progress line, record its result attributes, tell the objective (what a
  worker adds to every trial; the trial's training and evaluation replaced by a ready result): the median
  of the 5 such trials after the first of the process; ``first_claim_s`` is the first;
- ``resume_scan_s``: what ``ablate run`` does before working on a study it resumes (stale trials, the
  queue of missing configurations); here it is the process's first read of every stored trial into Optuna's
  cache, which each worker pays once when it starts;
- ``open_s``: a worker's start on the study, as a new ``ablate run`` process opens it (find the study by
  name, check its search space, read its trials once for the sampler);
- ``status_s``: ``ablate status`` (every trial as a row), in this process;
- ``report_s``: ``ablate report`` (tables, plots, PDF; the gallery finds no images, as for trials written
  elsewhere, and says so);
- ``queue_s`` and ``queued_claim_s``: a grid of as many configurations (and 5) as ``ablate run`` starts it: the queueing
  of every pair, then the median of 5 trials through the same path with the rest of the grid queued (Optuna
  reads every attribute of every unfinished trial on each read of a study: a progress count of 2,000 queued
  trials took 0.8 s a trial that way).

Each step's growth exponent is the slope of log(seconds) over log(trials), fitted over the sizes: 0 is flat,
1 linear, 2 quadratic. The storage is SQLite (the default of ``ablate run``), or with ``--postgresql URL`` a
PostgreSQL server (each size in a new database ``ablate_scale_<size>`` there, dropped afterwards; the JSON is then
``scale-postgresql-<size>.json``). Goals (issue 16): claim + record under 50 ms and flat, report of 1,000 trials
under 60 s, no step quadratic.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import optuna
from _common import parse_args, print_table, write_result
from pypdf import PdfReader

from ablate import METRICS, TrialResult, load_components
from ablate._report._write import write_report
from ablate.cli import main as ablate_main
from ablate.storage import StoredStudy, config_id, identity, result_attrs
from ablate.study import RunOutcome, StudyRunner, load_study

SIZES = {"tiny": (2, 4), "default": (100, 1000, 10000)}  # tiny: the script runs (tests), two sizes for a slope
# claim + record is the median of this many trials after a worker's first (one alone varies by several ms)
CLAIMS = 5
STEPS = (
    "claim_record_s",
    "first_claim_s",
    "resume_scan_s",
    "open_s",
    "status_s",
    "report_s",
    "queue_s",
    "queued_claim_s",
)
DISTRIBUTION = optuna.distributions.FloatDistribution(0.0, 2.0)


def study_file(folder: Path, size: int) -> Path:
    path = folder / f"scale-{size}.yaml"
    path.write_text(
        f"name: scale-{size}\n"
        "config: {data: {name: synthetic-smoke, image_size: 32, n_train: 8, n_val: 0, n_test: 8}}\n"
        "tune: {transfer.lambda: {low: 0.0, high: 2.0}}\n"
        f"n_trials: {size + 1 + CLAIMS}\n"  # room for the trials the benchmark adds
        "sampler: random\n"
        "objective: smoke_iou\n"
    )
    return path


def fake_result(rng: random.Random, config: dict[str, Any], metrics: list[str]) -> TrialResult:
    """A completed trial's result as the harness records it, with random numbers and no gallery images."""
    return TrialResult(
        metrics={name: rng.random() for name in metrics},
        per_image_iou=[rng.random() for _ in range(320)],
        image_names=[f"test-{i:05d}" for i in range(320)],
        trainings=1,
        timings={"data": 0.02, "train": 30.0, "cams": 0.2, "postprocess": 0.0, "metrics": 0.01},
        marks=[],
        history=[{"tag": "student", "epoch": e, "loss": rng.random(), "lr": 1e-3} for e in range(1, 11)],
        config=config,
        names={"class": "smoke", "object": "chimney"},
        gallery={
            "indices": np.arange(4),
            "images": np.zeros((4, 32, 32, 3), np.uint8),
            "masks": np.zeros((4, 32, 32), bool),
            "cooccur": np.zeros((4, 32, 32), bool),
            "cams": np.zeros((4, 32, 32), np.float16),
            "pred": np.zeros((4, 32, 32), bool),
        },
    )


def fill(runner: StudyRunner, size: int, rng: random.Random, metrics: list[str]) -> None:
    """``size`` completed trials written in bulk, with the user attributes a completed trial's record has."""
    trials = []
    for _ in range(size):
        params = {"transfer.lambda": rng.uniform(0.0, 2.0)}
        config = runner.study.trial_config(params, 0)
        result = fake_result(rng, config, metrics)
        attrs = {
            "seed": 0,
            "params": params,
            "identity": identity(params, 0),
            "config_id": config_id(params),
            "primary": True,
            "worker": "bench",
            **result_attrs(result, 30.0),
        }
        trials.append(
            optuna.trial.create_trial(
                params={"transfer.lambda": params["transfer.lambda"]},
                distributions={"transfer.lambda": DISTRIBUTION},
                value=result.metrics["smoke_iou"],
                user_attrs=attrs,
                intermediate_values={step: h["loss"] for step, h in enumerate(result.history)},
            )
        )
    runner.stored.optuna_study.add_trials(trials)


def claim_and_record(runner: StudyRunner, rng: random.Random, metrics: list[str]) -> float:
    """Seconds of one trial through the worker's own path (claim or ask, then run, record and tell it, with its
    progress lines), the trial's own work (training and evaluation) replaced by a ready result."""

    def ready(config: dict[str, Any], **kwargs: Any) -> TrialResult:
        return fake_result(rng, config, metrics)

    start = time.perf_counter()
    claimed = runner._next()
    assert claimed is not None, "the study should leave one trial"
    with mock.patch("ablate.study._runner.run_trial", ready), contextlib.redirect_stdout(io.StringIO()):
        runner._run_one(*claimed, RunOutcome())
    return time.perf_counter() - start


def measure_queue(folder: Path, size: int, metrics: list[str], storage: str | None) -> dict[str, float]:
    """A grid of ``size`` configurations (at least :data:`CLAIMS` + 1; 10,000 is the most a grid holds) as ``ablate
    run`` starts it: the queueing of every pair (``queue_s``), then :data:`CLAIMS` trials through the worker's path,
    each with at least ``size - CLAIMS`` pairs still queued (``queued_claim_s``, their median)."""
    path = folder / f"grid-{size}.yaml"
    lambdas = ", ".join(f"{2 * i / size:.6f}" for i in range(max(size, CLAIMS + 1)))
    path.write_text(
        f"name: grid-{size}\n"
        "config: {data: {name: synthetic-smoke, image_size: 32, n_train: 8, n_val: 0, n_test: 8}}\n"
        f"grid: {{transfer.lambda: [{lambdas}]}}\n"
    )
    runner = StudyRunner(load_study(path, check_files=False), out=folder / f"grid-out-{size}", storage=storage)
    runner.open()
    rng = random.Random(size)
    row = {"queue_s": timed(runner.enqueue_missing)}
    row["queued_claim_s"] = statistics.median(claim_and_record(runner, rng, metrics) for _ in range(CLAIMS))
    return row


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def growth(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) over log(size)."""
    xs, ys = np.log(sizes), np.log(np.maximum(seconds, 1e-9))
    return float(np.polyfit(xs, ys, 1)[0])


@contextlib.contextmanager
def storage_for(server: str | None, size: int) -> Iterator[str | None]:
    """None (SQLite in the study folder), or the URL of a new database on the PostgreSQL ``server``."""
    if server is None:
        yield None
        return
    import psycopg

    name = f"ablate_scale_{size}"
    plain = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(plain, autocommit=True) as connection:  # FORCE: the runner's connections are still open
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def measure(folder: Path, size: int, metrics: list[str], storage: str | None) -> dict[str, float]:
    rng = random.Random(size)
    path = study_file(folder, size)
    study = load_study(path, check_files=False)
    out = folder / f"out-{size}"
    runner = StudyRunner(study, out=out, storage=storage, quiet=True)
    runner.open()
    start = time.perf_counter()
    fill(runner, size, rng, metrics)
    row = {"trials": size, "fill_s": time.perf_counter() - start}
    row["first_claim_s"] = claim_and_record(runner, rng, metrics)
    row["claim_record_s"] = statistics.median(claim_and_record(runner, rng, metrics) for _ in range(CLAIMS))
    row["resume_scan_s"] = timed(runner.enqueue_missing)
    row["open_s"] = timed(lambda: StudyRunner(load_study(path, check_files=False), out=out, storage=storage).open())
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        where = ["--out", str(out), *(["--storage", storage] if storage else [])]
        row["status_s"] = timed(lambda: ablate_main(["status", str(path), *where]))
    if f"{size + 1 + CLAIMS}/" not in printed.getvalue():  # "N/M (configuration, seed) pairs done ..."
        raise RuntimeError(f"ablate status did not list the study: {printed.getvalue()[-300:]}")
    read_only = StoredStudy(load_study(path, check_files=False, need_plugins=False), out, storage, read_only=True)
    read_only.open(create=False)
    row["report_s"] = timed(lambda: write_report(read_only))
    row["report_pages"] = len(PdfReader(out / "report.pdf").pages)
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--postgresql", metavar="URL", help="a PostgreSQL server (postgresql://user@host:port/db)")

    description = "Storage steps of studies of 100, 1,000 and 10,000 trials."
    args = parse_args(description, {"tiny": 1, "default": 1}, argv, options)
    load_components()
    metrics = METRICS.names()
    sizes = list(SIZES[args.size])
    rows = []
    with tempfile.TemporaryDirectory(prefix="ablate-scale-") as tmp:
        for size in sizes:
            with storage_for(args.postgresql, size) as storage:
                rows.append(measure(Path(tmp), size, metrics, storage))
            with storage_for(args.postgresql, size) as storage:
                rows[-1].update(measure_queue(Path(tmp), size, metrics, storage))
            print(", ".join(f"{k} {v:.3g}" for k, v in rows[-1].items()), flush=True)
    exponents = {step: growth(sizes, [r[step] for r in rows]) for step in STEPS}
    by_size = {r["trials"]: r for r in rows}
    middle = sizes[1]
    summary = {
        "growth_exponent": exponents,
        "claim_record_max_s": max(r["claim_record_s"] for r in rows),
        "queued_claim_record_max_s": max(r["queued_claim_s"] for r in rows),
        f"report_{middle}_s": by_size[middle]["report_s"],
        "quadratic": [step for step, e in exponents.items() if e > 1.5],
    }
    print_table(
        ["trials", "fill s", "claim + record s", "first claim s", "resume scan s", "open s", "status s", "report s"]
        + ["grid: queue s", "grid: claim + record, queued s"],
        [[r["trials"], r["fill_s"], *(r[s] for s in STEPS)] for r in rows]
        + [["growth exponent", "-", *(exponents[s] for s in STEPS)]],
    )
    kind = "postgresql" if args.postgresql else "sqlite"
    name = "scale" if kind == "sqlite" else "scale-postgresql"
    write_result(name, args, {"storage": kind, "rows": rows, "summary": summary})
    return summary


if __name__ == "__main__":
    main()
