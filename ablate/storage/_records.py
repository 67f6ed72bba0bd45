"""The stored form of a study's trials: parameters as Optuna choices, the identity of a (configuration, seed)
pair, the user attributes of a completed trial and the name of its files."""

from __future__ import annotations

import json
from typing import Any

from ablate import __version__ as ablate_version
from ablate.cache._store import stable_hash

#: Prefix of one metric of a completed trial: its user attribute and its trials-table column (``metric.smoke_iou``).
METRIC_PREFIX = "metric."


def encode(value: Any) -> Any:
    """An Optuna categorical choice: scalars as they are, anything else as canonical JSON."""
    return value if value is None or isinstance(value, bool | int | float | str) else json.dumps(value, sort_keys=True)


def decode(value: Any) -> Any:
    """A stored parameter value: the JSON text :func:`encode` makes of lists and mappings decoded."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def config_id(params: dict[str, Any]) -> str:
    return stable_hash(params)


def identity(params: dict[str, Any], seed: int) -> str:
    return stable_hash({"params": params, "seed": seed})


def trial_stem(study_name: str, optuna_name: str, number: int) -> str:
    """The name of a trial's files in the study folder (gallery, traceback log, tracker run, export):
    ``trial-<n>``, prefixed by the Optuna study's name (``<name>.2-trial-<n>``) in a study started with ``--new``,
    whose trial numbers start at 0 again beside the old study's files."""
    return f"trial-{number}" if optuna_name == study_name else f"{optuna_name}-trial-{number}"


def result_attrs(result: Any, runtime: float) -> dict[str, Any]:
    """The user attributes a completed trial stores: what status, the report and export read back."""
    return {
        "metrics": result.metrics,
        "per_image_iou": result.per_image_iou,
        **({"seg_per_image_iou": result.seg_per_image_iou} if result.seg_per_image_iou is not None else {}),
        "timings": result.timings,
        "trainings": result.trainings,
        "oracle": result.oracle,
        "marks": result.marks,
        "runtime": runtime,
        "device": result.device,
        "names": result.names,
        "config": result.config,  # resolved: what `ablate export` hands on with the weights
        "checkpoints": result.checkpoints,
        "ablate_version": ablate_version,
        "code": result.code,
        # one attribute per metric and the training curves, which the dashboard sorts, filters and plots
        **{f"{METRIC_PREFIX}{name}": value for name, value in result.metrics.items()},
        "history": result.history,
    }
