"""The rules of a setting (types, bounds, patterns) and the trial config's typed schema."""

from __future__ import annotations

import copy
import math
from typing import Annotated, Literal

import pytest

from ablate import DEFAULTS, Match, Range, Registry, TrialConfig
from ablate.config._schema import fits, problem, schema_problems, type_text

Share = Annotated[float, Range(0, 1, high_open=True)]


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (Range(low=1), ">= 1"),
        (Range(low=0, low_open=True), "> 0"),
        (Range(high=2.5), "<= 2.5"),
        (Range(0, 1, high_open=True), "in [0, 1)"),
        (Range(0, 1, low_open=True), "in (0, 1]"),
    ],
)
def test_range_text(rule: Range, text: str) -> None:
    assert rule.text == text


@pytest.mark.parametrize(
    ("annotation", "good", "bad"),
    [
        (Share, [0, 0.5, 0.999], [1.0, -0.1, float("nan"), True, "0.5"]),
        (Annotated[int, Range(low=1)], [1, 7], [0, 1.0, False]),
        (Annotated[int, Range(low=1)] | None, [None, 3], [0, "3"]),
        (Literal["a", "b"], ["a"], ["c", 1]),
        (Annotated[str, Match(r"cuda(:\d+)?", "cuda[:N]")], ["cuda", "cuda:1"], ["cuda:", "gpu", 3]),
    ],
)
def test_values_fit_their_rule(annotation: object, good: list, bad: list) -> None:
    assert all(fits(annotation, value) for value in good)
    assert not any(fits(annotation, value) for value in bad)


def test_messages_write_the_rule_and_name_a_wrong_type() -> None:
    assert problem(Share, 1.0) == "expected float in [0, 1), got 1.0"
    assert problem(Share, "x") == "expected float in [0, 1), got str 'x'"
    assert problem(Annotated[int, Range(low=1)] | None, 0) == "expected int >= 1 or null, got 0"
    # a lambda of .inf broke no bound that the message named ("expected float >= 0, got inf")
    assert problem(Annotated[float, Range(low=0)], math.inf) == "expected float >= 0, got inf (numbers must be finite)"
    assert problem(Literal["a", "b"], "c") == "expected one of a, b, got 'c'"  # the right type, not a choice
    assert problem(Literal["a", "b"], 3) == "expected one of a, b, got int 3"
    assert problem(list[int], "anything") is None  # beyond these rules: the factory decides
    assert type_text(Annotated[str, Match("x", "auto or cpu")]) == "auto or cpu"


def test_a_component_parameter_takes_its_bounds_from_its_annotation() -> None:
    registry = Registry("widgets", "factory(**params)")

    @registry.register("knob")
    def knob(turns: Annotated[int, Range(low=1)] = 1, share: Share = 0.5) -> tuple[int, float]:
        return turns, share

    assert [p.describe() for p in registry.get("knob").params] == [
        "turns: int >= 1 = 1",
        "share: float in [0, 1) = 0.5",
    ]
    assert registry.check_params("knob", {"turns": 2, "share": 0.0}) == []
    assert registry.check_params("knob", {"turns": 0, "share": 1}) == [
        "parameter 'turns' of widgets 'knob': expected int >= 1, got 0",
        "parameter 'share' of widgets 'knob': expected float in [0, 1), got 1",
    ]


def test_the_defaults_file_holds_exactly_the_schema_fields() -> None:
    assert schema_problems(DEFAULTS) == []
    assert TrialConfig.from_dict(DEFAULTS).to_dict() == DEFAULTS


def test_typed_fields_read_as_attributes() -> None:
    config = TrialConfig.from_dict(DEFAULTS)
    assert config.train.epochs == DEFAULTS["train"]["epochs"]
    assert config.transfer.lambda_ == DEFAULTS["transfer"]["lambda"]  # a keyword key gets a trailing _
    assert config.network("student") is config.student and config.student.align == "features"
    with pytest.raises(AttributeError):
        config.train.epochs = 3  # frozen: a trial cannot change its own config mid-run


def test_every_problem_at_once_with_its_dotted_field() -> None:
    config = copy.deepcopy(DEFAULTS)
    config["train"] |= {"epochs": 0, "warmpu": 0.1}
    del config["seed"]
    config["teacher"] = "resnet"
    assert schema_problems(config) == [
        "seed: missing",
        "teacher: expected a mapping, got 'resnet'",
        "train.warmpu: unknown key (did you mean 'warmup'?)",
        "train.epochs: expected int >= 1, got 0",
    ]
