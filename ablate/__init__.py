"""ablate: an ablation-study harness for weakly supervised semantic segmentation.

The path of one trial: config -> data -> train -> CAMs -> post-processing -> metrics ->
storage -> report. Component variants live in the ``components`` package and register
themselves in the registries re-exported here.
"""

from ablate._cache import StageCache
from ablate._config import DEFAULTS, ConfigError
from ablate._data import CLASSES, Dataset, Split
from ablate._evaluation import Evaluation
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
    METRICS,
    PARADIGMS,
    POSTPROCESSORS,
    PROJECTIONS,
)
from ablate._registry import Registry, RegistryError
from ablate._train import Diverged, Trainer
from ablate._trial import TrialResult, run_trial, validate

__version__ = "0.1.0"

__all__ = [
    "BACKBONES",
    "CAMS",
    "CLASSES",
    "DEFAULTS",
    "DATASETS",
    "DISTANCES",
    "HEADS",
    "LEVELS",
    "METRICS",
    "PARADIGMS",
    "POSTPROCESSORS",
    "PROJECTIONS",
    "REGISTRIES",
    "ConfigError",
    "Dataset",
    "Diverged",
    "Evaluation",
    "PostContext",
    "PostState",
    "Registry",
    "RegistryError",
    "Split",
    "StageCache",
    "Trainer",
    "TrialResult",
    "__version__",
    "load_components",
    "run_trial",
    "validate",
]
