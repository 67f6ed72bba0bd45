"""A study as stored: its Optuna study found by name and search space, and the reads of its trials.

This is all that ``status``, the report and ``export`` need; the runner works on one (:class:`StudyRunner`). A
study file's Optuna study is the newest of its name (``<name>``, ``<name>.2`` ...) whose stored signature is the
file's search space, so that a file changed back after ``--new`` finds its own trials again. Reads that repeat
with every trial (the pairs and their states, the primary trials of a tuning study) are incremental: a finished
trial is final, so only the trials from the first unfinished one on are read again.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from ablate.cache._code import current_hash
from ablate.config._resolve import ConfigError
from ablate.storage._connect import masked_url, missing_sqlite_file, open_storage, storage_url, study_folder
from ablate.storage._optuna import StoredTrial, study_id, trial_keys_from, trial_keys_of, trial_states_from
from ablate.storage._records import trial_stem

if TYPE_CHECKING:
    from ablate.study import Study

# a study another process has just created gets its signature a moment later: wait this long for it
SIGNATURE_WAIT = 30.0

optuna.logging.set_verbosity(optuna.logging.WARNING)


#: The user attributes a pair is read with: its identity, and whether it is a duplicate set aside.
PAIR_KEYS = ("identity", "duplicate_of")


def _changes(known: StoredTrial, state: TrialState) -> bool:
    """Whether a trial read as ``known`` must be read again, now in ``state``: its state changed, or it may still get
    its identity (a tuned trial is asked for first and given its identity after; a queued one has it at once)."""
    return known.state != state or ("identity" not in known.attrs and not state.is_finished())


def started(number: int, start: datetime.datetime | None) -> tuple[float, int]:
    """A key that orders trials by when they started (their number breaks a tie)."""
    return (start.timestamp() if start else math.inf, number)


class StoredStudy:
    """The stored trials of a :class:`~ablate.study.Study`.

    Args:
        study: the parsed study file.
        out: the study folder (default ``reports/<name>``).
        storage: an Optuna storage URL (default SQLite in the study folder).
        read_only: only read (status, report, export): an SQLite file that does not exist is refused, not created.

    Raises:
        ConfigError: the storage cannot be opened, or (``read_only``) the study was never run.
    """

    def __init__(
        self, study: Study, out: str | Path | None = None, storage: str | None = None, read_only: bool = False
    ) -> None:
        self.study = study
        self.folder = study_folder(study, out)
        self.url = storage_url(study, out, storage, create=not read_only)
        if read_only and missing_sqlite_file(self.url):  # status / report / export create nothing
            raise self._never_run()
        self.storage = open_storage(self.url)
        self.optuna_study: optuna.Study
        # incremental reads (see pairs and primary_identities): the Optuna study read, what was read, and how many
        # of its trials from the first are final
        self._pairs_of: int | None = None
        self._pairs_read: list[StoredTrial] = []  # by trial number
        self._pairs_final = 0
        # settled(): the identities of the final trials' pairs by state, tallied up to the trial number _tallied
        self._tallied = 0
        self._tally: dict[TrialState, set[str]] = {state: set() for state in TrialState}
        self._primaries_of: int | None = None
        self._primaries: set[str] = set()
        self._primaries_read = 0

    # --- opening ---------------------------------------------------------------------------
    def open(
        self,
        new: bool = False,
        create: bool = True,
        sampler: Callable[[int], optuna.samplers.BaseSampler] | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> optuna.Study:
        """Find (or create) the study's Optuna study.

        Args:
            new: start a fresh Optuna study (``<name>.2``, ``.3`` ...) beside the old ones.
            create: create it when none exists (else raise).
            sampler: the sampler for a given seed (the number of trials stored, so that a resumed or joining
                process continues the random stream instead of replaying the first samples); Optuna's default
                for a study that is only read.
            pruner: the pruner of a study that is run.

        Raises:
            ConfigError: no study of the name has the file's search space, or none exists and ``create`` is off.
        """
        names = self._names()
        if names and not new:
            for number, name in enumerate(reversed(names)):
                optuna_study = optuna.load_study(
                    study_name=name, storage=self.storage, sampler=sampler and sampler(0), pruner=pruner
                )
                self.study.adopt_directions([d.name.lower() for d in optuna_study.directions])
                # only the newest can be one another process is creating right now: only it waits for its signature
                if self._stored_signature(optuna_study, wait=number == 0) == self.study.signature():
                    break
            else:
                raise self._other_search_space(names[-1], optuna_study.user_attrs.get("study_file"))
            self._check_race(optuna_study)
            if sampler is not None:
                optuna_study.sampler = sampler(len(optuna_study.get_trials(deepcopy=False)))
            self.optuna_study = optuna_study
            return optuna_study
        if not create:
            raise self._never_run()
        signature = self.study.signature()
        name = self.study.name if not names else f"{self.study.name}.{len(names) + 1}"
        optuna_study = optuna.create_study(
            study_name=name,
            storage=self.storage,
            directions=[o.direction for o in self.study.objectives],
            sampler=sampler and sampler(0),
            pruner=pruner,
            load_if_exists=True,
        )
        optuna_study.set_user_attr("signature", signature)
        optuna_study.set_user_attr("race", self.study.race_design())
        optuna_study.set_user_attr("study_file", str(self.study.path.resolve()))
        self.optuna_study = optuna_study
        return optuna_study

    def _names(self) -> list[str]:
        existing = set(optuna.get_all_study_names(self.storage))  # the summaries would read every trial
        names = [self.study.name] + [f"{self.study.name}.{i}" for i in range(2, 1000)]
        return [n for n in names if n in existing]

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

    def _check_race(self, optuna_study: optuna.Study) -> None:
        """Refuse a race whose design (looks, alpha, margin, futility, spending) changed since it began: its verdicts
        keep their error rate only under the design fixed before the first look. Adding a race to a study of fixed
        seeds, or running a race's trials as fixed seeds, changes no verdict's guarantee and is not refused."""
        before, now = optuna_study.user_attrs.get("race"), self.study.race_design()
        if before is None or now is None or before == now:
            return
        changes = ", ".join(f"{key} {before.get(key)} -> {now[key]}" for key in now if before.get(key) != now[key])
        raise ConfigError(
            f"{self.study.path}: race: its design changed since study '{optuna_study.study_name}' in "
            f"{masked_url(self.url)} began ({changes}); a race's verdicts keep their error rate only under the design "
            f"fixed before its first look. Restore it, or run `ablate run {self.study.path} --new` to start a race "
            f"of its own (the old trials are kept)"
        )

    def _never_run(self) -> ConfigError:
        return ConfigError(f"{self.study.path}: no study '{self.study.name}' in {masked_url(self.url)}; run it first")

    def _stored_signature(self, optuna_study: optuna.Study, wait: bool = True) -> str | None:
        """The search-space signature stored with ``optuna_study``.

        Creating a study and storing its signature are two writes, so a process that starts together with the
        one creating it can find the study before its signature: it waits for the signature rather than take
        the study for one with another search space (seen with 3 processes started at once on a busy machine).
        """
        deadline = time.monotonic() + (SIGNATURE_WAIT if wait else 0.0)
        while True:
            stored = self.storage.get_study_user_attrs(study_id(optuna_study)).get("signature")
            if stored is not None or time.monotonic() >= deadline:
                return stored
            time.sleep(0.1)

    def trial_stem(self, number: int) -> str:
        """:func:`~ablate.storage.trial_stem` of trial ``number`` of the opened study."""
        return trial_stem(self.study.name, self.optuna_study.study_name, number)

    # --- reading ---------------------------------------------------------------------------
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        """The stored trials (in ``states``), the proposals the runner set aside as duplicates left out."""
        stored = self.optuna_study.get_trials(deepcopy=False, states=states)
        return [t for t in stored if "duplicate_of" not in t.user_attrs]

    def read_from(self, first: int, keys: tuple[str, ...]) -> list[StoredTrial]:
        """The trials from number ``first`` on, with their user attributes ``keys``, by one query."""
        read = trial_keys_from(self.storage, study_id(self.optuna_study), first, keys)
        if read is None:  # a storage without SQL
            stored = self.optuna_study.get_trials(deepcopy=False)[first:]
            read = [StoredTrial(t.number, t.state, t.datetime_start, t.user_attrs) for t in stored]
        return read

    def pairs(self) -> list[StoredTrial]:
        """Every trial with its identity (set-aside duplicates left out), read incrementally (Optuna's read of a
        study loads every attribute of every queued trial: 0.8 s a trial with a grid of 2,000 queued)."""
        self._read_pairs()
        return [t for t in self._pairs_read if "duplicate_of" not in t.attrs]

    def _read_pairs(self) -> None:
        """Bring :attr:`_pairs_read` up to date: the trials from the first one not final on, read again."""
        read = study_id(self.optuna_study)
        if self._pairs_of != read:  # opened another study (--new)
            self._pairs_of, self._pairs_read, self._pairs_final = read, [], 0
            self._tallied, self._tally = 0, {state: set() for state in TrialState}
        states = trial_states_from(self.storage, read, self._pairs_final)
        if states is None:  # a storage without SQL
            self._pairs_read[self._pairs_final :] = self.read_from(self._pairs_final, PAIR_KEYS)
        else:  # the attributes only of the trials that are new or changed state since the last read
            known = self._pairs_read
            stale = [n for n, state, _ in states if n >= len(known) or _changes(known[n], state)]
            fresh = trial_keys_of(self.storage, read, stale, PAIR_KEYS) if stale else {}
            known[self._pairs_final :] = [
                StoredTrial(n, state, start, fresh[n] if n in fresh else known[n].attrs) for n, state, start in states
            ]
        while self._pairs_final < len(self._pairs_read) and self._pairs_read[self._pairs_final].state.is_finished():
            self._pairs_final += 1

    def primary_identities(self) -> set[str]:
        """Identities of the study's primary trials (one per configuration a tuning study has run or runs).

        Read incrementally: a trial's attributes are final once it holds an identity (written with its primary
        flag, in one write) or has finished. A duplicate's identity is its original's, so it adds nothing.
        """
        read = study_id(self.optuna_study)
        if self._primaries_of != read:  # opened another study (--new)
            self._primaries_of, self._primaries, self._primaries_read = read, set(), 0
        settled = True
        for _, state, _, attrs in self.read_from(self._primaries_read, ("identity", "primary")):
            if attrs.get("primary"):
                self._primaries.add(attrs["identity"])
            settled = settled and ("identity" in attrs or state.is_finished())
            self._primaries_read += settled
        return self._primaries

    def settled(self, before: FrozenTrial | None = None) -> tuple[set[str], set[str], set[str], set[str]]:
        """The identities of the (configuration, seed) pairs completed, pruned (and not completed), failed with no
        attempt left to come, and running now in any process (only those started before ``before``, if given),
        from one read of the trials."""
        latest = (math.inf, math.inf) if before is None else started(before.number, before.datetime_start)
        self._read_pairs()
        # final trials never change: they are tallied once (a Python pass over 10,000 pairs twice a trial cost 14 ms)
        for _, state, _, attrs in self._pairs_read[self._tallied : self._pairs_final]:
            if "identity" in attrs and "duplicate_of" not in attrs:
                self._tally[state].add(attrs["identity"])
        self._tallied = self._pairs_final
        by_state = {state: set(identities) for state, identities in self._tally.items()}
        running_before: set[str] = set()
        for number, state, start, attrs in self._pairs_read[self._pairs_final :]:
            if "identity" in attrs and "duplicate_of" not in attrs:
                by_state[state].add(attrs["identity"])
                if state == TrialState.RUNNING and started(number, start) < latest:
                    running_before.add(attrs["identity"])
        done = by_state[TrialState.COMPLETE]
        pruned = by_state[TrialState.PRUNED] - done
        # a failed pair queued again (a retry, or a resumed interruption) is still to come
        failed = by_state[TrialState.FAIL] - done - pruned - by_state[TrialState.RUNNING] - by_state[TrialState.WAITING]
        return done, pruned, failed, running_before - done - pruned

    def progress(self) -> tuple[int, int | None]:
        """(finished (configuration, seed) pairs: completed or pruned, total expected or None)."""
        done, pruned, *_ = self.settled()
        return len(done | pruned), self.expected(len(pruned))

    def expected(self, pruned: int) -> int | None:
        """The pairs a complete run holds, given ``pruned`` configurations (in a race: those its rounds ask for)."""
        if self.study.race is None:
            return self.study.expected_trials(pruned=pruned)
        return self.study.expected_trials(pruned=pruned, results=self.results(), failed=self.failed_pairs())

    def failed_pairs(self) -> set[tuple[str, int]]:
        """(configuration id, seed) of the pairs that failed with no attempt queued, running or completed."""
        failed = self.settled()[2]
        return {
            (t.user_attrs["config_id"], t.user_attrs["seed"])
            for t in self.trials((TrialState.FAIL,))
            if t.user_attrs.get("identity") in failed and "config_id" in t.user_attrs
        }

    def results(self) -> dict[tuple[str, int], float]:
        """(configuration id, seed) -> the first objective's value, of every completed trial."""
        return {
            (t.user_attrs["config_id"], t.user_attrs["seed"]): t.values[0]
            for t in self.trials((TrialState.COMPLETE,))
            if "config_id" in t.user_attrs
        }

    def changed_code(self) -> tuple[int, int, list[str]]:
        """(completed trials computed by code that has changed since, completed trials, the changed modules), from
        the fingerprint each trial stored (:attr:`TrialResult.code`); modules that do not import here are not
        compared. Such trials are not run again by themselves: their numbers are those of the old code."""
        recorded = [t.user_attrs.get("code") or {} for t in self.trials((TrialState.COMPLETE,))]
        names = {name for code in recorded for name in code}
        current = {name: current_hash(name) for name in names}
        stale = [{name for name, digest in code.items() if current[name] not in (None, digest)} for code in recorded]
        return sum(map(bool, stale)), len(recorded), sorted(set().union(*stale))
