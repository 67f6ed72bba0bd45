"""Storage: where a study's trials live (Optuna storage: SQLite in the study folder, or any URL) and how they are read.

Only :mod:`ablate.storage._optuna` uses Optuna's private names. :class:`StoredStudy` is the read-only view that
``status``, the report and ``export`` use; the study runner writes through the same functions.
"""

from ablate.storage._connect import masked_url, missing_sqlite_file, open_storage, storage_url, study_folder
from ablate.storage._optuna import (
    StoredTrial,
    ask_new,
    claim_waiting,
    claimed_trial,
    identity_holders,
    record_trial,
    study_id,
    study_lock,
    tell,
    trial_id,
    trial_keys_from,
    waiting_trial_ids,
)
from ablate.storage._records import METRIC_PREFIX, config_id, decode, encode, identity, result_attrs, trial_stem
from ablate.storage._stored import StoredStudy

__all__ = [
    "METRIC_PREFIX",
    "StoredStudy",
    "StoredTrial",
    "ask_new",
    "claim_waiting",
    "claimed_trial",
    "config_id",
    "decode",
    "encode",
    "identity",
    "identity_holders",
    "masked_url",
    "missing_sqlite_file",
    "open_storage",
    "record_trial",
    "result_attrs",
    "storage_url",
    "study_folder",
    "study_id",
    "study_lock",
    "tell",
    "trial_id",
    "trial_keys_from",
    "trial_stem",
    "waiting_trial_ids",
]
