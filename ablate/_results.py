"""The stored trials of a study as a table (shared by ``ablate status`` and the report)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from ablate.storage import METRIC_PREFIX, StoredStudy
from ablate.study import Study, load_study, stale_reason

#: The per-image IoU lists of the trials table: long, so left out of CSV files and printed tables.
PER_IMAGE_COLUMNS = ("per_image_iou", "seg_per_image_iou")


def strict_json(value: Any) -> str:
    """``value`` as strict JSON (RFC 8259, which has no NaN or Infinity literal: they become null, so that any
    parser reads a trial's undefined metrics), indented; other objects as their ``str``."""

    def finite(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: finite(v) for key, v in item.items()}
        if isinstance(item, list | tuple):
            return [finite(v) for v in item]
        return item

    return json.dumps(finite(value), indent=1, default=str, allow_nan=False)


def _label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, dict | list) else v}" for k, v in params.items()) or "base"


def trials_frame(stored: StoredStudy) -> pd.DataFrame:
    """One row per trial (duplicates left out): identity, configuration values, seed, state, metrics, runtime, error.

    Columns: ``number``, ``state``, ``identity``, ``config_id``, ``configuration`` (a readable label),
    one column per searched dotted path, ``seed``, ``metric.<name>`` per metric, ``runtime``,
    ``trainings``, ``oracle``, ``marks`` (a tuple of ``oracle``, ``random weights``), ``error``, ``baseline``,
    ``segment_masks`` (what a stage-3 segmenter learns from: ``pseudo``, ``ground_truth``, None without one),
    ``per_image_iou`` and ``seg_per_image_iou`` (lists: the pseudo-masks' and the stage-3 segmenter's IoU per test
    image), ``gallery`` (where a completed trial's gallery
    images are, relative to the study folder).
    """
    rows = []
    paths: list[str] = []
    supervision: dict[str, str | None] = {}  # per configuration
    for trial in stored.trials():
        attrs = trial.user_attrs
        params = attrs.get("params", {})
        config_id = attrs.get("config_id", "")
        if config_id not in supervision:
            supervision[config_id] = stored.study.supervision(params)
        paths += [p for p in params if p not in paths]
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "identity": attrs.get("identity", ""),
            "config_id": config_id,
            "configuration": _label(params),
            "seed": attrs.get("seed"),
            **{p: json.dumps(v) if isinstance(v, dict | list) else v for p, v in params.items()},
            **{f"{METRIC_PREFIX}{k}": (math.nan if v is None else v) for k, v in attrs.get("metrics", {}).items()},
            "runtime": attrs.get("runtime", math.nan),
            "trainings": attrs.get("trainings", math.nan),
            "oracle": bool(attrs.get("oracle", False)),
            # trials stored before marks were: their one mark was the oracle flag
            "marks": tuple(attrs.get("marks", ["oracle"] if attrs.get("oracle") else [])),
            "device": attrs.get("device"),
            "names": attrs.get("names"),
            "error": _unfinished_reason(trial),
            "baseline": stored.study.is_baseline(params),
            "segment_masks": supervision[config_id],
            "per_image_iou": attrs.get("per_image_iou"),
            "seg_per_image_iou": attrs.get("seg_per_image_iou"),
            "gallery": f"artifacts/{stored.trial_stem(trial.number)}.npz"
            if trial.state == TrialState.COMPLETE
            else None,
        }
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    front = ["number", "state", "configuration", *paths, "seed"]
    return frame[front + [c for c in frame.columns if c not in front]]


def _unfinished_reason(trial: FrozenTrial) -> str:
    """Why ``trial`` did not complete, as far as is known: its stored error, or that its worker is gone."""
    if trial.state == TrialState.RUNNING:
        reason = stale_reason(trial)
        return f"stale: {reason}; the next ablate run runs it again" if reason else ""
    return trial.user_attrs.get("error", "") if trial.state != TrialState.COMPLETE else ""


def load_results(study: str | Path | Study, out: str | Path | None = None, storage: str | None = None) -> pd.DataFrame:
    """The trials table of a stored study, for pandas: one row per trial.

    Columns: ``number``, ``state``, ``configuration``, one per searched dotted path, ``seed``,
    ``metric.<name>`` per metric, ``runtime``, ``trainings``, ``oracle``, ``marks``, ``device``, ``error``,
    ``baseline``, ``identity``, ``config_id``.

    Args:
        study: the study file (or a loaded study).
        out: its study folder, if not ``reports/<name>``.
        storage: its Optuna storage URL, if not the SQLite file in the study folder.

    Raises:
        ConfigError: the study file is invalid, or no such study is stored.
    """
    if not isinstance(study, Study):
        study = load_study(study, check_configs=False, need_plugins=False)
    stored = StoredStudy(study, out=out, storage=storage, read_only=True)  # creates no folder or database
    stored.open(create=False)
    return trials_frame(stored).drop(columns=[*PER_IMAGE_COLUMNS, "names"], errors="ignore")


def latest_per_identity(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (configuration, seed): the completed trial if there is one, else the latest attempt."""
    if frame.empty:
        return frame
    ranked = frame.assign(_done=frame["state"].eq("COMPLETE")).sort_values(["_done", "number"])
    return ranked.groupby("identity", sort=False).tail(1).drop(columns="_done").sort_values("number")
