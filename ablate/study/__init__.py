"""Studies: the study file (:func:`load_study`), and the runner that works through its (configuration, seed) pairs.

The runner's steps each have a module: the queue and its atomic claims (``_queue``), new configurations of a
tuning study (``_sampling``), pruning (``_pruning``), worker heartbeats and stale trials (``_workers``), the printed
progress (``_progress``), what a finished trial leaves behind (``_record``), and the loop with its error policy
(``_runner``). What a study has stored is read through :class:`ablate.storage.StoredStudy`.
"""

from ablate.study._pruning import PRUNERS, PrunerSpec, parse_pruner
from ablate.study._runner import PrunerError, RunOutcome, StudyRunner
from ablate.study._spec import SAMPLERS, STORED, STUDY_KEYS, Distribution, Objective, Study, load_study
from ablate.study._workers import STALE_AFTER, WORKER, stale_reason

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "STALE_AFTER",
    "STORED",
    "STUDY_KEYS",
    "WORKER",
    "Distribution",
    "Objective",
    "PrunerError",
    "PrunerSpec",
    "RunOutcome",
    "Study",
    "StudyRunner",
    "load_study",
    "parse_pruner",
    "stale_reason",
]
