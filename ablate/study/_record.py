"""What a finished trial leaves behind: its stored record, its experiment-tracker runs, its gallery, its traceback."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from ablate._registries import LOGGERS
from ablate.storage import StoredStudy, record_trial, result_attrs, trial_id


def record_result(
    stored: StoredStudy, trial: optuna.Trial, result: Any, runtime: float, log: Callable[[str], None]
) -> None:
    """Store a completed trial's :class:`~ablate.TrialResult` (one transaction), hand it to the study's loggers
    and write its gallery (``artifacts/<stem>.npz``, written whole or not at all)."""
    study = stored.study
    # Optuna keeps intermediate values (the curve the dashboard draws) of single-objective studies only; with a
    # pruner they are the reported per-epoch losses already
    single = len(study.objectives) == 1 and not study.pruner
    curve = [epoch["loss"] for epoch in result.history] if single else []
    record_trial(stored.storage, trial_id(trial), result_attrs(result, runtime), curve)
    stem = stored.trial_stem(trial.number)
    for spec in study.loggers:
        try:
            LOGGERS.build(spec, folder=stored.folder).log(stem, result.config, result.history, result.metrics)
        except Exception as exc:  # a tracker that is down costs its record, never the trial
            log(f"  logger {spec['name']} could not write trial {trial.number}: {type(exc).__name__}: {exc}")
    artifacts = stored.folder / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(artifacts / f".{stem}.npz", names=np.array(result.image_names), **result.gallery)
    os.replace(artifacts / f".{stem}.npz", artifacts / f"{stem}.npz")


def failure_log(stored: StoredStudy, number: int, trace: str) -> Path:
    """Write the traceback of trial ``number``'s unexpected error to ``logs/<stem>.log``; returns its path."""
    logs = stored.folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{stored.trial_stem(number)}.log"
    path.write_text(trace)
    return path
