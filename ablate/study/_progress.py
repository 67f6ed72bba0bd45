"""Progress of a running study: the ``[k/N] trial ...`` lines, the ETA and, in a terminal, the study's bar."""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial
from tqdm.auto import tqdm

from ablate.storage import StoredStudy, identity


class Progress:
    """What one worker prints about the study it works on.

    Args:
        stored: the opened study.
        quiet: log lines only, no bar.
    """

    def __init__(self, stored: StoredStudy, quiet: bool = False) -> None:
        self.stored = stored
        self.quiet = quiet
        self._runtimes: list[float] = []
        self._bar: tqdm | None = None  # the study's bar (trials done, ETA) in a terminal, above the epoch bars

    def open(self) -> None:
        """In a terminal (not --quiet): one bar of the study's (configuration, seed) pairs done, with tqdm's ETA;
        the trainer's per-epoch bars open below it."""
        if self.quiet or not sys.stderr.isatty():
            return
        done, total = self.stored.progress()
        self._bar = tqdm(total=total, initial=done, desc=f"study {self.stored.study.name}", unit="trial", disable=False)

    def close(self) -> None:
        if self._bar is not None:
            self._show(*self.stored.progress())
            self._bar.close()
            self._bar = None

    def log(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message)  # clears the bars, prints the line, draws them again below it
        else:
            print(message, flush=True)

    def starting(self, trial: FrozenTrial, params: dict[str, Any], seed: int, failed_here: set[str]) -> None:
        """The line of a trial that starts: its place among the pairs settled, those started before it in any
        process, and those this process failed (``failed_here``). Parallel workers count different places, a pair
        queued again by a resume counts when it runs, and a retry of this run does not move the count back."""
        done, pruned, failed, running = self.stored.settled(before=trial)
        total = self.stored.expected(len(pruned))
        self._show(len(done | pruned), total)
        position = len((done | pruned | failed | running | failed_here) - {identity(params, seed)}) + 1
        label = ", ".join(f"{k}={v}" for k, v in params.items()) or "base config"
        self.log(f"[{position}/{total or '?'}] trial {trial.number}: {label}, seed {seed}")

    def finished(self, runtime: float) -> str:
        """Count a completed trial's ``runtime``; the ETA of the rest (``, ETA 3.2 min``), or nothing."""
        self._runtimes.append(runtime)
        done, total = self.stored.progress()
        if total is None:
            return ""
        workers = max(1, int(os.environ.get("ABLATE_WORKERS", "1")))
        seconds = (total - done) * float(np.mean(self._runtimes)) / workers
        return f", ETA {seconds / 60:.1f} min"

    def _show(self, done: int, total: int | None) -> None:
        """Move the study bar to ``done`` of ``total`` (a pruned configuration lowers the total)."""
        if self._bar is not None:
            self._bar.total = total
            self._bar.update(done - self._bar.n)
