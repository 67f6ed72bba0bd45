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

Names are imported when first used (``ablate.run_trial``, ``from ablate import BACKBONES``), so a command that
needs none of torch, timm or Optuna (``ablate --version``, ``ablate list`` from its cached index) starts at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> (module, name in it)
_EXPORTS: dict[str, tuple[str, str]] = {
    "BACKBONES": ("ablate._registries", "BACKBONES"),
    "CAMS": ("ablate._registries", "CAMS"),
    "CLASSES": ("ablate.pipeline._data", "CLASSES"),
    "classification_loss": ("ablate.pipeline._paradigm", "classification_loss"),
    "ConfigError": ("ablate.config._resolve", "ConfigError"),
    "confusion_matrix": ("ablate.pipeline._metrics", "confusion_matrix"),
    "Dataset": ("ablate.pipeline._data", "Dataset"),
    "DATASETS": ("ablate._registries", "DATASETS"),
    "DEFAULTS": ("ablate.config._resolve", "DEFAULTS"),
    "did_you_mean": ("ablate.config._schema", "did_you_mean"),
    "DISTANCES": ("ablate._registries", "DISTANCES"),
    "Diverged": ("ablate.pipeline._loop", "Diverged"),
    "Evaluation": ("ablate.pipeline._evaluation", "Evaluation"),
    "fingerprint_arrays": ("ablate.pipeline._data", "fingerprint_arrays"),
    "FrozenFeed": ("ablate.pipeline._train", "FrozenFeed"),
    "HEADS": ("ablate._registries", "HEADS"),
    "iou_at_thresholds": ("ablate.pipeline._metrics", "iou_at_thresholds"),
    "LEVELS": ("ablate._registries", "LEVELS"),
    "load_components": ("ablate._plugins", "load_components"),
    "load_results": ("ablate._results", "load_results"),
    "LOGGERS": ("ablate._registries", "LOGGERS"),
    "Match": ("ablate.config._schema", "Match"),
    "mean_defined": ("ablate.pipeline._metrics", "mean_defined"),
    "METRICS": ("ablate._registries", "METRICS"),
    "minmax": ("ablate.pipeline._cams", "minmax"),
    "Network": ("ablate.pipeline._models", "Network"),
    "NetworkOutput": ("ablate.pipeline._models", "NetworkOutput"),
    "ORACLE_THRESHOLDS": ("ablate.pipeline._metrics", "ORACLE_THRESHOLDS"),
    "PARADIGMS": ("ablate._registries", "PARADIGMS"),
    "per_image_iou": ("ablate.pipeline._metrics", "per_image_iou"),
    "PostContext": ("ablate.pipeline._postprocess", "PostContext"),
    "POSTPROCESSORS": ("ablate._registries", "POSTPROCESSORS"),
    "PostState": ("ablate.pipeline._postprocess", "PostState"),
    "PRETRAINERS": ("ablate._registries", "PRETRAINERS"),
    "Pretraining": ("ablate.pipeline._data", "Pretraining"),
    "PROJECTIONS": ("ablate._registries", "PROJECTIONS"),
    "Range": ("ablate.config._schema", "Range"),
    "SEGMENTERS": ("ablate._registries", "SEGMENTERS"),
    "SegmentTraining": ("ablate.config._schema", "SegmentTraining"),
    "ratio": ("ablate.pipeline._metrics", "ratio"),
    "REGISTRIES": ("ablate._registries", "ALL"),
    "Registry": ("ablate._registry", "Registry"),
    "RegistryError": ("ablate._registry", "RegistryError"),
    "resolve_module": ("ablate.pipeline._models", "resolve_module"),
    "run_trial": ("ablate.pipeline._trial", "run_trial"),
    "Split": ("ablate.pipeline._data", "Split"),
    "StageCache": ("ablate.cache._store", "StageCache"),
    "Trainer": ("ablate.pipeline._train", "Trainer"),
    "TrialConfig": ("ablate.config._schema", "TrialConfig"),
    "TrialResult": ("ablate.pipeline._trial", "TrialResult"),
    "validate": ("ablate.config._check", "validate"),
}

if TYPE_CHECKING:
    from ablate._plugins import load_components
    from ablate._registries import ALL as REGISTRIES
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
        SEGMENTERS,
    )
    from ablate._registry import Registry, RegistryError
    from ablate._results import load_results
    from ablate.cache._store import StageCache
    from ablate.config._check import validate
    from ablate.config._resolve import DEFAULTS, ConfigError
    from ablate.config._schema import Match, Range, SegmentTraining, TrialConfig, did_you_mean
    from ablate.pipeline._cams import minmax
    from ablate.pipeline._data import CLASSES, Dataset, Pretraining, Split, fingerprint_arrays
    from ablate.pipeline._evaluation import Evaluation
    from ablate.pipeline._loop import Diverged
    from ablate.pipeline._metrics import (
        ORACLE_THRESHOLDS,
        confusion_matrix,
        iou_at_thresholds,
        mean_defined,
        per_image_iou,
        ratio,
    )
    from ablate.pipeline._models import Network, NetworkOutput, resolve_module
    from ablate.pipeline._paradigm import classification_loss
    from ablate.pipeline._postprocess import PostContext, PostState
    from ablate.pipeline._train import FrozenFeed, Trainer
    from ablate.pipeline._trial import TrialResult, run_trial


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ablate' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


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
    "SEGMENTERS",
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
    "SegmentTraining",
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
