"""Published numbers a study is compared with: the "paper" column of the report's paper-layout tables.

A reference file (YAML) holds a metric, a ``source`` line and up to three tables, each keyed by
component names as a config writes them: ``transfer`` (paradigm x distance x level), ``lambda``
(lambda -> value) and ``postprocess`` (chain of post-processor names -> best and worse seed). The
harness knows no paper: a study names its reference with ``reference: path`` (relative to the study file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate._registries import DISTANCES, LEVELS, METRICS, PARADIGMS, POSTPROCESSORS
from ablate._registry import Registry
from ablate.config._resolve import ConfigError, load_yaml

REFERENCE_KEYS = ("source", "metric", "transfer", "lambda", "postprocess")
TRANSFER_ROLES = ("paradigm", "distance", "level")


@dataclass(frozen=True)
class Reference:
    """The published numbers of one reference file.

    Attributes:
        path: the file.
        source: what the numbers are (shown in table notes).
        metric: the metric they are in; tables show them only when the study's objective is this metric.
        transfer: (paradigm, distance, level) component names -> value.
        lambdas: lambda -> value.
        postprocess: chain of post-processor names -> (best seed, worse seed), None where not given.
    """

    path: Path
    source: str
    metric: str
    transfer: dict[tuple[str, str, str], float] = field(default_factory=dict)
    lambdas: dict[float, float] = field(default_factory=dict)
    postprocess: dict[tuple[str, ...], tuple[float | None, float | None]] = field(default_factory=dict)


def _number(value: Any, where: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number{' or null' if optional else ''}, got {value!r}")
    return float(value)


def _registered(names: list[str] | tuple[str, ...], registry: Registry, where: str) -> None:
    for name in names:
        if name not in registry:
            raise ConfigError(f"{where}: {registry.unknown_message(name)}")


def _rows(raw: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    rows = raw.get(key) or []
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{path}: {key}: expected a list of mappings")
    return rows


def load_reference(path: str | Path) -> Reference:
    """Read and check a reference file.

    Raises:
        ConfigError: naming the file and the field of every problem found first.
    """
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with {', '.join(REFERENCE_KEYS)}")
    unknown = [k for k in raw if k not in REFERENCE_KEYS]
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key; a reference has {', '.join(REFERENCE_KEYS)}")
    if not isinstance(raw.get("metric"), str):
        raise ConfigError(f"{path}: metric: expected the metric name its numbers are in")
    _registered([raw["metric"]], METRICS, f"{path}: metric")
    transfer = {}
    for i, row in enumerate(_rows(raw, "transfer", path)):
        where = f"{path}: transfer[{i}]"
        if any(not isinstance(row.get(role), str) for role in TRANSFER_ROLES):
            raise ConfigError(f"{where}: expected {', '.join(TRANSFER_ROLES)} (component names) and value")
        for role, registry in zip(TRANSFER_ROLES, (PARADIGMS, DISTANCES, LEVELS), strict=True):
            _registered([row[role]], registry, f"{where}.{role}")
        transfer[tuple(row[role] for role in TRANSFER_ROLES)] = _number(row.get("value"), f"{where}.value")
    lambdas = raw.get("lambda") or {}
    if not isinstance(lambdas, dict):
        raise ConfigError(f"{path}: lambda: expected a mapping of lambda -> value")
    postprocess = {}
    for i, row in enumerate(_rows(raw, "postprocess", path)):
        where = f"{path}: postprocess[{i}]"
        chain = row.get("chain")
        if not isinstance(chain, list) or not all(isinstance(step, str) for step in chain):
            raise ConfigError(f"{where}.chain: expected a list of post-processor names")
        _registered(chain, POSTPROCESSORS, f"{where}.chain")
        seeds = (_number(row.get(k), f"{where}.{k}", optional=True) for k in ("best_seed", "worse_seed"))
        postprocess[tuple(chain)] = tuple(seeds)
    return Reference(
        path=path,
        source=str(raw.get("source") or path.name),
        metric=raw["metric"],
        transfer=transfer,
        lambdas={_number(k, f"{path}: lambda key"): _number(v, f"{path}: lambda.{k}") for k, v in lambdas.items()},
        postprocess=postprocess,
    )
