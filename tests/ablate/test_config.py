"""Trial configs: defaults, merging, dotted overrides, YAML errors and structural checks."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from ablate import DEFAULTS, ConfigError
from ablate.config._check import check
from ablate.config._resolve import CAM_NETWORKS, get_dotted, load_yaml, merge, resolve, set_dotted


def test_resolve_without_config_is_the_defaults_in_normal_form() -> None:
    config = resolve()
    assert config["transfer"]["level"] == {"name": "global"}
    assert config["student"]["backbone"] == {
        "name": "timm",
        "model": "test_vit",
        "model_args": {"patch_size": 8, "img_size": 64, "depth": 4},
        "conv_stem": True,
    }
    assert config["postprocess"] == [] and config["plugins"] == []
    assert check(config) == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("train.warmup", 1.0, "expected float in [0, 1), got 1.0"),
        ("train.ema", -0.1, "expected float in [0, 1), got -0.1"),
        ("train.schedule", "linear", "expected one of constant, cosine, got 'linear'"),
        ("train.init_seed", -1, "expected int >= 0 or null, got -1"),
        ("train.init_seed", 1.5, "expected int >= 0 or null, got float 1.5"),
        ("frozen_outputs_mb", -1, "expected float >= 0, got -1"),
    ],
)
def test_training_schedule_settings_are_checked(field: str, value: object, expected: str) -> None:
    assert check(resolve(None, {field: value})) == [f"{field}: {expected}"]


def test_resolve_does_not_modify_defaults_or_its_input() -> None:
    before = copy.deepcopy(DEFAULTS)
    config = {"transfer": {"level": "spatial"}, "postprocess": ["threshold"]}
    resolved = resolve(config, {"transfer.lambda": 0.5})
    resolved["train"]["lr"] = 99
    assert before == DEFAULTS
    assert config == {"transfer": {"level": "spatial"}, "postprocess": ["threshold"]}


def test_string_shorthand_becomes_a_component_mapping() -> None:
    config = resolve({"transfer": {"level": "spatial", "projection": "none"}, "postprocess": ["threshold"]})
    assert config["transfer"]["level"] == {"name": "spatial"}
    assert config["transfer"]["projection"] == {"name": "none"}
    assert config["postprocess"] == [{"name": "threshold"}]
    assert config["transfer"]["distance"] == {"name": "cosine"}  # untouched siblings keep their defaults


def test_component_with_a_new_name_does_not_inherit_the_old_params() -> None:
    base = resolve({"transfer": {"projection": {"name": "mlp", "hidden": 8}}})
    assert base["transfer"]["projection"] == {"name": "mlp", "hidden": 8}
    assert merge(base, {"transfer": {"projection": "conv"}})["transfer"]["projection"] == {"name": "conv"}
    assert merge(base, {"transfer": {"projection": {"name": "conv"}}})["transfer"]["projection"] == {"name": "conv"}


def test_component_with_the_same_name_merges_params() -> None:
    base = resolve({"transfer": {"projection": {"name": "mlp", "hidden": 8}}})
    assert merge(base, {"transfer": {"projection": {"name": "mlp"}}})["transfer"]["projection"] == {
        "name": "mlp",
        "hidden": 8,
    }
    # no name: same component, only params change
    config = resolve({"student": {"backbone": {"model_args": {"patch_size": 16}}}})
    assert config["student"]["backbone"] == {
        "name": "timm",
        "model": "test_vit",
        "model_args": {"patch_size": 16, "img_size": 64, "depth": 4},
        "conv_stem": True,
    }


def test_plain_sections_merge_deeply_and_lists_are_replaced() -> None:
    merged = merge(
        {"train": {"lr": 1.0, "epochs": 2}, "postprocess": ["a", "b"]}, {"train": {"lr": 2.0}, "postprocess": ["c"]}
    )
    assert merged == {"train": {"lr": 2.0, "epochs": 2}, "postprocess": ["c"]}


def test_backbone_with_a_new_model_does_not_inherit_model_args() -> None:
    backbone = resolve({"student": {"backbone": {"model": "vit_small_patch16_224"}}})["student"]["backbone"]
    assert backbone == {"name": "timm", "model": "vit_small_patch16_224"}


def test_set_dotted_nested_creates_and_converts_string_slots() -> None:
    config = {"transfer": {"level": "global"}, "train": {}}
    set_dotted(config, "transfer.level.eps", 0.1)
    set_dotted(config, "train.lr", 0.5)
    set_dotted(config, "new.deep.key", 1)
    assert config == {
        "transfer": {"level": {"name": "global", "eps": 0.1}},
        "train": {"lr": 0.5},
        "new": {"deep": {"key": 1}},
    }
    assert get_dotted(config, "new.deep.key") == 1
    with pytest.raises(KeyError):
        get_dotted(config, "train.nothing")


def test_set_dotted_list_index() -> None:
    config = {"postprocess": ["threshold", {"name": "crf", "iterations": 5}]}
    set_dotted(config, "postprocess.0.value", 0.4)
    set_dotted(config, "postprocess.-1.iterations", 3)
    assert config["postprocess"] == [{"name": "threshold", "value": 0.4}, {"name": "crf", "iterations": 3}]
    set_dotted(config, "postprocess.1", "bg_power")
    assert config["postprocess"][1] == "bg_power"


@pytest.mark.parametrize("path", ["postprocess.2.value", "postprocess.x.value", "postprocess.-3"])
def test_set_dotted_bad_list_index(path: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{path}: '.*' is not an index of a list of 2 items$"):
        set_dotted({"postprocess": ["a", "b"]}, path, 1)


def test_resolve_applies_dotted_overrides_after_the_config() -> None:
    config = resolve(
        {"postprocess": ["threshold"], "transfer": {"lambda": 0.3}},
        {"transfer.lambda": 0.8, "postprocess.0.value": 0.4, "transfer.level": "channel"},
    )
    assert config["transfer"]["lambda"] == 0.8
    assert config["transfer"]["level"] == {"name": "channel"}
    assert config["postprocess"] == [{"name": "threshold", "value": 0.4}]


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("a: 1\n  b: 2\n", "2:4", "mapping values are not allowed here"),
        ("seed: 1\ntrain:\n  epochs: [1, 2\n  lr: 3\n", "4:5", "expected ',' or ']', but got ':'"),
    ],
)
def test_load_yaml_syntax_error_names_file_line_and_column(tmp_path: Path, text: str, where: str, problem: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}:{where}: invalid YAML: {problem}"


def test_load_yaml_missing_file_and_good_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothing\.yaml: cannot read"):
        load_yaml(tmp_path / "nothing.yaml")
    (tmp_path / "good.yaml").write_text("train:\n  lr: 0.01\npostprocess: [threshold]\n")
    assert load_yaml(tmp_path / "good.yaml") == {"train": {"lr": 0.01}, "postprocess": ["threshold"]}


def _problems(config: dict, overrides: dict | None = None) -> list[str]:
    return check(resolve(config, overrides))


def test_check_unknown_keys_name_the_dotted_field_with_suggestion() -> None:
    assert _problems({"trian": {}}) == ["trian: unknown key (did you mean 'train'?)"]
    assert _problems({"train": {"epoch": 3}}) == ["train.epoch: unknown key (did you mean 'epochs'?)"]
    assert _problems({"transfer": {"lamda": 1}}) == ["transfer.lamda: unknown key (did you mean 'lambda'?)"]
    assert _problems({"zzz": 1}) == ["zzz: unknown key"]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"train.lr": -1}, "train.lr: expected float > 0, got -1"),
        ({"train.lr": "fast"}, "train.lr: expected float > 0, got str 'fast'"),
        ({"train.epochs": 0}, "train.epochs: expected int >= 1, got 0"),
        ({"train.epochs": 2.0}, "train.epochs: expected int >= 1, got float 2.0"),
        ({"train.batch_size": True}, "train.batch_size: expected int >= 1, got True"),
        ({"train.weight_decay": -0.1}, "train.weight_decay: expected float >= 0, got -0.1"),
        ({"train.augment": 1}, "train.augment: expected bool, got int 1"),
        ({"transfer.lambda": -0.5}, "transfer.lambda: expected float >= 0, got -0.5"),
        ({"transfer.lambda": True}, "transfer.lambda: expected float >= 0, got True"),
        ({"seed": -1}, "seed: expected int >= 0, got -1"),
        ({"threads": 0}, "threads: expected int >= 1 or null, got 0"),
        ({"device": "tpu"}, "device: expected auto, cpu or cuda[:N], got 'tpu'"),
        ({"student.align": "logits"}, "student.align: expected one of class_map, features, got 'logits'"),
        ({"cam.network": "teachr"}, f"cam.network: expected one of {', '.join(CAM_NETWORKS)}, got 'teachr'"),
        ({"plugins": "my_plugin"}, "plugins: expected a list of module names"),
    ],
)
def test_check_types_and_ranges_name_the_field(overrides: dict, problem: str) -> None:
    assert _problems({}, overrides) == [problem]


def test_check_accepts_boundary_values() -> None:
    overrides = {
        "train.weight_decay": 0,
        "transfer.lambda": 0,
        "seed": 0,
        "threads": 1,
        "train.lr": 1,
        "device": "cuda:1",
    }
    assert _problems({}, overrides) == []


def test_check_unknown_component_names_the_slot_and_the_closest_match() -> None:
    (problem,) = _problems({"transfer": {"level": "globl"}})
    assert problem.startswith("transfer.level.name: 'globl' is not in the levels registry (did you mean 'global'?).")
    (problem,) = _problems({"postprocess": ["threshhold"]})
    assert problem.startswith("postprocess[0].name: 'threshhold' is not in the postprocessors registry (")
    assert "(did you mean 'threshold'?)" in problem
    (problem,) = _problems({"metrics": ["smoke_iuo"]})
    assert problem.startswith("metrics: 'smoke_iuo' is not in the metrics registry (did you mean 'smoke_iou'?).")


def test_check_component_params_name_the_slot() -> None:
    assert _problems({"transfer": {"projection": {"name": "mlp", "hiden": 8}}}) == [
        "transfer.projection: unknown parameter 'hiden' for projections 'mlp' (did you mean 'hidden'?); "
        "it takes: hidden"
    ]
    assert _problems({"transfer": {"projection": {"name": "mlp", "hidden": "big"}}}) == [
        "transfer.projection: parameter 'hidden' of projections 'mlp': expected int, got str 'big'"
    ]
    # cam's network/layer are read by the harness, not passed to the factory
    assert _problems({"cam": {"name": "gradcam", "network": "teacher", "layer": "layer4"}}) == []
    assert _problems({"data": 3}) == ["data: expected a component name or a mapping with 'name', got 3"]


def test_check_lists_every_problem() -> None:
    problems = _problems({"train": {"lr": 0, "epochs": 0}, "transfer": {"distance": "l3"}})
    assert [p.split(":")[0] for p in problems] == ["train.epochs", "train.lr", "transfer.distance.name"]


def test_duplicate_yaml_keys_are_refused_with_file_line_and_column(tmp_path) -> None:
    path = tmp_path / "trial.yaml"
    path.write_text("train:\n  epochs: 1\n  epochs: 5\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3:3: invalid YAML: duplicate key 'epochs'"):
        load_yaml(path)
    path.write_text("train: {epochs: 1}\nseed: 2\n")
    assert load_yaml(path) == {"train": {"epochs": 1}, "seed": 2}


def test_exponent_floats_without_a_dot_are_numbers(tmp_path) -> None:
    """YAML 1.1 reads `3e-4` as a string (then refused as "expected float"); users write learning rates so."""
    path = tmp_path / "trial.yaml"
    path.write_text("train: {lr: 3e-4, weight_decay: 1E-2}\ngrid: {x: [1e8, -2.5e+3, .5e1, 2.0e-3, 1_000, 0x10, e5]}\n")
    loaded = load_yaml(path)
    assert loaded["train"] == {"lr": 3e-4, "weight_decay": 0.01}
    assert loaded["grid"]["x"] == [1e8, -2500.0, 5.0, 2e-3, 1000, 16, "e5"]  # 1.1 ints stay ints
    assert [type(v) for v in loaded["grid"]["x"][:3]] == [float] * 3


def test_only_true_and_false_are_booleans(tmp_path) -> None:
    """YAML 1.1 reads on/off/yes/no as booleans: the pruner's documented `on: tf` became the key True."""
    from ablate.study import parse_pruner

    path = tmp_path / "study.yaml"
    path.write_text("pruner: {name: median, on: tf}\nflags: [true, False, yes, no, on, off]\n")
    loaded = load_yaml(path)
    assert loaded["flags"] == [True, False, "yes", "no", "on", "off"]
    assert parse_pruner(loaded["pruner"]).on == "tf"
