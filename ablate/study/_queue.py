"""The queue of (configuration, seed) pairs: enqueueing what is missing, claiming, duplicates and stale trials.

Every pair is one Optuna trial with a stable ``identity``. Grid configurations are enqueued as WAITING trials and
claimed by one conditional update (``state = RUNNING where state = WAITING``, which exactly one process can win on
any database), recording the claiming worker in the same transaction, so parallel workers (processes or machines
sharing a storage URL) never run one trial twice and a lost race is a retry of the next trial. A claimed trial
whose identity already completed or is held by an earlier live claim is set aside as a duplicate. A trial left
RUNNING by a dead worker is failed and queued again with the same parameters.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from ablate.storage import (
    StoredStudy,
    claim_waiting,
    claimed_trial,
    config_id,
    encode,
    identity,
    identity_holders,
    study_id,
    study_lock,
    tell,
    trial_id,
    waiting_trial_ids,
)
from ablate.study._race import study_plan
from ablate.study._workers import WORKER, stale_reason

#: How the error of a trial that did not fail but was stopped (its worker interrupted or dead) begins.
INTERRUPTED = "interrupted"


class TrialQueue:
    """The WAITING trials of an opened study, and the trial this worker holds.

    Attributes:
        held: the trial this worker claimed or asked last (Ctrl-C or SIGTERM marks it), or None.
    """

    def __init__(self, stored: StoredStudy) -> None:
        self.stored = stored
        self.study = stored.study
        self.held: optuna.Trial | None = None

    def enqueue(self, params: dict[str, Any], seed: int, primary: bool, attempt: int = 0) -> None:
        """Queue the pair; ``attempt``: how many times it has been retried (stored from the first retry on)."""
        self.stored.optuna_study.enqueue_trial(
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

    def enqueue_other_seeds(self, params: dict[str, Any]) -> None:
        """Queue the seeds after the first of a tuned configuration."""
        for other in self.study.seeds[1:]:
            self.enqueue(params, other, primary=False)

    def enqueue_missing(self, fresh_only: bool = False) -> int:
        """Queue every (configuration, seed) with no completed, queued or running trial; returns how many.

        For a grid that is every pair not yet done (failed and interrupted ones included); in a race, those of the
        rounds so far; when tuning, configurations already sampled whose trials failed or were interrupted, and the
        other seeds of a configuration whose first seed completed. A pruned configuration is done. Processes
        queueing at the same time take turns, so each pair is queued once.

        Args:
            fresh_only: queue only pairs that have no trial at all (a race's next round, within a run: a pair that
                failed in it is not run again).
        """
        self.recover_stale()
        with study_lock(self.stored.storage, study_id(self.stored.optuna_study), WORKER):
            taken = self._taken(fresh_only)
            missing = [(p, s, primary) for key, (p, s, primary) in self._wanted().items() if key not in taken]
            for params, seed, primary in missing:
                self.enqueue(params, seed, primary)
            return len(missing)

    def _taken(self, fresh_only: bool = False) -> set[str]:
        # a pruned configuration is done with: it is never queued again
        taking = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
        return {t.user_attrs.get("identity") for t in self.stored.trials(None if fresh_only else taking)}

    def _wanted(self) -> dict[str, tuple[dict[str, Any], int, bool]]:
        """identity -> (parameters, seed, primary) of every pair the study should hold."""
        if self.study.race is not None:
            plan = study_plan(self.study, self.stored.results(), self.stored.failed_pairs())
            pairs = [(p, s) for p in self.study.configurations() for s in self.study.seeds[: plan.seeds[config_id(p)]]]
            return {identity(p, s): (p, s, True) for p, s in pairs}
        if not self.study.is_tuning:
            return {identity(p, s): (p, s, True) for p in self.study.configurations() for s in self.study.seeds}
        wanted = {
            t.user_attrs["identity"]: (t.user_attrs["params"], t.user_attrs["seed"], t.user_attrs["primary"])
            for t in self.stored.trials()
            if "identity" in t.user_attrs
        }
        for t in self.stored.trials((TrialState.COMPLETE,)):  # the other seeds of a completed first seed
            if t.user_attrs.get("primary"):
                params = t.user_attrs["params"]
                for seed in self.study.seeds:
                    wanted.setdefault(identity(params, seed), (params, seed, False))
        return wanted

    def enqueue_interrupted(self) -> int:
        """Queue again the pairs whose trial another worker was interrupted in (SIGTERM or Ctrl-C: a preempted array
        task), as those of a dead worker are, so that the workers still running finish the study; returns how many.
        Failures are left to the next run (``--retries`` decides those within one)."""

        def interrupted() -> set[str]:
            failed = self.stored.trials((TrialState.FAIL,))
            return {
                t.user_attrs.get("identity")
                for t in failed
                if str(t.user_attrs.get("error", "")).startswith(INTERRUPTED) and t.user_attrs.get("worker") != WORKER
            } - self._taken()

        if not interrupted():  # the usual case, polled while others run: no lock, no walk over the study's pairs
            return 0
        with study_lock(self.stored.storage, study_id(self.stored.optuna_study), WORKER):
            wanted = self._wanted()
            missing = [wanted[key] for key in interrupted() if key in wanted]
            for params, seed, primary in missing:
                self.enqueue(params, seed, primary)
            return len(missing)

    def recover_stale(self) -> int:
        """Fail trials left RUNNING by dead workers (they are queued again by :meth:`enqueue_missing`)."""
        recovered = 0
        storage = self.stored.storage
        for trial in self.stored.trials((TrialState.RUNNING,)):
            worker = trial.user_attrs.get("worker")
            if worker == WORKER or not stale_reason(trial):
                continue
            try:
                storage.set_trial_user_attr(trial_id(trial), "error", f"{INTERRUPTED}: worker {worker} stopped")
                storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)
                recovered += 1
            except UpdateFinishedTrialError:
                continue
        return recovered

    def _waiting_ids(self) -> list[int]:
        """Storage ids of the WAITING trials, in queue order."""
        optuna_study = self.stored.optuna_study
        waiting = waiting_trial_ids(self.stored.storage, study_id(optuna_study))
        if waiting is None:  # a storage without SQL; Optuna's own queue pops by the storage id the same way
            waiting = [trial_id(t) for t in optuna_study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]
        return waiting

    def waiting(self) -> bool:
        """Whether any trial waits to be claimed (queued by another worker, for one)."""
        return bool(self._waiting_ids())

    def claim(self) -> optuna.Trial | None:
        """Atomically take a WAITING trial; one taken by another process first is skipped."""
        for claimed_id in self._waiting_ids():
            if claim_waiting(self.stored.storage, claimed_id, WORKER):
                self.held = claimed_trial(self.stored.optuna_study, claimed_id)
                return self.held
        return None

    def duplicate_of(self, trial: optuna.Trial, key: str) -> int | None:
        """The number of a trial that completed, was pruned or holds an earlier claim on identity ``key``."""
        holders = identity_holders(self.stored.storage, study_id(self.stored.optuna_study), key)
        if holders is None:  # a storage without SQL: read its trials
            holders = [(t.number, t.state) for t in self.stored.trials() if t.user_attrs.get("identity") == key]
        for number, state in sorted(holders):
            if number == trial.number or state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
                continue
            if state != TrialState.RUNNING or number < trial.number:
                return number
        return None

    def set_aside(self, trial: optuna.Trial, original: int) -> None:
        """Finish ``trial``, a duplicate of trial ``original``, so that no count and no sampler takes it for a run."""
        trial.set_user_attr("duplicate_of", original)
        tell(self.stored.optuna_study, trial, state=TrialState.PRUNED)
