"""Every use of Optuna's private names: its SQL schema, its storage and trial ids, its ask and tell internals.

Optuna is pinned (pyproject.toml), so these are stable; keeping them here means an upgrade is checked in one file.
A WAITING trial is claimed by one conditional update that exactly one process can win on any SQL database
(:func:`claim_waiting`), and queueing runs under a lock row that only one process can insert (:func:`study_lock`).
The trials holding one identity are found by one indexed query (:func:`identity_holders`), a completed trial is
recorded in one transaction (:func:`record_trial`), and the reads the runner repeats are single queries
(:func:`trial_keys_from`, :func:`trial_states_from` and :func:`trial_keys_of`, :func:`waiting_trial_ids`), not
Optuna's read of every stored trial.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import optuna
import sqlalchemy.exc
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._rdb import models  # Optuna's own schema: the claim below is one update of its trials table
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, TrialState

# A queueing lock older than this was left by a killed process (queueing a grid takes seconds).
LOCK_STALE_AFTER = 60.0
# A partial index on Optuna's user attributes: the identity rows only (other values, such as per-image lists, can
# exceed an index row's size); SQLite and PostgreSQL have partial indexes, other databases do without it.
IDENTITY_INDEX = (
    "CREATE INDEX IF NOT EXISTS ablate_trial_identity ON trial_user_attributes (value_json) WHERE key = 'identity'"
)


def study_id(study: optuna.Study) -> int:
    """The storage id of ``study`` (Optuna's storage API takes it; its public name is the study's name)."""
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage id of ``trial`` (the storage API takes it; ``number`` counts within the study)."""
    return trial._trial_id


def ask_new(study: optuna.Study) -> optuna.Trial:
    """A new trial for the sampler: ``Study.ask`` without its pop of the WAITING queue.

    ``Study.ask`` first moves a WAITING trial to RUNNING by a read and then a write, which two processes on
    SQLite can both pass, and it would hand a trial that another worker queued after the runner's claim found the
    queue empty to the sampler as a new configuration. The queue is taken by :func:`claim_waiting` alone; such a
    trial waits for the next claim. Leaving the pop out also saves its read of the queue (six queries).
    """
    study._thread_local.cached_all_trials = None  # as ask does: the sampler then reads the latest trials
    return optuna.Trial(study, study._storage.create_new_trial(study._study_id))


def tell(study: optuna.Study, trial: optuna.Trial, values: Any = None, state: TrialState | None = None) -> None:
    """``Study.tell`` (its checks, the sampler's ``after_trial``, the state write) without the read of the
    finished trial that it returns and the runner never uses: six SQL queries a trial."""
    _tell_with_warning(study, trial, values, state)


def index_identities(storage: optuna.storages.BaseStorage) -> None:
    """Create :data:`IDENTITY_INDEX` where the database has partial indexes and lets this process write."""
    rdb = _sql(storage)
    if rdb is None or rdb.engine.dialect.name not in ("sqlite", "postgresql"):
        return
    try:
        with rdb.engine.begin() as connection:
            connection.execute(sqlalchemy.text(IDENTITY_INDEX))
    except sqlalchemy.exc.SQLAlchemyError:
        pass  # read-only, or another process creating it at this moment: lookups work without it, only slower


def _sql(storage: optuna.storages.BaseStorage) -> optuna.storages.RDBStorage | None:
    """The SQL storage behind ``storage`` (Optuna wraps RDB storages in a cache of finished trials), or None."""
    rdb = getattr(storage, "_backend", storage)
    return rdb if isinstance(rdb, optuna.storages.RDBStorage) else None


def waiting_trial_ids(storage: optuna.storages.BaseStorage, study_id: int) -> list[int] | None:
    """Storage ids of the WAITING trials of study ``study_id`` in queue order, by one query; None for a storage
    without SQL (the caller asks Optuna, whose read of the study loads every unfinished trial with six queries)."""
    rdb = _sql(storage)
    if rdb is None:
        return None
    trials = models.TrialModel.__table__
    query = (
        sqlalchemy.select(trials.c.trial_id)
        .where(trials.c.study_id == study_id, trials.c.state == TrialState.WAITING)
        .order_by(trials.c.number)
    )
    with rdb.engine.connect() as connection:
        return list(connection.execute(query).scalars())


def claim_waiting(storage: optuna.storages.BaseStorage, trial_id: int, worker: str) -> bool:
    """Move trial ``trial_id`` from WAITING to RUNNING for ``worker``; False when another process got it first.

    Optuna's ``set_trial_state_values`` reads the state and then writes it, which two processes on SQLite can
    both pass. Here the transition is a single ``UPDATE ... WHERE state = 'WAITING'``: the database lets one
    statement change the row, and the worker attribute is written in the same transaction, so a claimed trial
    always names its worker. Storages without SQL (in-memory, journal) serialise their own updates.
    """
    rdb = _sql(storage)
    if rdb is None:
        try:
            won = storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        except UpdateFinishedTrialError:
            return False
        if won:
            storage.set_trial_user_attr(trial_id, "worker", worker)
        return won
    trials, attrs = models.TrialModel.__table__, models.TrialUserAttributeModel.__table__
    with rdb.engine.begin() as connection:
        update = (
            trials.update()
            .where(trials.c.trial_id == trial_id, trials.c.state == TrialState.WAITING)
            .values(state=TrialState.RUNNING, datetime_start=datetime.datetime.now())
        )
        if connection.execute(update).rowcount != 1:
            return False
        connection.execute(attrs.insert().values(trial_id=trial_id, key="worker", value_json=json.dumps(worker)))
    return True


def claimed_trial(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """Trial ``trial_id`` of ``study``, just claimed by :func:`claim_waiting`, ready for its parameters.

    Optuna's cache in front of an SQL storage sets a parameter only on a trial it has read, and the claim's
    query does not read it: one another process queued since this one last read the study (the other seeds of
    a tuned configuration, a retry) would fail with a KeyError. Such a trial makes the cache read the study's
    unfinished and newer trials once; the claim has already made it RUNNING, so the cache keeps following it.
    """
    known = getattr(study._storage, "_trial_id_to_study_id_and_number", None)  # Optuna's _CachedStorage (pinned)
    if known is not None and trial_id not in known:
        study.get_trials(deepcopy=False)
    return optuna.Trial(study, trial_id)


def record_trial(
    storage: optuna.storages.BaseStorage, trial_id: int, attrs: dict[str, Any], intermediate: Sequence[float] = ()
) -> None:
    """Set user attributes of running trial ``trial_id`` (and intermediate values, one per step) in one transaction.

    Optuna commits every ``set_user_attr`` and ``report`` on its own, reading the trial first; a trial's record
    is about 30 attributes and one value per epoch, and on SQLite each commit is a disk sync, so the record is
    written as one delete and one insert per table instead. Storages without SQL take them one by one.

    Raises:
        UpdateFinishedTrialError: the trial is no longer running (another process finished or failed it).
    """
    rdb = _sql(storage)
    if rdb is None:
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        for step, value in enumerate(intermediate):
            storage.set_trial_intermediate_value(trial_id, step, value)
        return
    trials = models.TrialModel.__table__
    user_attrs, values = models.TrialUserAttributeModel.__table__, models.TrialIntermediateValueModel.__table__
    with rdb.engine.begin() as connection:
        state = connection.execute(sqlalchemy.select(trials.c.state).where(trials.c.trial_id == trial_id)).scalar()
        if state != TrialState.RUNNING:
            raise UpdateFinishedTrialError(f"trial {trial_id} is {state.name if state else 'missing'}, not running")
        if attrs:
            connection.execute(
                user_attrs.delete().where(user_attrs.c.trial_id == trial_id, user_attrs.c.key.in_(list(attrs)))
            )
            connection.execute(
                user_attrs.insert(),
                [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()],
            )
        if intermediate:
            steps = list(range(len(intermediate)))
            connection.execute(values.delete().where(values.c.trial_id == trial_id, values.c.step.in_(steps)))
            rows = []
            for step, value in enumerate(intermediate):
                stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                rows.append(
                    {"trial_id": trial_id, "step": step, "intermediate_value": stored, "intermediate_value_type": kind}
                )
            connection.execute(values.insert(), rows)


def _not_duplicate(trials: sqlalchemy.Table, attrs: sqlalchemy.Table) -> sqlalchemy.ColumnElement[bool]:
    """No ``duplicate_of`` attribute on the trial (a proposal the runner set aside), by the (trial, key) index."""
    marked = attrs.alias("marked")
    return ~sqlalchemy.exists().where(marked.c.trial_id == trials.c.trial_id, marked.c.key == "duplicate_of")


def identity_holders(
    storage: optuna.storages.BaseStorage, study_id: int, key: str
) -> list[tuple[int, TrialState]] | None:
    """(number, state) of every trial of study ``study_id`` with identity ``key`` (set-aside duplicates left out),
    by one query on the identity index; None for a storage without SQL (the caller reads the trials instead)."""
    rdb = _sql(storage)
    if rdb is None:
        return None
    trials, attrs = models.TrialModel.__table__, models.TrialUserAttributeModel.__table__
    query = (
        sqlalchemy.select(trials.c.number, trials.c.state)
        .join(attrs, attrs.c.trial_id == trials.c.trial_id)
        .where(
            attrs.c.key == "identity",
            attrs.c.value_json == json.dumps(key),
            trials.c.study_id == study_id,
            _not_duplicate(trials, attrs),
        )
    )
    with rdb.engine.connect() as connection:
        return [(number, state) for number, state in connection.execute(query)]


class StoredTrial(NamedTuple):
    """What :func:`trial_keys_from` reads of one trial."""

    number: int
    state: TrialState
    start: datetime.datetime | None
    attrs: dict[str, Any]  # the user attributes asked for, those the trial has


def trial_keys_from(
    storage: optuna.storages.BaseStorage, study_id: int, first: int, keys: Sequence[str]
) -> list[StoredTrial] | None:
    """Number, state, start and user attributes ``keys`` of every trial of study ``study_id`` from number ``first``
    on, in number order, by one query; None for a storage without SQL (the caller reads the trials instead).
    Optuna's own read of a study loads every attribute of every unfinished trial each time."""
    rdb = _sql(storage)
    if rdb is None:
        return None
    trials, attrs = models.TrialModel.__table__, models.TrialUserAttributeModel.__table__
    joined = trials.outerjoin(attrs, (attrs.c.trial_id == trials.c.trial_id) & attrs.c.key.in_(list(keys)))
    query = (
        sqlalchemy.select(trials.c.number, trials.c.state, trials.c.datetime_start, attrs.c.key, attrs.c.value_json)
        .select_from(joined)
        .where(trials.c.study_id == study_id, trials.c.number >= first)
        .order_by(trials.c.number)
    )
    rows: dict[int, StoredTrial] = {}
    with rdb.engine.connect() as connection:
        for number, state, start, key, value in connection.execute(query):
            found = rows.setdefault(number, StoredTrial(number, state, start, {})).attrs
            if key is not None:
                found[key] = json.loads(value)
    return list(rows.values())


def trial_states_from(
    storage: optuna.storages.BaseStorage, study_id: int, first: int
) -> list[tuple[int, TrialState, datetime.datetime | None]] | None:
    """Number, state and start of every trial of study ``study_id`` from number ``first`` on, in number order, by
    one query of the trials table alone; None for a storage without SQL."""
    rdb = _sql(storage)
    if rdb is None:
        return None
    trials = models.TrialModel.__table__
    query = (
        sqlalchemy.select(trials.c.number, trials.c.state, trials.c.datetime_start)
        .where(trials.c.study_id == study_id, trials.c.number >= first)
        .order_by(trials.c.number)
    )
    with rdb.engine.connect() as connection:
        return [(number, state, start) for number, state, start in connection.execute(query)]


def trial_keys_of(
    storage: optuna.storages.BaseStorage, study_id: int, numbers: Sequence[int], keys: Sequence[str]
) -> dict[int, dict[str, Any]]:
    """The user attributes ``keys`` (those they have) of the trials ``numbers`` of study ``study_id`` (a storage
    with SQL), by a query per 500 numbers (databases bound the parameters of one statement)."""
    rdb = _sql(storage)
    assert rdb is not None, "trial_keys_of needs a storage with SQL"
    trials, attrs = models.TrialModel.__table__, models.TrialUserAttributeModel.__table__
    found: dict[int, dict[str, Any]] = {number: {} for number in numbers}
    with rdb.engine.connect() as connection:
        for start in range(0, len(numbers), 500):
            query = (
                sqlalchemy.select(trials.c.number, attrs.c.key, attrs.c.value_json)
                .select_from(trials.join(attrs, attrs.c.trial_id == trials.c.trial_id))
                .where(
                    trials.c.study_id == study_id,
                    trials.c.number.in_(list(numbers[start : start + 500])),
                    attrs.c.key.in_(list(keys)),
                )
            )
            for number, key, value in connection.execute(query):
                found[number][key] = json.loads(value)
    return found


@contextlib.contextmanager
def study_lock(
    storage: optuna.storages.BaseStorage, study_id: int, worker: str, key: str = "ablate:queue-lock"
) -> Iterator[None]:
    """Hold a lock on one study for ``worker`` across processes and machines (so that two never queue one trial twice).

    The lock is a study attribute row that only one process can insert (Optuna's schema makes (study, key)
    unique); a row older than :data:`LOCK_STALE_AFTER` seconds belongs to a killed process and is taken over.
    Storages without SQL run in one process or serialise their own writes: nothing to lock.
    """
    rdb = _sql(storage)
    if rdb is None:
        yield
        return
    table = models.StudySystemAttributeModel.__table__
    row = (table.c.study_id == study_id) & (table.c.key == key)
    mine = json.dumps({"worker": worker, "since": time.time()})
    while True:
        try:
            with rdb.engine.begin() as connection:
                connection.execute(table.insert().values(study_id=study_id, key=key, value_json=mine))
            break
        except sqlalchemy.exc.IntegrityError:
            with rdb.engine.begin() as connection:
                held = connection.execute(sqlalchemy.select(table.c.value_json).where(row)).scalar()
                if held is not None and time.time() - json.loads(held)["since"] > LOCK_STALE_AFTER:
                    connection.execute(table.delete().where(row & (table.c.value_json == held)))
                    continue
            time.sleep(0.1)
    try:
        yield
    finally:
        with rdb.engine.begin() as connection:
            connection.execute(table.delete().where(row & (table.c.value_json == mine)))
