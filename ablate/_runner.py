"""Running a study on Optuna storage: enqueue, claim, run, record (trial path step: storage).

Every (configuration, seed) pair is one Optuna trial with a stable ``identity``. Grid
configurations are enqueued as WAITING trials and claimed by one conditional update
(``state = RUNNING where state = WAITING``, which exactly one process can win on any database),
recording the claiming worker in the same transaction, so parallel workers (processes or machines
sharing a storage URL) never run one trial twice and a lost race is a retry of the next trial; a
claimed trial whose identity already completed or is held by an earlier live claim is marked a
duplicate and skipped. A trial left RUNNING by a killed
worker (dead pid on this host, or no heartbeat for :data:`STALE_AFTER` seconds) is failed and
queued again with the same parameters.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from ablate import __version__ as ablate_version
from ablate._cache import StageCache
from ablate._code import current_hash
from ablate._config import ConfigError
from ablate._registries import LOGGERS
from ablate._storage import (
    METRIC_PREFIX,
    StoredTrial,
    claim_waiting,
    claimed_trial,
    config_id,
    decode,
    encode,
    identity,
    identity_holders,
    masked_url,
    missing_sqlite_file,
    open_storage,
    record_trial,
    study_lock,
    trial_keys_from,
    waiting_trial_ids,
)
from ablate._study import STORED, Objective, Study
from ablate._train import Diverged
from ablate._trial import run_trial

HEARTBEAT_EVERY = 15.0
STALE_AFTER = 120.0
POLL_EVERY = 2.0
# proposals in a row of configurations already run after which a tuning sampler is taken to have no new ones
MAX_REPEATS = 100
# a study another process has just created gets its signature a moment later: wait this long for it
SIGNATURE_WAIT = 30.0
WORKER = f"{socket.gethostname()}:{os.getpid()}"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_folder(study: Study, out: str | Path | None) -> Path:
    return Path(out) if out else Path("reports") / study.name


def trial_stem(study_name: str, optuna_name: str, number: int) -> str:
    """The name of a trial's files in the study folder (gallery, traceback log, tracker run, export):
    ``trial-<n>``, prefixed by the Optuna study's name (``<name>.2-trial-<n>``) in a study started with ``--new``,
    whose trial numbers start at 0 again beside the old study's files."""
    return f"trial-{number}" if optuna_name == study_name else f"{optuna_name}-trial-{number}"


def storage_url(study: Study, out: str | Path | None, storage: str | None, create: bool = True) -> str:
    """The storage URL (default: SQLite in the study folder, which ``create`` makes)."""
    if storage:
        return storage
    folder = study_folder(study, out).resolve()
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder}/study.db"


class _NoStop:
    """A grid or brute-force sampler that leaves the end of a study to the runner.

    Optuna's enumerating samplers call ``Study.stop`` from ``after_trial`` at the end of their space, which only an
    ``optimize`` loop allows (a told trial raised ``RuntimeError``), and the grid sampler reads a grid id there that
    the queued trials of the other seeds do not have (``KeyError``). The runner stops at the study's budget, which
    :attr:`Study.trial_budget` caps at the size of the space.
    """

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        return None


class _GridSampler(_NoStop, optuna.samplers.GridSampler):
    pass


class _BruteForceSampler(_NoStop, optuna.samplers.BruteForceSampler):
    pass


def _sampler(study: Study, seed: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler; ``seed`` is the number of trials already stored, so that a resumed or joining
    process continues the random stream instead of replaying the first samples (reproducible all the same)."""
    if study.sampler in ("grid", "bruteforce"):
        if study.sampler == "bruteforce":
            return _BruteForceSampler(seed=seed)
        space = {d.path: [encode(c) for c in d.choices] or d.values() for d in study.tune}
        return _GridSampler(space, seed=seed)
    return {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    }[study.sampler]()


def _live(worker: str | None) -> bool:
    """False only when ``worker`` ran on this host and its process is gone."""
    if not worker:
        return True
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _started(number: int, start: datetime.datetime | None) -> tuple[float, int]:
    """A key that orders trials by when they started (their number breaks a tie)."""
    return (start.timestamp() if start else math.inf, number)


def stale_reason(trial: FrozenTrial) -> str | None:
    """Why a RUNNING ``trial`` has no live worker (its process is gone from this host, or its heartbeat stopped), or
    None while it may still run. The next ``ablate run`` fails such a trial and queues it again."""
    worker = trial.user_attrs.get("worker")
    now = time.time()
    beat = trial.user_attrs.get("heartbeat", trial.datetime_start.timestamp() if trial.datetime_start else now)
    if not _live(worker):
        return f"worker {worker} stopped"
    if now - beat >= STALE_AFTER:
        return f"no heartbeat from worker {worker} for {now - beat:.0f} s"
    return None


def result_attrs(result: Any, runtime: float) -> dict[str, Any]:
    """The user attributes a completed trial stores: what status, the report and export read back."""
    return {
        "metrics": result.metrics,
        "per_image_iou": result.per_image_iou,
        **({"seg_per_image_iou": result.seg_per_image_iou} if result.seg_per_image_iou is not None else {}),
        "timings": result.timings,
        "trainings": result.trainings,
        "oracle": result.oracle,
        "runtime": runtime,
        "device": result.device,
        "names": result.names,
        "config": result.config,  # resolved: what `ablate export` hands on with the weights
        "checkpoints": result.checkpoints,
        "ablate_version": ablate_version,
        "code": result.code,
        # one attribute per metric and the training curves, which the dashboard sorts, filters and plots
        **{f"{METRIC_PREFIX}{name}": value for name, value in result.metrics.items()},
        "history": result.history,
    }


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
        read_only: only read a stored study (status, report, export): an SQLite file that does not exist is
            refused, not created.
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
        read_only: bool = False,
    ) -> None:
        self.study = study
        self.folder = study_folder(study, out)
        self.url = storage_url(study, out, storage, create=not read_only)
        if read_only and missing_sqlite_file(self.url):  # status / report / export create nothing
            raise self._never_run()
        self.storage = open_storage(self.url)
        self.cache = cache or StageCache()
        self.quiet = quiet
        self.fail_fast = fail_fast
        self.retries = retries
        self.directions = [o.direction for o in study.objectives]
        self._failed_here: set[str] = set()  # identities of the pairs that failed in this process
        self._run_started = time.time()
        self._runtimes: list[float] = []
        self._repeats = 0  # the sampler's latest proposals in a row that had already run
        self._held: optuna.Trial | None = None  # the trial this worker claimed last (Ctrl-C or SIGTERM marks it)
        # the budget count's reading of the stored trials (see _primary_identities): the Optuna study read, the
        # identities of its primary trials, and how many of its trials from the first are final
        self._primaries_of: int | None = None
        self._primaries: set[str] = set()
        self._primaries_read = 0
        self._pairs_of: int | None = None
        self._pairs_read: list[StoredTrial] = []  # by trial number
        self._pairs_final = 0  # the trials before this number are finished: their entries are final
        self._bar: tqdm | None = None  # the study's bar (trials done, ETA) in a terminal, above the epoch bars

    # --- opening ---------------------------------------------------------------------------
    def _names(self) -> list[str]:
        existing = set(optuna.get_all_study_names(self.storage))  # the summaries would read every trial
        names = [self.study.name] + [f"{self.study.name}.{i}" for i in range(2, 1000)]
        return [n for n in names if n in existing]

    def open(self, new: bool = False, create: bool = True) -> optuna.Study:
        """The study's Optuna study: the newest one of its name (``<name>``, ``<name>.2`` ...) with the study file's
        search space, so that a file changed back after ``--new`` finds its own trials again; refuses if none has it.

        Args:
            new: start a fresh Optuna study (``<name>.2``, ``.3`` ...) beside the old ones.
            create: create it when none exists (else raise).
        """
        names = self._names()
        if names and not new:
            for number, name in enumerate(reversed(names)):
                optuna_study = optuna.load_study(
                    study_name=name, storage=self.storage, sampler=_sampler(self.study), pruner=self._pruner()
                )
                self._directions_from(optuna_study)
                # only the newest can be one another process is creating right now: only it waits for its signature
                if self._stored_signature(optuna_study, wait=number == 0) == self.study.signature():
                    break
            else:
                raise self._other_search_space(names[-1], optuna_study.user_attrs.get("study_file"))
            optuna_study.sampler = _sampler(self.study, seed=len(optuna_study.get_trials(deepcopy=False)))
            self.optuna_study = optuna_study
            return optuna_study
        signature = self.study.signature()
        if not create:
            raise self._never_run()
        name = self.study.name if not names else f"{self.study.name}.{len(names) + 1}"
        optuna_study = optuna.create_study(
            study_name=name,
            storage=self.storage,
            directions=self.directions,
            sampler=_sampler(self.study),
            pruner=self._pruner(),
            load_if_exists=True,
        )
        optuna_study.set_user_attr("signature", signature)
        optuna_study.set_user_attr("study_file", str(self.study.path.resolve()))
        self.optuna_study = optuna_study
        return optuna_study

    def _other_search_space(self, name: str, study_file: str | None) -> ConfigError:
        """The refusal to open study ``name``, created from ``study_file`` with another search space."""
        next_name = f"{self.study.name}.{len(self._names()) + 1}"
        new = f"`ablate run {self.study.path} --new` to start study '{next_name}' beside it"
        if study_file and Path(study_file).is_file() and not Path(study_file).samefile(self.study.path):
            return ConfigError(
                f"{self.study.path}: study '{name}' in {masked_url(self.url)} was created from {study_file}, another "
                f"file with `name: {self.study.name}` and another search space; give {self.study.path} a name of its "
                f"own, or run {new}"
            )
        return ConfigError(
            f"{self.study.path}: the search space (config with the harness's defaults, grid, tune, seeds or "
            f"objective) changed since study '{name}' in {masked_url(self.url)} was created; resuming would mix "
            f"results. Run {new} (the old trials are kept)"
        )

    def _never_run(self) -> ConfigError:
        return ConfigError(f"{self.study.path}: no study '{self.study.name}' in {masked_url(self.url)}; run it first")

    def _pruner(self) -> optuna.pruners.BasePruner:
        return self.study.pruner.build() if self.study.pruner else optuna.pruners.NopPruner()

    def _stored_signature(self, optuna_study: optuna.Study, wait: bool = True) -> str | None:
        """The search-space signature stored with ``optuna_study``.

        Creating a study and storing its signature are two writes, so a process that starts together with the
        one creating it can find the study before its signature: it waits for the signature rather than take
        the study for one with another search space (seen with 3 processes started at once on a busy machine).
        """
        deadline = time.monotonic() + (SIGNATURE_WAIT if wait else 0.0)
        while True:
            stored = self.storage.get_study_user_attrs(optuna_study._study_id).get("signature")
            if stored is not None or time.monotonic() >= deadline:
                return stored
            time.sleep(0.1)

    def _directions_from(self, optuna_study: optuna.Study) -> None:
        """Objectives of plugin metrics that could not be imported take the direction the study was created with."""
        stored = [d.name.lower() for d in optuna_study.directions]
        objectives = self.study.objectives
        if any(o.direction == STORED for o in objectives) and len(stored) == len(objectives):
            self.study.objectives = [
                Objective(o.metric, s if o.direction == STORED else o.direction)
                for o, s in zip(objectives, stored, strict=True)
            ]
            self.directions = stored

    # --- queue -------------------------------------------------------------------------------
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return [
            t for t in self.optuna_study.get_trials(deepcopy=False, states=states) if "duplicate_of" not in t.user_attrs
        ]

    def _enqueue(self, params: dict[str, Any], seed: int, primary: bool, attempt: int = 0) -> None:
        """Queue the pair; ``attempt``: how many times it has been retried (stored from the first retry on)."""
        self.optuna_study.enqueue_trial(
            {k: encode(v) for k, v in params.items()},
            user_attrs={
                "seed": seed,
                "params": params,
                "identity": identity(params, seed),
                "config_id": config_id(params),
                "primary": primary,
                **({"attempt": attempt} if attempt else {}),
            },
            skip_if_exists=False,
        )

    def enqueue_missing(self) -> int:
        """Queue every (configuration, seed) with no completed, queued or running trial; returns how many.

        For a grid that is every pair not yet done (failed and interrupted ones included); when
        tuning, configurations already sampled whose trials failed or were interrupted, and the other
        seeds of a configuration whose first seed completed. A pruned configuration is done. Processes
        queueing at the same time take turns, so each pair is queued once.
        """
        self.recover_stale()
        with study_lock(self.storage, self.optuna_study._study_id, WORKER):
            return self._enqueue_missing()

    def _enqueue_missing(self) -> int:
        # a pruned configuration is done with: it is never queued again
        taking = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
        taken = {t.user_attrs.get("identity") for t in self.trials(taking)}
        if self.study.is_tuning:
            wanted = {
                t.user_attrs["identity"]: (t.user_attrs["params"], t.user_attrs["seed"], t.user_attrs["primary"])
                for t in self.trials()
                if "identity" in t.user_attrs
            }
            for t in self.trials((TrialState.COMPLETE,)):  # the other seeds of a completed first seed
                if t.user_attrs.get("primary"):
                    params = t.user_attrs["params"]
                    for seed in self.study.seeds:
                        wanted.setdefault(identity(params, seed), (params, seed, False))
        else:
            wanted = {identity(p, s): (p, s, True) for p in self.study.configurations() for s in self.study.seeds}
        missing = [(p, s, primary) for key, (p, s, primary) in wanted.items() if key not in taken]
        for params, seed, primary in missing:
            self._enqueue(params, seed, primary)
        return len(missing)

    def recover_stale(self) -> int:
        """Fail trials left RUNNING by dead workers (they are queued again by :meth:`enqueue_missing`)."""
        recovered = 0
        for trial in self.trials((TrialState.RUNNING,)):
            worker = trial.user_attrs.get("worker")
            if worker == WORKER or not stale_reason(trial):
                continue
            try:
                self.storage.set_trial_user_attr(trial._trial_id, "error", f"interrupted: worker {worker} stopped")
                self.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                recovered += 1
            except UpdateFinishedTrialError:
                continue
        return recovered

    def _claim(self) -> optuna.Trial | None:
        """Atomically take a WAITING trial; one taken by another process first is skipped."""
        waiting = waiting_trial_ids(self.storage, self.optuna_study._study_id)
        if waiting is None:  # FrozenTrial._trial_id is the storage id; Optuna's own queue pops by it the same way
            waiting = [t._trial_id for t in self.optuna_study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]
        for trial_id in waiting:
            if claim_waiting(self.storage, trial_id, WORKER):
                self._held = claimed_trial(self.optuna_study, trial_id)
                return self._held
        return None

    def _ask(self) -> optuna.Trial:
        """A new trial for the sampler: ``Study.ask`` without its pop of the WAITING queue.

        ``Study.ask`` first moves a WAITING trial to RUNNING by a read and then a write, which two processes on
        SQLite can both pass, and it would hand a trial that another worker queued after :meth:`_claim` found the
        queue empty to the sampler as a new configuration. The queue is taken by :meth:`_claim` alone, atomically;
        such a trial waits for the next claim. Leaving the pop out also saves its read of the queue (six queries).
        """
        study = self.optuna_study
        study._thread_local.cached_all_trials = None  # as ask does: the sampler then reads the latest trials
        return optuna.Trial(study, study._storage.create_new_trial(study._study_id))

    def _tell(self, trial: optuna.Trial, values: Any = None, state: TrialState | None = None) -> None:
        """``Study.tell`` (its checks, the sampler's ``after_trial``, the state write) without the read of the
        finished trial that it returns and the runner never uses: six SQL queries a trial (Optuna is pinned)."""
        _tell_with_warning(self.optuna_study, trial, values, state)

    def _is_duplicate(self, trial: optuna.Trial, key: str) -> int | None:
        """The number of a trial that completed, was pruned or holds an earlier claim on the same identity."""
        holders = identity_holders(self.storage, self.optuna_study._study_id, key)
        if holders is None:  # a storage without SQL: read its trials
            holders = [(t.number, t.state) for t in self.trials() if t.user_attrs.get("identity") == key]
        for number, state in sorted(holders):
            if number == trial.number or state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
                continue
            if state != TrialState.RUNNING or number < trial.number:
                return number
        return None

    # --- sampling ------------------------------------------------------------------------------
    def _suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Register the trial's parameters with Optuna (fixed ones come from the queue) and decode them."""
        if not self.study.is_tuning:
            fixed = trial.user_attrs["params"]
            choices: dict[str, list[Any]] = {}
            for grid in self.study.grid:
                for key, values in grid.items():
                    choices.setdefault(key, [])
                    choices[key] += [encode(v) for v in values if encode(v) not in choices[key]]
            for key in fixed:
                trial.suggest_categorical(key, choices[key])
            return fixed
        params = {}
        for d in self.study.tune:
            if d.kind == "categorical":
                params[d.path] = decode(trial.suggest_categorical(d.path, [encode(c) for c in d.choices]))
            elif d.kind == "int":
                params[d.path] = trial.suggest_int(d.path, int(d.low), int(d.high), step=int(d.step or 1), log=d.log)
            else:
                params[d.path] = trial.suggest_float(d.path, d.low, d.high, step=d.step, log=d.log)
        return params

    def _next(self) -> tuple[optuna.Trial, dict[str, Any], int] | None:
        while True:
            trial = self._claim()
            if trial is None and self.study.is_tuning and not self._budget_spent():
                trial = self._held = self._ask()
                params = self._suggest(trial)
                seed = self.study.seeds[0]
                attrs = {
                    "worker": WORKER,
                    "seed": seed,
                    "params": params,
                    "identity": identity(params, seed),
                    "config_id": config_id(params),
                    "primary": True,
                }
                # one write, before the duplicate check reads identities; a worker that dies before it leaves a
                # trial without worker, which recover_stale fails once its start is STALE_AFTER old
                record_trial(self.storage, trial._trial_id, attrs)
                duplicate = self._is_duplicate(trial, attrs["identity"])
                if duplicate is not None:  # the sampler proposed a configuration already run: ask again
                    trial.set_user_attr("duplicate_of", duplicate)
                    self._tell(trial, state=TrialState.PRUNED)
                    self._repeats += 1
                    if self._repeats == MAX_REPEATS:
                        self._log(
                            f"stopped asking the {self.study.sampler} sampler: its last {MAX_REPEATS} proposals had "
                            f"all run already ({len(self._primary_identities())} configurations run); "
                            "`sampler: grid` enumerates a finite space"
                        )
                    continue
                self._repeats = 0
                if not self.study.pruner:  # with a pruner, only once the first seed has run to the end
                    self._enqueue_other_seeds(params)
                return trial, params, seed
            if trial is None:
                if self.recover_stale():
                    self.enqueue_missing()
                    continue
                if self.trials((TrialState.RUNNING,)):
                    # other workers still run trials: wait, so a worker that dies hands its trial to us
                    time.sleep(POLL_EVERY)
                    continue
                return None
            key = trial.user_attrs["identity"]
            duplicate = self._is_duplicate(trial, key)
            if duplicate is not None:
                trial.set_user_attr("duplicate_of", duplicate)
                self._tell(trial, state=TrialState.PRUNED)
                continue
            return trial, self._suggest(trial), trial.user_attrs["seed"]

    def _enqueue_other_seeds(self, params: dict[str, Any]) -> None:
        for other in self.study.seeds[1:]:
            self._enqueue(params, other, primary=False)

    def _budget_spent(self) -> bool:
        if self._repeats >= MAX_REPEATS:  # the sampler finds no new configuration: asking on would never end
            return True
        if self.study.timeout is not None and time.time() - self._run_started >= self.study.timeout:
            return True
        budget = self.study.trial_budget  # capped at the size of a finite space
        if budget is None:
            return False
        return len(self._primary_identities()) >= budget

    def _primary_identities(self) -> set[str]:
        """Identities of the study's primary trials (one per configuration a tuning study has run or runs).

        Read incrementally, so that asking for a trial stays flat in the size of the study: a trial's attributes
        are final once it holds an identity (written with its primary flag, in one write) or has finished, and
        the trials before the first that is not final are not read again. A duplicate's identity is its
        original's, so it adds nothing to the set.
        """
        study_id = self.optuna_study._study_id
        if self._primaries_of != study_id:  # opened another study (--new)
            self._primaries_of, self._primaries, self._primaries_read = study_id, set(), 0
        settled = True
        for _, state, _, attrs in self._read_from(self._primaries_read, ("identity", "primary")):
            if attrs.get("primary"):
                self._primaries.add(attrs["identity"])
            settled = settled and ("identity" in attrs or state.is_finished())
            self._primaries_read += settled
        return self._primaries

    def _read_from(self, first: int, keys: tuple[str, ...]) -> list[StoredTrial]:
        """The trials from number ``first`` on, with their user attributes ``keys``, by one query."""
        read = trial_keys_from(self.storage, self.optuna_study._study_id, first, keys)
        if read is None:  # a storage without SQL
            stored = self.optuna_study.get_trials(deepcopy=False)[first:]
            read = [StoredTrial(t.number, t.state, t.datetime_start, t.user_attrs) for t in stored]
        return read

    def _pairs(self) -> list[StoredTrial]:
        """Every trial with its identity (set-aside duplicates left out), read incrementally: a finished trial is
        final, so only the trials from the first unfinished one on are read again (Optuna's read of a study
        loads every attribute of every queued trial: 0.8 s a trial with a grid of 2,000 queued)."""
        study_id = self.optuna_study._study_id
        if self._pairs_of != study_id:  # opened another study (--new)
            self._pairs_of, self._pairs_read, self._pairs_final = study_id, [], 0
        self._pairs_read[self._pairs_final :] = self._read_from(self._pairs_final, ("identity", "duplicate_of"))
        while self._pairs_final < len(self._pairs_read) and self._pairs_read[self._pairs_final].state.is_finished():
            self._pairs_final += 1
        return [t for t in self._pairs_read if "duplicate_of" not in t.attrs]

    # --- progress ------------------------------------------------------------------------------
    def progress(self) -> tuple[int, int | None]:
        """(finished (configuration, seed) pairs: completed or pruned, total expected or None)."""
        done, pruned, *_ = self._settled()
        return len(done | pruned), self.study.expected_trials(pruned=len(pruned))

    def changed_code(self) -> tuple[int, int, list[str]]:
        """(completed trials computed by code that has changed since, completed trials, the changed modules), from
        the fingerprint each trial stored (:attr:`TrialResult.code`); modules that do not import here are not
        compared. Such trials are not run again by themselves: their numbers are those of the old code."""
        recorded = [t.user_attrs.get("code") or {} for t in self.trials((TrialState.COMPLETE,))]
        names = {name for code in recorded for name in code}
        current = {name: current_hash(name) for name in names}
        stale = [{name for name, digest in code.items() if current[name] not in (None, digest)} for code in recorded]
        return sum(map(bool, stale)), len(recorded), sorted(set().union(*stale))

    def _settled(self, before: FrozenTrial | None = None) -> tuple[set[str], set[str], set[str], set[str]]:
        """The identities of the (configuration, seed) pairs completed, pruned (and not completed), failed with no
        attempt left to come, and running now in any process (only those started before ``before``, if given),
        from one read of the trials."""
        latest = (math.inf, math.inf) if before is None else _started(before.number, before.datetime_start)
        by_state: dict[TrialState, set[str]] = {state: set() for state in TrialState}
        running_before: set[str] = set()
        for number, state, start, attrs in self._pairs():
            if "identity" in attrs:
                by_state[state].add(attrs["identity"])
                if state == TrialState.RUNNING and _started(number, start) < latest:
                    running_before.add(attrs["identity"])
        done = by_state[TrialState.COMPLETE]
        pruned = by_state[TrialState.PRUNED] - done
        # a failed pair queued again (a retry, or a resumed interruption) is still to come
        failed = by_state[TrialState.FAIL] - done - pruned - by_state[TrialState.RUNNING] - by_state[TrialState.WAITING]
        return done, pruned, failed, running_before - done - pruned

    def _log(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message)  # clears the bars, prints the line, draws them again below it
        else:
            print(message, flush=True)

    def _study_bar(self) -> tqdm | None:
        """In a terminal (not --quiet): one bar of the study's (configuration, seed) pairs done, with tqdm's ETA;
        the trainer's per-epoch bars open below it."""
        if self.quiet or not sys.stderr.isatty():
            return None
        done, total = self.progress()
        return tqdm(total=total, initial=done, desc=f"study {self.study.name}", unit="trial", disable=False)

    def _eta(self, done: int, total: int | None) -> str:
        if not self._runtimes or total is None:
            return ""
        workers = max(1, int(os.environ.get("ABLATE_WORKERS", "1")))
        seconds = (total - done) * float(np.mean(self._runtimes)) / workers
        return f", ETA {seconds / 60:.1f} min"

    # --- working -------------------------------------------------------------------------------
    def work(self) -> RunOutcome:
        """Claim and run trials until none are left (or the budget is spent, or fail-fast stops)."""
        outcome = RunOutcome()
        self._bar = self._study_bar()
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
            reason = "interrupted (Ctrl-C or SIGTERM)" if interrupted else f"stopped by {type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):  # with the storage itself lost, the stale-trial check recovers it
                held = self._held
                if held is not None and self.storage.get_trial(held._trial_id).state == TrialState.RUNNING:
                    self._fail(held, f"{reason.splitlines()[0]}; it runs again on resume", None)
            if not interrupted:
                raise
            outcome.interrupted = True
        finally:
            if self._bar is not None:
                self._show(*self.progress())
                self._bar.close()
                self._bar = None
        return outcome

    def _show(self, done: int, total: int | None) -> None:
        """Move the study bar to ``done`` of ``total`` (a pruned configuration lowers the total)."""
        if self._bar is not None:
            self._bar.total = total
            self._bar.update(done - self._bar.n)

    def _run_one(self, trial: optuna.Trial, params: dict[str, Any], seed: int, outcome: RunOutcome) -> None:
        done, pruned, failed, running = self._settled(before=self.storage.get_trial(trial._trial_id))
        total = self.study.expected_trials(pruned=len(pruned))
        self._show(len(done | pruned), total)
        # its place among the pairs settled, those started before it in any process, and those this process failed:
        # parallel workers count different places, a pair queued again by a resume counts when it runs, and a retry
        # of this run does not move the count back
        position = len((done | pruned | failed | running | self._failed_here) - {identity(params, seed)}) + 1
        label = ", ".join(f"{k}={v}" for k, v in params.items()) or "base config"
        self._log(f"[{position}/{total or '?'}] trial {trial.number}: {label}, seed {seed}")
        stop_beat = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(trial, stop_beat), daemon=True)
        beat.start()
        start = time.time()
        try:
            config = self.study.trial_config(params, seed)
            config["name"] = f"{self.study.name}#{trial.number}"
            result = run_trial(config, cache=self.cache, progress=not self.quiet, on_epoch=self._reporter(trial))
        except optuna.TrialPruned as exc:
            self._tell(trial, state=TrialState.PRUNED)
            self._log(f"  pruned trial {trial.number}: {exc}")
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
        finally:
            stop_beat.set()
        runtime = time.time() - start
        self._record(trial, result, runtime)
        values = [result.metrics.get(o.metric, math.nan) for o in self.study.objectives]
        bad = [o.metric for o, v in zip(self.study.objectives, values, strict=True) if not math.isfinite(v)]
        if bad:
            self._fail(trial, f"objective {', '.join(bad)} is undefined (NaN) for this trial", None)
            outcome.failed.append(f"trial {trial.number}: objective {', '.join(bad)} is NaN")
            return
        if self.study.pruner and self._is_primary(trial):  # before it is told: a crash in between re-runs it
            self._enqueue_other_seeds(params)
        self._tell(trial, values)
        self._runtimes.append(runtime)
        outcome.completed += 1
        done, total = self.progress()
        shown = ", ".join(f"{o.metric} {v:.4f}" for o, v in zip(self.study.objectives, values, strict=True))
        self._log(
            f"  done trial {trial.number}: {shown} ({runtime:.0f} s, {result.trainings} "
            f"training{'' if result.trainings == 1 else 's'})"
            f"{self._eta(done, total)}"
        )

    def _is_primary(self, trial: optuna.Trial) -> bool:
        """Whether ``trial`` runs a tuned configuration's first seed (read from the storage: an asked trial's
        ``user_attrs`` are those it was asked with)."""
        return self.study.is_tuning and bool(self.storage.get_trial_user_attrs(trial._trial_id).get("primary"))

    def _reporter(self, trial: optuna.Trial) -> Callable[[dict[str, Any]], None] | None:
        """With a pruner: the trial's per-epoch callback, reporting the pruner's loss and stopping the trial when the
        pruner says so (only a configuration's first seed is pruned; its other seeds run once it finished)."""
        spec = self.study.pruner
        if spec is None:
            return None
        prunable = self._is_primary(trial)
        maximize = self.directions[0] == "maximize"

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

    def trial_stem(self, number: int) -> str:
        """:func:`trial_stem` of trial ``number`` of the opened study."""
        return trial_stem(self.study.name, self.optuna_study.study_name, number)

    def _heartbeat(self, trial: optuna.Trial, stop: threading.Event) -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat only delays stale detection
                self.storage.set_trial_user_attr(trial._trial_id, "heartbeat", time.time())
            if stop.wait(HEARTBEAT_EVERY):
                return

    def _record(self, trial: optuna.Trial, result: Any, runtime: float) -> None:
        # Optuna keeps intermediate values (the curve the dashboard draws) of single-objective studies only; with a
        # pruner they are the reported per-epoch losses already
        single = len(self.study.objectives) == 1 and not self.study.pruner
        curve = [epoch["loss"] for epoch in result.history] if single else []
        record_trial(self.storage, trial._trial_id, result_attrs(result, runtime), curve)
        for spec in self.study.loggers:
            try:
                LOGGERS.build(spec, folder=self.folder).log(
                    self.trial_stem(trial.number), result.config, result.history, result.metrics
                )
            except Exception as exc:  # a tracker that is down costs its record, never the trial
                self._log(f"  logger {spec['name']} could not write trial {trial.number}: {type(exc).__name__}: {exc}")
        artifacts = self.folder / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        stem = self.trial_stem(trial.number)
        np.savez_compressed(artifacts / f".{stem}.npz", names=np.array(result.image_names), **result.gallery)
        os.replace(artifacts / f".{stem}.npz", artifacts / f"{stem}.npz")

    def _fail(self, trial: optuna.Trial, message: str, trace: str | None) -> None:
        trial.set_user_attr("error", message)
        if trace:
            logs = self.folder / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            log = logs / f"{self.trial_stem(trial.number)}.log"
            log.write_text(trace)
            trial.set_user_attr("log", str(log))
        self._tell(trial, state=TrialState.FAIL)
        self._log(f"  FAILED trial {trial.number}: {message}")

    def _maybe_retry(self, trial: optuna.Trial, params: dict[str, Any], seed: int) -> None:
        key = trial.user_attrs["identity"] if "identity" in trial.user_attrs else identity(params, seed)
        self._failed_here.add(key)
        # the attempt travels with the queued retry: another worker that runs and fails it retries no more often
        attempt = trial.user_attrs.get("attempt", 0) + 1
        if attempt <= self.retries:
            self._enqueue(params, seed, trial.user_attrs.get("primary", True), attempt)
