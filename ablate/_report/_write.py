"""Placeholder until the full report lands: writes trials.csv only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate._results import trials_frame


def write_report(runner: Any) -> Path:
    runner.folder.mkdir(parents=True, exist_ok=True)
    path = runner.folder / "trials.csv"
    trials_frame(runner).to_csv(path, index=False)
    return path
