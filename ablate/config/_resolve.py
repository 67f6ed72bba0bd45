"""Trial configuration: defaults, YAML loading, dotted overrides and validation.

A config is a plain nested dict until it is validated (its schema, and the typed form the harness reads,
is :class:`ablate.TrialConfig` in ``_schema``). Component slots hold ``{"name": ..., **params}`` (a bare
string is shorthand for ``{"name": ...}``); which registry each slot draws from is listed in
:data:`COMPONENT_SLOTS`, so validation needs no knowledge of any specific variant.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

#: The default trial config, read from ``defaults.yaml`` beside this module (data: the harness names no component).
DEFAULTS: dict[str, Any] = yaml.safe_load((Path(__file__).with_name("defaults.yaml")).read_text(encoding="utf-8"))
#: The defaults of the ``segment`` slot's training keys (:class:`ablate.SegmentTraining`), filled in when it is set.
SEGMENT_TRAINING: dict[str, Any] = DEFAULTS.pop("segment_training")

#: Dotted path of every component slot -> registry kind it is looked up in.
COMPONENT_SLOTS: dict[str, str] = {
    "data": "datasets",
    "teacher.backbone": "backbones",
    "teacher.head": "heads",
    "student.backbone": "backbones",
    "student.head": "heads",
    "teacher.pretrain": "pretrainers",
    "student.pretrain": "pretrainers",
    "paradigm": "paradigms",
    "transfer.level": "levels",
    "transfer.distance": "distances",
    "transfer.projection": "projections",
    "cam": "cams",
    "segment": "segmenters",
}
#: Component slots that may be null (the step is skipped).
OPTIONAL_SLOTS = ("teacher.pretrain", "student.pretrain", "segment")
#: Keys added after studies were first stored, with the value that keeps the earlier behaviour: a study's
#: signature leaves them out while they hold it, so studies stored before the key existed still resume.
LATER_KEYS: dict[str, Any] = {**dict.fromkeys(OPTIONAL_SLOTS), "train.compile": False}
ROLES = ("teacher", "student")
CAM_NETWORKS = ("auto", "student", "teacher", "both")
#: Top-level keys that say how a trial runs, not what it computes: two configs differing only in them are one trial.
EXECUTION_KEYS = ("name", "device", "threads", "frozen_outputs_mb")


class ConfigError(ValueError):
    """A config problem; the message names the file and/or dotted field."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last one silently) and reading
    exponent floats without a dot."""

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


# YAML 1.1 (PyYAML's rule) reads a float only with a dot: `lr: 3e-4` and `1e8` would be strings, refused as
# "expected float". Users write them the YAML 1.2 / JSON / Python way, which this adds (after the 1.1 rules, so
# every value that was a number stays the same number).
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


# YAML 1.1 also reads yes/no/on/off as booleans: the pruner's documented key `on: tf` became `True: tf`. Only
# true/false are booleans here, as in YAML 1.2 and JSON; a bool parameter given `yes` is refused as "expected bool".
_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def parse_yaml(text: str) -> Any:
    """Safe-load a YAML string with the rules of :func:`load_yaml` (a ``--set`` value)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


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
        return parse_yaml(text)
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
        if child is None and parts[i + 1].isdigit():  # an absent list has no items to index
            child = []
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
        if value is not None or slot not in OPTIONAL_SLOTS:
            set_dotted(result, slot, _as_component(value))
    steps = result.get("postprocess") or []
    if isinstance(steps, list):  # anything else is named by check(), not split into characters or keys
        result["postprocess"] = [_as_component(step) for step in steps]
    if isinstance(result.get("segment"), dict):
        result["segment"] = {"name": result["segment"].get("name"), **SEGMENT_TRAINING, **result["segment"]}
    return result
