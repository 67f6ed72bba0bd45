"""Trial configuration: defaults, YAML loading, dotted overrides and validation.

A config is a plain nested dict. Component slots hold ``{"name": ..., **params}`` (a bare
string is shorthand for ``{"name": ...}``); which registry each slot draws from is listed in
:data:`COMPONENT_SLOTS`, so validation needs no knowledge of any specific variant.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ablate._registry import did_you_mean

#: The default trial config, read from ``defaults.yaml`` beside this module (data: the harness names no component).
DEFAULTS: dict[str, Any] = yaml.safe_load((Path(__file__).with_name("defaults.yaml")).read_text(encoding="utf-8"))

#: Dotted path of every component slot -> registry kind it is looked up in.
COMPONENT_SLOTS: dict[str, str] = {
    "data": "datasets",
    "teacher.backbone": "backbones",
    "teacher.head": "heads",
    "student.backbone": "backbones",
    "student.head": "heads",
    "paradigm": "paradigms",
    "transfer.level": "levels",
    "transfer.distance": "distances",
    "transfer.projection": "projections",
    "cam": "cams",
}
ROLES = ("teacher", "student")
ALIGN_CHOICES = ("class_map", "features")
CAM_NETWORKS = ("auto", "student", "teacher", "both")
SCHEDULES = ("constant", "cosine")
#: Top-level keys that say how a trial runs, not what it computes: two configs differing only in them are one trial.
EXECUTION_KEYS = ("name", "device", "threads", "frozen_outputs_mb")


class ConfigError(ValueError):
    """A config problem; the message names the file and/or dotted field."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (the first one would be ignored)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path) -> Any:
    """Safe-load ``path``; syntax errors and duplicate keys name the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


def get_dotted(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def set_dotted(config: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in place (``postprocess.0.value`` indexes a list); a component slot given as a
    string becomes ``{"name": ...}`` first."""
    parts = path.split(".")
    node: Any = config
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            index = _index(node, part, path)
            if isinstance(node[index], str):
                node[index] = {"name": node[index]}
            node = node[index]
            continue
        child = node.get(part)
        if isinstance(child, str) and (".".join(parts[: i + 1]) in COMPONENT_SLOTS or parts[0] == "postprocess"):
            child = {"name": child}
        if not isinstance(child, dict | list):
            child = {}
        node[part] = child
        node = child
    if isinstance(node, list):
        node[_index(node, parts[-1], path)] = value
    else:
        node[parts[-1]] = value


def _index(items: list[Any], part: str, path: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(items) <= int(part) < len(items):
        raise ConfigError(f"{path}: '{part}' is not an index of a list of {len(items)} items")
    return int(part)


def _as_component(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


def merge(base: dict[str, Any], override: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Deep-merge ``override`` onto ``base``; a component slot whose ``name`` (or a required parameter,
    such as a backbone's ``model``) changes is replaced whole, so the previous component's parameters
    never leak into the new one."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        path = f"{prefix}{key}"
        if path in COMPONENT_SLOTS:
            value = _as_component(value)
            old = _as_component(out.get(key))
            if isinstance(value, dict) and isinstance(old, dict) and _same_component(path, old, value):
                out[key] = merge(old, value, f"{path}.")
            elif isinstance(value, dict) and isinstance(old, dict) and "name" not in value:
                out[key] = {"name": old.get("name"), **copy.deepcopy(value)}  # same component, new instance
            else:
                out[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, f"{path}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _same_component(slot: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether ``new`` only tunes ``old``: same name and the same required parameters (which identify
    the instance, e.g. a backbone's ``model``)."""
    from ablate._registries import ALL

    name = new.get("name", old.get("name"))
    if name != old.get("name"):
        return False
    registry = ALL[COMPONENT_SLOTS[slot]]
    required = [p.name for p in registry.get(name).params if p.required] if name in registry else []
    return all(new.get(k, old.get(k)) == old.get(k) for k in required)


def resolve(config: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults + ``config`` + dotted ``overrides``, component slots in normal form."""
    result = merge(DEFAULTS, config or {})
    for path, value in (overrides or {}).items():
        set_dotted(result, path, value)
    for slot in COMPONENT_SLOTS:
        try:
            value = get_dotted(result, slot)
        except KeyError:
            continue
        set_dotted(result, slot, _as_component(value))
    result["postprocess"] = [_as_component(step) for step in result.get("postprocess") or []]
    return result


def _unknown_keys(section: dict[str, Any], allowed: dict[str, Any], where: str) -> list[str]:
    problems = []
    for key in section:
        if key not in allowed:
            problems.append(f"{where}{key}: unknown key{did_you_mean(key, allowed)}")
    return problems


def check(config: dict[str, Any]) -> list[str]:
    """Structural problems of a resolved config, each prefixed with its dotted field."""
    from ablate._registries import ALL

    problems = _unknown_keys(config, DEFAULTS, "")
    for section in ("train", "teacher", "student", "transfer"):
        value = config.get(section)
        if not isinstance(value, dict):
            problems.append(f"{section}: expected a mapping, got {value!r}")
            continue
        problems += _unknown_keys(value, DEFAULTS[section], f"{section}.")
    for role in ROLES:
        align = config.get(role, {}).get("align") if isinstance(config.get(role), dict) else None
        if align not in ALIGN_CHOICES:
            problems.append(f"{role}.align: expected one of {', '.join(ALIGN_CHOICES)}, got {align!r}")
    problems += _check_numbers(config)
    for slot, kind in COMPONENT_SLOTS.items():
        try:
            spec = get_dotted(config, slot)
        except KeyError:
            continue
        problems += _check_component(spec, slot, ALL[kind])
    cam = config.get("cam", {})
    if isinstance(cam, dict) and cam.get("network", "auto") not in CAM_NETWORKS:
        problems.append(f"cam.network: expected one of {', '.join(CAM_NETWORKS)}, got {cam.get('network')!r}")
    steps = config.get("postprocess")
    if not isinstance(steps, list):
        problems.append(f"postprocess: expected a list of steps, got {steps!r}")
    else:
        for i, step in enumerate(steps):
            problems += _check_component(step, f"postprocess[{i}]", ALL["postprocessors"])
    metrics = config.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list):
            problems.append(f"metrics: expected a list of metric names, got {metrics!r}")
        else:
            problems += [f"metrics: {ALL['metrics'].unknown_message(m)}" for m in metrics if m not in ALL["metrics"]]
    if not isinstance(config.get("plugins"), list):
        problems.append("plugins: expected a list of module names")
    return problems


def _check_numbers(config: dict[str, Any]) -> list[str]:
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    rules = [
        ("seed", config.get("seed"), int, lambda v: v >= 0, "a non-negative integer"),
        ("threads", config.get("threads"), (int, type(None)), lambda v: v is None or v >= 1, "null or >= 1"),
        ("frozen_outputs_mb", config.get("frozen_outputs_mb"), (int, float), lambda v: v >= 0, "a number >= 0"),
        ("train.epochs", train.get("epochs"), int, lambda v: v >= 1, "an integer >= 1"),
        ("train.batch_size", train.get("batch_size"), int, lambda v: v >= 1, "an integer >= 1"),
        ("train.lr", train.get("lr"), (int, float), lambda v: v > 0, "a number > 0"),
        ("train.weight_decay", train.get("weight_decay"), (int, float), lambda v: v >= 0, "a number >= 0"),
        ("train.augment", train.get("augment"), bool, lambda v: True, "true or false"),
        ("train.warmup", train.get("warmup"), (int, float), lambda v: 0 <= v < 1, "a number in [0, 1)"),
        ("train.ema", train.get("ema"), (int, float), lambda v: 0 <= v < 1, "a number in [0, 1)"),
        ("train.init_seed", train.get("init_seed"), (int, type(None)), lambda v: v is None or v >= 0, "null or >= 0"),
        ("train.schedule", train.get("schedule"), str, lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
        (
            "device",
            config.get("device"),
            str,
            lambda v: v in ("auto", "cpu") or v.startswith("cuda"),
            "auto, cpu or cuda[:N]",
        ),
    ]
    transfer = config.get("transfer")
    if isinstance(transfer, dict):
        rules.append(("transfer.lambda", transfer.get("lambda"), (int, float), lambda v: v >= 0, "a number >= 0"))
    problems = []
    for field, value, types, ok, expected in rules:
        bad_type = not isinstance(value, types) or (isinstance(value, bool) and types is not bool)
        if bad_type or not ok(value):
            problems.append(f"{field}: expected {expected}, got {value!r}")
    return problems


def _check_component(spec: Any, field: str, registry: Any) -> list[str]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        return [f"{field}: expected a component name or a mapping with 'name', got {spec!r}"]
    if spec["name"] not in registry:
        return [f"{field}.name: {registry.unknown_message(spec['name'])}"]
    return [f"{field}: {p}" for p in registry.check_params(spec["name"], registry.spec_params(spec))]
