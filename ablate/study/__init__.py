"""Studies: the study file (:func:`load_study`), and the runner that works through its (configuration, seed) pairs.

The runner's steps each have a module: the queue and its atomic claims (``_queue``), new configurations of a
tuning study (``_sampling``), pruning (``_pruning``), racing over seeds (``_race``), worker heartbeats and stale
trials (``_workers``), the printed progress (``_progress``), what a finished trial leaves behind (``_record``), and
the loop with its error policy (``_runner``). What a study has stored is read through
:class:`ablate.storage.StoredStudy`.
"""

from ablate.study._load import load_study
from ablate.study._pruning import PRUNERS, PrunerSpec, parse_pruner
from ablate.study._race import RACE_KEYS, Comparison, RacePlan, RaceSpec, baseline_of, oriented, race_plan, study_plan
from ablate.study._runner import PrunerError, RunOutcome, StudyRunner
from ablate.study._spec import SAMPLERS, STORED, STUDY_KEYS, Distribution, Objective, Study
from ablate.study._workers import STALE_AFTER, WORKER, interrupt, interrupt_taken, stale_reason

__all__ = [
    "PRUNERS",
    "RACE_KEYS",
    "SAMPLERS",
    "STALE_AFTER",
    "STORED",
    "STUDY_KEYS",
    "WORKER",
    "Comparison",
    "Distribution",
    "Objective",
    "PrunerError",
    "PrunerSpec",
    "RacePlan",
    "RaceSpec",
    "RunOutcome",
    "Study",
    "StudyRunner",
    "baseline_of",
    "interrupt",
    "interrupt_taken",
    "load_study",
    "oriented",
    "parse_pruner",
    "race_plan",
    "stale_reason",
    "study_plan",
]
