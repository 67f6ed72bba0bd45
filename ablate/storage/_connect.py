"""Where a study is stored and how its storage is opened: the study folder, the storage URL, one-line errors.

The default storage is an SQLite file in the study folder; any Optuna storage URL (PostgreSQL for several
machines) works. A URL is shown with its password masked in every message.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import sqlalchemy.exc

from ablate.config._resolve import ConfigError
from ablate.storage._optuna import index_identities

if TYPE_CHECKING:
    from ablate.study import Study


def study_folder(study: Study, out: str | Path | None) -> Path:
    """The study folder: ``out``, or ``reports/<name>``."""
    return Path(out) if out else Path("reports") / study.name


def storage_url(study: Study, out: str | Path | None, storage: str | None, create: bool = True) -> str:
    """The storage URL (default: SQLite in the study folder, which ``create`` makes)."""
    if storage:
        return storage
    folder = study_folder(study, out).resolve()
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder}/study.db"


def missing_sqlite_file(url: str) -> bool:
    """Whether ``url`` names an SQLite file that does not exist (opening it would create an empty one)."""
    if not url.startswith("sqlite"):
        return False
    database = sqlalchemy.engine.make_url(url).database
    return bool(database) and database != ":memory:" and not Path(database).exists()


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """RDB storage; SQLite waits for locks instead of failing with "database is locked".

    Raises:
        ConfigError: one line naming the storage (password masked) and why it cannot be opened.
    """

    def connect() -> optuna.storages.BaseStorage:
        if url.startswith("sqlite"):
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
        return optuna.storages.get_storage(url)

    try:
        for attempt in range(3):
            try:
                storage = connect()
                break
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as exc:
                if not _schema_race(exc):
                    raise
                time.sleep(1 + attempt)
        else:
            storage = connect()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        raise ConfigError(f"storage {masked_url(url)}: cannot open it: {_cause(exc)}") from None
    index_identities(storage)
    return storage


def _schema_race(exc: sqlalchemy.exc.SQLAlchemyError) -> bool:
    """Whether ``exc`` is two processes creating one schema at once (worth a retry), not a storage that is down."""
    text = str(exc).lower()
    return isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in text or "locked" in text


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def _cause(exc: BaseException) -> str:
    """The first line of the innermost error (a driver's own message rather than SQLAlchemy's wrapper)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0]}" if text else type(inner).__name__
