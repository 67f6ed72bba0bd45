"""ablate: an ablation-study harness for weakly supervised semantic segmentation.

The path of one trial: config -> data -> train -> CAMs -> post-processing -> metrics ->
storage -> report. Component variants live in the ``components`` package and register
themselves in the registries re-exported here.

Everything a component (built-in or plugin) needs is a public name of this module: the
registries, the contracts each kind's objects are passed or return (:class:`Dataset` and
:class:`Split`, :class:`Network` and :class:`NetworkOutput`, :class:`Trainer` and :class:`FrozenFeed`,
:class:`PostState` and :class:`PostContext`, :class:`Evaluation`) and the helpers the built-in
variants share (metric arithmetic, the classification loss, layer lookup, array fingerprints).
A component imports nothing from the private ``ablate._*`` modules, so those may change freely.
"""

from ablate._cache import StageCache
from ablate._cams import minmax
from ablate._config import DEFAULTS, ConfigError
from ablate._data import CLASSES, Dataset, Pretraining, Split, fingerprint_arrays
from ablate._evaluation import Evaluation
from ablate._metrics import ORACLE_THRESHOLDS, confusion_matrix, iou_at_thresholds, mean_defined, per_image_iou, ratio
from ablate._models import Network, NetworkOutput, resolve_module
from ablate._paradigm import classification_loss
from ablate._plugins import load_components
from ablate._postprocess import PostContext, PostState
from ablate._registries import (
    ALL as REGISTRIES,
)
from ablate._registries import (
    BACKBONES,
    CAMS,
    DATASETS,
    DISTANCES,
    HEADS,
    LEVELS,
    LOGGERS,
    METRICS,
    PARADIGMS,
    POSTPROCESSORS,
    PRETRAINERS,
    PROJECTIONS,
)
from ablate._registry import Registry, RegistryError
from ablate._schema import Match, Range, TrialConfig, did_you_mean
from ablate._train import Diverged, FrozenFeed, Trainer
from ablate._trial import TrialResult, run_trial
from ablate._validate import validate

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # the results API imports Optuna and SQLAlchemy: only for those who ask for it
    if name == "load_results":
        from ablate._results import load_results

        return load_results
    raise AttributeError(f"module 'ablate' has no attribute {name!r}")


__all__ = [
    "BACKBONES",
    "CAMS",
    "CLASSES",
    "ORACLE_THRESHOLDS",
    "DEFAULTS",
    "DATASETS",
    "DISTANCES",
    "HEADS",
    "LEVELS",
    "LOGGERS",
    "METRICS",
    "PARADIGMS",
    "POSTPROCESSORS",
    "PRETRAINERS",
    "PROJECTIONS",
    "REGISTRIES",
    "ConfigError",
    "Dataset",
    "Diverged",
    "Evaluation",
    "FrozenFeed",
    "Match",
    "Network",
    "NetworkOutput",
    "PostContext",
    "PostState",
    "Pretraining",
    "Range",
    "Registry",
    "RegistryError",
    "Split",
    "StageCache",
    "Trainer",
    "TrialConfig",
    "TrialResult",
    "__version__",
    "classification_loss",
    "confusion_matrix",
    "did_you_mean",
    "fingerprint_arrays",
    "iou_at_thresholds",
    "load_components",
    "load_results",
    "mean_defined",
    "minmax",
    "per_image_iou",
    "ratio",
    "resolve_module",
    "run_trial",
    "validate",
]
