"""The study runner: one worker's loop of claim (or ask), run, record, tell.

Each step has its own module: the stored study and its reads (:mod:`ablate.storage`), the queue and its claims
(:mod:`._queue`), new configurations of a tuning study (:mod:`._sampling`), heartbeats and stale workers
(:mod:`._workers`), the printed progress (:mod:`._progress`) and what a finished trial leaves behind
(:mod:`._record`). This module holds the error policy: which errors fail one trial, which stop the study, and
how a trial held at Ctrl-C, SIGTERM or an error of the harness itself is marked so that a resume runs it again.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ablate.cache._store import StageCache
from ablate.config._resolve import ConfigError
from ablate.pipeline._loop import Diverged
from ablate.pipeline._trial import run_trial
from ablate.storage import StoredStudy, identity, tell, trial_id
from ablate.study._progress import Progress
from ablate.study._queue import INTERRUPTED, TrialQueue
from ablate.study._record import failure_log, record_result
from ablate.study._sampling import Proposals, sampler_for, suggest
from ablate.study._spec import Study
from ablate.study._workers import heartbeat, interrupt_taken

POLL_EVERY = 2.0


class PrunerError(ConfigError):
    """The pruner watches a value the trials' training does not report (a study-file error: the run stops)."""


@dataclass
class RunOutcome:
    """What one worker did."""

    completed: int = 0
    failed: list[str] = field(default_factory=list)
    interrupted: bool = False


class StudyRunner:
    """Creates or continues the Optuna study of a :class:`Study` and works through its trials.

    Args:
        study: the validated study.
        out: the study folder (default ``reports/<name>``).
        storage: an Optuna storage URL (default SQLite in the study folder).
        cache: the stage cache.
        quiet: log lines only, no progress bars.
        fail_fast: stop at the first failed trial.
        retries: re-run a trial that failed in this run up to this many times.

    Attributes:
        stored: the study as stored (what status and the report read).
    """

    def __init__(
        self,
        study: Study,
        out: str | Path | None = None,
        storage: str | None = None,
        cache: StageCache | None = None,
        quiet: bool = False,
        fail_fast: bool = False,
        retries: int = 0,
    ) -> None:
        self.study = study
        self.stored = StoredStudy(study, out, storage)
        self.cache = cache or StageCache()
        self.quiet = quiet
        self.fail_fast = fail_fast
        self.retries = retries
        self.queue = TrialQueue(self.stored)
        self.progress = Progress(self.stored, quiet)
        self.proposals = Proposals(self.queue, self.progress.log)
        self._failed_here: set[str] = set()  # identities of the pairs that failed in this process

    def open(self, new: bool = False) -> optuna.Study:
        """Open (or create) the study's Optuna study; ``new`` starts a fresh one beside the old (``--new``)."""
        pruner = self.study.pruner.build() if self.study.pruner else optuna.pruners.NopPruner()
        return self.stored.open(new=new, sampler=functools.partial(sampler_for, self.study), pruner=pruner)

    def enqueue_missing(self) -> int:
        """:meth:`TrialQueue.enqueue_missing`."""
        return self.queue.enqueue_missing()

    # --- working -------------------------------------------------------------------------------
    def work(self) -> RunOutcome:
        """Claim and run trials until none are left (or the budget is spent, or fail-fast stops)."""
        outcome = RunOutcome()
        self.progress.open()
        try:
            while (claimed := self._next()) is not None:
                trial, params, seed = claimed
                self._run_one(trial, params, seed, outcome)
                if self.fail_fast and outcome.failed:
                    break
        except BaseException as exc:
            # Ctrl-C, or an error of the harness itself (a full disk, a lost storage), can land anywhere between
            # claiming a trial and telling its result: the claimed trial is marked so that it does not stay RUNNING
            interrupted = isinstance(exc, KeyboardInterrupt)
            if interrupted:
                interrupt_taken()
            reason = f"{INTERRUPTED} (Ctrl-C or SIGTERM)" if interrupted else f"stopped by {type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):  # with the storage itself lost, the stale-trial check recovers it
                held = self.queue.held
                if held is not None and self.stored.storage.get_trial(trial_id(held)).state == TrialState.RUNNING:
                    self._fail(held, f"{reason.splitlines()[0]}; it runs again on resume", None)
            if not interrupted:
                raise
            outcome.interrupted = True
        finally:
            self.progress.close()
        return outcome

    def _next(self) -> tuple[optuna.Trial, dict[str, Any], int] | None:
        """The next trial to run with its parameters and seed: a claimed one, else (tuning) a new proposal; None
        when nothing is left here and no other worker runs a trial it could hand back."""
        while True:
            trial = self.queue.claim()
            if trial is None and self.study.is_tuning and not self.proposals.spent():
                proposed = self.proposals.ask()
                if proposed is None:  # a configuration already run: claim or ask again
                    continue
                return proposed
            if trial is None:
                if self.queue.recover_stale():
                    self.queue.enqueue_missing()
                    continue
                if self.queue.enqueue_interrupted():  # another worker was stopped in its trial: finish it here
                    continue
                if self.stored.trials((TrialState.RUNNING,)):
                    # other workers still run trials: wait, so a worker that dies hands its trial to us
                    time.sleep(POLL_EVERY)
                    continue
                if self.study.race and (self.queue.enqueue_missing(fresh_only=True) or self.queue.waiting()):
                    continue  # a race's round is complete: its next seeds (queued here or by another worker)
                return None
            duplicate = self.queue.duplicate_of(trial, trial.user_attrs["identity"])
            if duplicate is not None:
                self.queue.set_aside(trial, duplicate)
                continue
            return trial, suggest(self.study, trial), trial.user_attrs["seed"]

    def _run_one(self, trial: optuna.Trial, params: dict[str, Any], seed: int, outcome: RunOutcome) -> None:
        self.progress.starting(self.stored.storage.get_trial(trial_id(trial)), params, seed, self._failed_here)
        start = time.time()
        try:
            config = self.study.trial_config(params, seed)
            config["name"] = f"{self.study.name}#{trial.number}"
            with heartbeat(self.stored.storage, trial):
                result = run_trial(config, cache=self.cache, progress=not self.quiet, on_epoch=self._reporter(trial))
        except optuna.TrialPruned as exc:
            tell(self.stored.optuna_study, trial, state=TrialState.PRUNED)
            self.progress.log(f"  pruned trial {trial.number}: {exc}")
            return
        except PrunerError as exc:  # the study file's mistake, not this trial's: every trial would fail alike
            self._fail(trial, str(exc), None)
            raise
        except Diverged as exc:
            self._fail(trial, str(exc), None)
            outcome.failed.append(f"trial {trial.number}: {exc}")
            self._maybe_retry(trial, params, seed)
            return
        except Exception as exc:  # any other error fails this trial only; the study goes on
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self._fail(trial, message, traceback.format_exc())
            outcome.failed.append(f"trial {trial.number}: {message}")
            self._maybe_retry(trial, params, seed)
            return
        runtime = time.time() - start
        self._record(trial, result, runtime)
        values = [result.metrics.get(o.metric, math.nan) for o in self.study.objectives]
        bad = [o.metric for o, v in zip(self.study.objectives, values, strict=True) if not math.isfinite(v)]
        if bad:
            self._fail(trial, f"objective {', '.join(bad)} is undefined (NaN) for this trial", None)
            outcome.failed.append(f"trial {trial.number}: objective {', '.join(bad)} is NaN")
            return
        if self.study.pruner and self._is_primary(trial):  # before it is told: a crash in between re-runs it
            self.queue.enqueue_other_seeds(params)
        tell(self.stored.optuna_study, trial, values)
        outcome.completed += 1
        eta = self.progress.finished(runtime)
        shown = ", ".join(f"{o.metric} {v:.4f}" for o, v in zip(self.study.objectives, values, strict=True))
        trainings = f"{result.trainings} training{'' if result.trainings == 1 else 's'}"
        self.progress.log(f"  done trial {trial.number}: {shown} ({runtime:.0f} s, {trainings}){eta}")

    def _is_primary(self, trial: optuna.Trial) -> bool:
        """Whether ``trial`` runs a tuned configuration's first seed (read from the storage: an asked trial's
        ``user_attrs`` are those it was asked with)."""
        attrs = self.stored.storage.get_trial_user_attrs(trial_id(trial))
        return self.study.is_tuning and bool(attrs.get("primary"))

    def _reporter(self, trial: optuna.Trial) -> Callable[[dict[str, Any]], None] | None:
        """With a pruner: the trial's per-epoch callback, reporting the pruner's loss and stopping the trial when the
        pruner says so (only a configuration's first seed is pruned; its other seeds run once it finished)."""
        spec = self.study.pruner
        if spec is None:
            return None
        prunable = self._is_primary(trial)
        maximize = self.study.objectives[0].direction == "maximize"

        def report(entry: dict[str, Any]) -> None:
            if spec.on not in entry:
                reported = ", ".join(k for k in entry if k not in ("tag", "epoch"))
                raise PrunerError(
                    f"{self.study.path}: pruner.on: '{spec.on}' is not a per-epoch value of trial {trial.number}'s "
                    f"training (it has {reported})"
                )
            trial.report(spec.score(float(entry[spec.on]), maximize), entry["epoch"])
            if prunable and trial.should_prune():
                raise optuna.TrialPruned(f"at epoch {entry['epoch']} ({spec.on} {entry[spec.on]:.4f})")

        return report

    def _record(self, trial: optuna.Trial, result: Any, runtime: float) -> None:
        record_result(self.stored, trial, result, runtime, self.progress.log)

    def _fail(self, trial: optuna.Trial, message: str, trace: str | None) -> None:
        trial.set_user_attr("error", message)
        if trace:
            trial.set_user_attr("log", str(failure_log(self.stored, trial.number, trace)))
        tell(self.stored.optuna_study, trial, state=TrialState.FAIL)
        self.progress.log(f"  FAILED trial {trial.number}: {message}")

    def _maybe_retry(self, trial: optuna.Trial, params: dict[str, Any], seed: int) -> None:
        key = trial.user_attrs["identity"] if "identity" in trial.user_attrs else identity(params, seed)
        self._failed_here.add(key)
        # the attempt travels with the queued retry: another worker that runs and fails it retries no more often
        attempt = trial.user_attrs.get("attempt", 0) + 1
        if attempt <= self.retries:
            self.queue.enqueue(params, seed, trial.user_attrs.get("primary", True), attempt)
