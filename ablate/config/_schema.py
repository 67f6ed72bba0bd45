"""What a setting may be: one set of rules for the trial config's fields and every component's parameters.

A setting's annotation is its rule: a type (``int``, ``float``, ``bool``, ``str``, ``None``, ``Literal``,
unions of them) and, through ``Annotated``, constraints beyond the type (:class:`Range`, :class:`Match`).
The same checks and one message format (``expected int >= 1, got 0``) serve the trial config, whose typed
sections are the dataclasses below, and the components, whose factory signatures are annotated alike.
The config's values come from ``defaults.yaml`` (data, not code): a field has its type here, its default there.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``name`` (ignoring case), or "" when none is close."""
    by_lower = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1)
    return f" (did you mean '{by_lower[close[0]]}'?)" if close else ""


@dataclass(frozen=True)
class Range:
    """Bounds on a number: ``Annotated[int, Range(low=1)]``, ``Annotated[float, Range(0, 1, high_open=True)]``.

    Args:
        low: the smallest allowed value (None: unbounded).
        high: the largest allowed value (None: unbounded).
        low_open: exclude ``low`` itself.
        high_open: exclude ``high`` itself.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: Any) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    @property
    def text(self) -> str:
        """``>= 1``, ``in [0, 1)``, ``> 0``."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "finite"


@dataclass(frozen=True)
class Match:
    """A string matching ``pattern`` in full, described by ``text``: ``Annotated[str, Match(r"cuda(:\\d+)?", ...)]``."""

    pattern: str
    text: str

    def holds(self, value: Any) -> bool:
        return re.fullmatch(self.pattern, value) is not None


def _constraints(annotation: Any) -> tuple[Any, list[Range | Match]]:
    """The type under ``Annotated`` and its constraints (``annotation`` and none when not annotated)."""
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        return base, [e for e in extras if isinstance(e, Range | Match)]
    return annotation, []


def fits(annotation: Any, value: Any) -> bool | None:
    """Whether ``value`` fits ``annotation``: True, False, or None where the annotation is beyond these checks."""
    annotation, constraints = _constraints(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        verdicts = [fits(member, value) for member in typing.get_args(annotation)]
        return True if True in verdicts else (None if None in verdicts else False)
    if origin is Literal:
        verdict: bool | None = value in typing.get_args(annotation)
    elif annotation is type(None):
        verdict = value is None
    elif annotation is float:
        verdict = isinstance(value, int | float) and not isinstance(value, bool)
    elif annotation is int:
        verdict = isinstance(value, int) and not isinstance(value, bool)
    elif annotation in (bool, str):
        verdict = isinstance(value, annotation)
    else:
        return None  # anything else (sequences, mappings, classes): the factory checks it
    return verdict and all(c.holds(value) for c in constraints)


def type_text(annotation: Any) -> str:
    """``int >= 1``, ``float in [0, 1)``, ``one of constant, cosine``, ``int >= 1 or null``: how messages and
    ``ablate list`` write a rule."""
    annotation, constraints = _constraints(annotation)
    matches = [c.text for c in constraints if isinstance(c, Match)]
    if matches:  # a pattern's own words say more than "str"
        return " and ".join(matches)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        text = " or ".join(type_text(member) for member in typing.get_args(annotation))
    elif origin is Literal:
        text = "one of " + ", ".join(str(choice) for choice in typing.get_args(annotation))
    elif annotation is type(None):
        text = "null"
    elif isinstance(annotation, type) and typing.get_origin(annotation) is None:
        text = annotation.__name__
    else:
        text = str(annotation).replace("typing.", "").replace("collections.abc.", "")
    return " ".join([text, *(c.text for c in constraints if isinstance(c, Range))])


def problem(annotation: Any, value: Any) -> str | None:
    """``expected <rule>, got <value>`` if ``value`` breaks ``annotation`` (as far as :func:`fits` can tell);
    the value's type is named when the type is what is wrong (``got str '3'``)."""
    if fits(annotation, value) is not False:
        return None
    wrong_type = fits(_without_constraints(annotation), value) is False and not isinstance(value, bool | None)
    got = f"{type(value).__name__} {value!r}" if wrong_type else repr(value)
    if isinstance(value, float) and not math.isfinite(value):  # no bound says so: ``>= 0`` holds for inf
        got += " (numbers must be finite)"
    return f"expected {type_text(annotation)}, got {got}"


def _without_constraints(annotation: Any) -> Any:
    """The plain types behind ``annotation``: bounds dropped, a ``Literal`` as the types of its choices."""
    annotation, _ = _constraints(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_without_constraints(a) for a in typing.get_args(annotation))]  # noqa: UP007
    if origin is Literal:
        return typing.Union[tuple({type(choice) for choice in typing.get_args(annotation)})]  # noqa: UP007
    return annotation


#: A component slot of the config: ``{"name": ..., **params}``, checked against its registry.
Component = dict[str, Any]
NonNegativeInt = Annotated[int, Range(low=0)]
PositiveInt = Annotated[int, Range(low=1)]
Share = Annotated[float, Range(0, 1, high_open=True)]


@dataclass(frozen=True)
class NetworkConfig:
    """A ``teacher`` or ``student`` section."""

    backbone: Component
    head: Component
    align: Literal["class_map", "features"]  # the map L_tf compares
    pretrain: Component | None  # a pretrainer whose task the backbone learns first (null: from its initial weights)


@dataclass(frozen=True)
class TransferConfig:
    """The ``transfer`` section: the knowledge-transfer loss (the key ``lambda`` is the field ``lambda_``)."""

    lambda_: Annotated[float, Range(low=0)]
    level: Component
    distance: Component
    projection: Component


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` section: the training loop every paradigm runs."""

    epochs: PositiveInt
    batch_size: PositiveInt
    lr: Annotated[float, Range(low=0, low_open=True)]
    weight_decay: Annotated[float, Range(low=0)]
    augment: bool
    warmup: Share
    schedule: Literal["constant", "cosine"]
    ema: Share
    init_seed: NonNegativeInt | None
    compile: bool


@dataclass(frozen=True)
class SegmentTraining:
    """The harness's keys of the ``segment`` slot (stage 3): how the segmenter learns (defaults: ``defaults.yaml``)."""

    masks: Literal["pseudo", "ground_truth"]  # ground_truth: the fully supervised upper bound
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: Annotated[float, Range(low=0, low_open=True)]
    weight_decay: Annotated[float, Range(low=0)]
    optimizer: Literal["adamw", "poly_sgd"]
    ignore_band: NonNegativeInt  # pseudo-mask pixels this close to a boundary are left out of the loss
    augment: bool

    @classmethod
    def of(cls, spec: Component) -> SegmentTraining:
        """The training keys of a resolved ``segment`` spec."""
        return cls(**{field.name: spec[field.name] for field in dataclasses.fields(cls)})


@dataclass(frozen=True)
class TrialConfig:
    """A resolved trial config: every key of ``defaults.yaml``, typed (component slots stay mappings)."""

    name: str
    seed: NonNegativeInt
    device: Annotated[str, Match(r"auto|cpu|cuda(:\d+)?", "auto, cpu or cuda[:N]")]
    threads: PositiveInt | None
    frozen_outputs_mb: Annotated[float, Range(low=0)]
    data: Component
    teacher: NetworkConfig
    student: NetworkConfig
    paradigm: Component
    transfer: TransferConfig
    train: TrainConfig
    cam: Component
    postprocess: list[Component]
    segment: Component | None  # stage 3: a segmenter trained on the train pseudo-masks (null: none)
    metrics: list[str] | None
    plugins: list[str]

    def network(self, role: str) -> NetworkConfig:
        """The ``teacher`` or ``student`` section."""
        return {"teacher": self.teacher, "student": self.student}[role]

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> TrialConfig:
        """The typed form of a resolved config that :func:`schema_problems` found no problem in."""
        return _build(cls, config)

    def to_dict(self) -> dict[str, Any]:
        """The plain config again (YAML keys), as storage, cache keys and reports hold it."""
        return plain(self)


def _key(field: dataclasses.Field) -> str:
    return field.name.rstrip("_")  # a key that is a Python keyword (lambda) is a field with a trailing _


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A section's field annotations, ``Annotated`` kept (evaluated once: a 1,000-configuration grid asked 5,000
    times, which took most of its validation)."""
    return typing.get_type_hints(cls, include_extras=True)


def _build(cls: type, value: dict[str, Any]) -> Any:
    hints = _hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        item = value[_key(field)]
        kwargs[field.name] = _build(hints[field.name], item) if dataclasses.is_dataclass(hints[field.name]) else item
    return cls(**kwargs)


def plain(obj: Any) -> Any:
    """A config section (or the whole config) as the plain mapping of YAML keys that storage and cache keys hold."""
    if dataclasses.is_dataclass(obj):
        return {_key(f): plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return obj


def schema_problems(value: Any, cls: type = TrialConfig, where: str = "") -> list[str]:
    """Each problem of ``value`` against the dataclass ``cls``: unknown or missing keys, types, bounds.

    Component slots and lists are left to their own checks (the registries know their parameters).
    """
    if not isinstance(value, dict):
        return [f"{where.rstrip('.') or 'config'}: expected a mapping, got {value!r}"]
    hints = _hints(cls)
    fields = {_key(f): f for f in dataclasses.fields(cls)}
    problems = [f"{where}{key}: unknown key{did_you_mean(key, fields)}" for key in value if key not in fields]
    for key, field in fields.items():
        if key not in value:
            problems.append(f"{where}{key}: missing")
            continue
        annotation = hints[field.name]
        if dataclasses.is_dataclass(annotation):
            problems += schema_problems(value[key], annotation, f"{where}{key}.")
        elif (message := problem(annotation, value[key])) is not None:
            problems.append(f"{where}{key}: {message}")
    return problems
