"""Registries: registration, parameter introspection, name lookup messages and parameter checks."""

# No ``from __future__ import annotations`` here: some factories below need real (non-string) annotations.

from typing import Literal  # noqa: F401  (named by a string annotation below)

import pytest

from ablate import LEVELS, PROJECTIONS, Registry, RegistryError
from ablate._registries import _is_callable


class Widget:
    """A widget with a size.

    More text that ``ablate list`` does not show.
    """

    def __init__(self, in_channels: int, size: int, scale: float = 0.5, *args, **kwargs) -> None:
        self.in_channels, self.size, self.scale = in_channels, size, scale


def _widgets() -> Registry:
    registry = Registry("widgets", "factory(in_channels, **params) -> object", injected=("in_channels",))
    registry.register("widget")(Widget)

    @registry.register("flag")
    def flag(enabled: bool = False, count: int = 1, name: str = "x", ratio: float | None = None):
        return (enabled, count, name, ratio)

    @registry.register()
    def gadget_factory():
        return "gadget"

    return registry


def test_register_records_description_params_and_module() -> None:
    entry = _widgets().get("widget")
    assert entry.factory is Widget
    assert entry.description == "A widget with a size."  # first docstring line only
    assert entry.module == __name__
    # the injected in_channels and *args/**kwargs are not user parameters
    assert [(p.name, p.required) for p in entry.params] == [("size", True), ("scale", False)]
    assert [p.describe() for p in entry.params] == ["size: int", "scale: float = 0.5"]
    assert entry.param("scale").default == 0.5 and entry.param("in_channels") is None


def test_register_without_name_uses_the_function_name_and_names_are_sorted() -> None:
    registry = _widgets()
    assert registry.names() == ["flag", "gadget_factory", "widget"]
    assert [e.name for e in registry] == registry.names() and len(registry) == 3
    assert "widget" in registry and "nothing" not in registry


def test_create_passes_injected_and_user_parameters() -> None:
    widget = _widgets().create("widget", in_channels=3, size=7)
    assert (widget.in_channels, widget.size, widget.scale) == (3, 7, 0.5)


def test_build_takes_a_config_spec_without_its_harness_keys() -> None:
    registry = Registry("widgets", "factory(in_channels, **params)", injected=("in_channels",), harness_keys=("where",))
    registry.register("widget")(Widget)
    widget = registry.build({"name": "widget", "size": 7, "where": "ignored"}, in_channels=3)
    assert (widget.in_channels, widget.size, widget.scale) == (3, 7, 0.5)
    with pytest.raises(
        RegistryError, match="unknown parameter 'sise' for widgets 'widget' \\(did you mean 'size'\\?\\)"
    ):
        registry.build({"name": "widget", "sise": 7}, in_channels=3)


def test_parameter_types_come_from_the_real_annotations() -> None:
    """Annotations written as strings (``from __future__ import annotations``) are evaluated, unions and
    literals understood; what the checks cannot judge (sequences, classes) is left to the factory."""
    registry = Registry("widgets", "factory(**params)")

    def gadget(mode: "Literal['a', 'b']" = "a", size: "int | None" = None, shape: "list[int] | None" = None):
        return (mode, size, shape)

    registry.register("gadget")(gadget)
    assert [p.describe() for p in registry.get("gadget").params] == [
        "mode: one of a, b = 'a'",
        "size: int or null = None",
        "shape: list[int] or null = None",
    ]
    assert registry.check_params("gadget", {"mode": "b", "size": 3, "shape": ["anything"]}) == []
    assert registry.check_params("gadget", {"mode": "c", "size": "3"}) == [
        "parameter 'mode' of widgets 'gadget': expected one of a, b, got 'c'",
        "parameter 'size' of widgets 'gadget': expected int or null, got str '3'",
    ]


def test_labels_and_metadata_come_from_registration() -> None:
    registry = _widgets()
    registry.register("crf_like", label="CRF-like", default=True)(Widget)
    assert registry.get("crf_like").label == "CRF-like" and registry.get("widget").label == "widget"
    assert registry.tagged("default") == ["crf_like"] and registry.tagged("nothing") == []


def test_the_built_in_labels_and_tags_the_report_reads() -> None:
    from ablate import METRICS, POSTPROCESSORS
    from ablate._report._model import component_label, cooccurrence_metrics

    assert component_label("teacher_student") == "teacher-student" and component_label("crf") == "CRF"
    assert component_label("not_registered") == "not_registered"
    assert cooccurrence_metrics() == ["chimney_claimed", "chimney_only_fpr", "false_activation"]
    assert METRICS.tagged("default_objective") == ["smoke_iou"] and POSTPROCESSORS.tagged("default") == ["threshold"]


def test_duplicate_name_is_refused_and_keeps_the_first() -> None:
    registry = _widgets()
    with pytest.raises(RegistryError, match=rf"widgets: 'widget' is already registered \(by {__name__}\)"):
        registry.register("widget")(lambda: None)
    assert registry.get("widget").factory is Widget


def test_unknown_name_message_has_kind_closest_match_and_available_names() -> None:
    with pytest.raises(RegistryError) as info:
        _widgets().get("widgte")
    assert str(info.value).startswith(
        "'widgte' is not in the widgets registry (did you mean 'widget'?). Available: flag, gadget_factory, widget."
    )
    assert "'ablate.plugins' entry point" in str(info.value)


def test_unknown_name_without_close_match_has_no_hint() -> None:
    message = _widgets().unknown_message("zzzzzz")
    assert "did you mean" not in message and "Available: flag, gadget_factory, widget." in message


def test_unknown_name_in_a_real_registry() -> None:
    message = LEVELS.unknown_message("globl")
    assert "levels registry" in message and "(did you mean 'global'?)" in message
    assert all(name in message for name in ("channel", "global", "spatial"))


def test_check_params_unknown_parameter_with_suggestion() -> None:
    assert PROJECTIONS.check_params("mlp", {"hiden": 8}) == [
        "unknown parameter 'hiden' for projections 'mlp' (did you mean 'hidden'?); it takes: hidden"
    ]
    assert _widgets().check_params("gadget_factory", {"x": 1}) == [
        "unknown parameter 'x' for widgets 'gadget_factory'; it takes: none"
    ]


def test_check_params_missing_required() -> None:
    assert _widgets().check_params("widget", {"scale": 1.0}) == ["widgets 'widget' needs parameter 'size'"]


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"count": "3"}, "parameter 'count' of widgets 'flag': expected int, got str '3'"),
        ({"count": True}, "parameter 'count' of widgets 'flag': expected int, got True"),  # bool is not an int here
        ({"count": 2.5}, "parameter 'count' of widgets 'flag': expected int, got float 2.5"),
        ({"enabled": 1}, "parameter 'enabled' of widgets 'flag': expected bool, got int 1"),
        ({"name": 3}, "parameter 'name' of widgets 'flag': expected str, got int 3"),
        ({"ratio": "a"}, "parameter 'ratio' of widgets 'flag': expected float or null, got str 'a'"),
        ({"ratio": False}, "parameter 'ratio' of widgets 'flag': expected float or null, got False"),
    ],
)
def test_check_params_simple_type_errors(params: dict, problem: str) -> None:
    registry = _string_annotated()
    assert registry.check_params("flag", params) == [problem]


def _string_annotated() -> Registry:
    """Like ``flag`` above, with string annotations (what ``from __future__ import annotations`` gives)."""
    registry = Registry("widgets", "")

    def flag(enabled: "bool" = False, count: "int" = 1, name: "str" = "x", ratio: "float | None" = None):  # noqa: UP037
        return None

    registry.register("flag")(flag)
    return registry


@pytest.mark.parametrize(
    "params", [{"count": 3}, {"enabled": True}, {"ratio": 1}, {"ratio": 0.5}, {"ratio": None}, {"count": None}]
)
def test_check_params_accepts_fitting_values(params: dict) -> None:
    assert _string_annotated().check_params("flag", params) == []
    assert _widgets().check_params("flag", params) == []


def test_create_reports_every_problem_in_one_error() -> None:
    with pytest.raises(RegistryError) as info:
        _widgets().create("widget", in_channels=1, scale="a")
    assert str(info.value) == (
        "parameter 'scale' of widgets 'widget': expected float, got str 'a'; widgets 'widget' needs parameter 'size'"
    )


def test_create_type_errors_for_real_type_annotations() -> None:
    registry = _widgets()
    assert registry.check_params("flag", {"count": "3"}) == [
        "parameter 'count' of widgets 'flag': expected int, got str '3'"
    ]
    assert registry.check_params("flag", {"enabled": 1}) == [
        "parameter 'enabled' of widgets 'flag': expected bool, got int 1"
    ]


def test_check_params_union_type_annotation_is_checked() -> None:
    assert _widgets().check_params("flag", {"ratio": "a"}) == [
        "parameter 'ratio' of widgets 'flag': expected float or null, got str 'a'"
    ]


def test_contract_check_failure_names_kind_and_entry() -> None:
    registry = Registry("levels", "factory() -> callable", check=_is_callable)
    registry.register("broken")(lambda: 42)
    registry.register("fine")(lambda: lambda s, t, d: 0)
    with pytest.raises(TypeError, match="^levels 'broken' breaks the registry contract: expected a callable, got int$"):
        registry.create("broken")
    assert callable(registry.create("fine"))


def _built_in_entries() -> list[tuple[str, str]]:
    import ablate

    ablate.load_components()
    return [(kind, name) for kind, registry in ablate.REGISTRIES.items() for name in registry.names()]


@pytest.mark.parametrize(("kind", "name"), _built_in_entries())
def test_every_built_in_description_is_a_whole_sentence(kind: str, name: str) -> None:
    # `ablate list` shows a docstring's first line: fractaldb's stopped mid-sentence ("... each image one")
    import ablate

    description = ablate.REGISTRIES[kind].get(name).description
    assert description.endswith("."), description
