"""Sampling: the study's Optuna sampler, a trial's parameters, and new configurations for a tuning study.

A grid study's configurations come from the queue; a tuning study asks its sampler for a new configuration when
the queue is empty, until its budget (``n_trials``, capped at the size of a finite space, or ``timeout``) is spent.
A proposal of a configuration already run is set aside as a duplicate and the sampler asked again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ablate.storage import ask_new, config_id, decode, encode, identity, record_trial, trial_id
from ablate.study._queue import TrialQueue
from ablate.study._workers import WORKER

if TYPE_CHECKING:
    from ablate.study._spec import Study

# proposals in a row of configurations already run after which a tuning sampler is taken to have no new ones
MAX_REPEATS = 100


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


def sampler_for(study: Study, seed: int = 0) -> optuna.samplers.BaseSampler:
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


def suggest(study: Study, trial: optuna.Trial) -> dict[str, Any]:
    """Register the trial's parameters with Optuna (a grid's come from the queue) and decode them."""
    if not study.is_tuning:
        fixed = trial.user_attrs["params"]
        choices: dict[str, list[Any]] = {}
        for grid in study.grid:
            for key, values in grid.items():
                choices.setdefault(key, [])
                choices[key] += [encode(v) for v in values if encode(v) not in choices[key]]
        for key in fixed:
            trial.suggest_categorical(key, choices[key])
        return fixed
    params = {}
    for d in study.tune:
        if d.kind == "categorical":
            params[d.path] = decode(trial.suggest_categorical(d.path, [encode(c) for c in d.choices]))
        elif d.kind == "int":
            params[d.path] = trial.suggest_int(d.path, int(d.low), int(d.high), step=int(d.step or 1), log=d.log)
        else:
            params[d.path] = trial.suggest_float(d.path, d.low, d.high, step=d.step, log=d.log)
    return params


class Proposals:
    """New configurations of a tuning study, from its sampler, within its budget.

    Args:
        queue: the study's queue (a proposal is held there, and a duplicate set aside).
        log: where the line saying the sampler was stopped goes.
    """

    def __init__(self, queue: TrialQueue, log: Callable[[str], None]) -> None:
        self.queue = queue
        self.stored = queue.stored
        self.study = queue.study
        self.log = log
        self.repeats = 0  # the sampler's latest proposals in a row that had already run
        self._started = time.time()

    def spent(self) -> bool:
        """Whether the budget is spent (or the sampler finds no new configuration: asking on would never end)."""
        if self.repeats >= MAX_REPEATS:
            return True
        if self.study.timeout is not None and time.time() - self._started >= self.study.timeout:
            return True
        budget = self.study.trial_budget  # capped at the size of a finite space
        if budget is None:
            return False
        return len(self.stored.primary_identities()) >= budget

    def ask(self) -> tuple[optuna.Trial, dict[str, Any], int] | None:
        """A new configuration's first-seed trial, held by this worker; None when the sampler proposed one already
        run (set aside: ask again after the next claim)."""
        trial = self.queue.held = ask_new(self.stored.optuna_study)
        params = suggest(self.study, trial)
        seed = self.study.seeds[0]
        attrs = {
            "worker": WORKER,
            "seed": seed,
            "params": params,
            "identity": identity(params, seed),
            "config_id": config_id(params),
            "primary": True,
        }
        # one write, before the duplicate check reads identities; a worker that dies before it leaves a trial
        # without worker, which recover_stale fails once its start is STALE_AFTER old
        record_trial(self.stored.storage, trial_id(trial), attrs)
        duplicate = self.queue.duplicate_of(trial, attrs["identity"])
        if duplicate is not None:
            self.queue.set_aside(trial, duplicate)
            self.repeats += 1
            if self.repeats == MAX_REPEATS:
                self.log(
                    f"stopped asking the {self.study.sampler} sampler: its last {MAX_REPEATS} proposals had all run "
                    f"already ({len(self.stored.primary_identities())} configurations run); "
                    "`sampler: grid` enumerates a finite space"
                )
            return None
        self.repeats = 0
        if not self.study.pruner:  # with a pruner, only once the first seed has run to the end
            self.queue.enqueue_other_seeds(params)
        return trial, params, seed
