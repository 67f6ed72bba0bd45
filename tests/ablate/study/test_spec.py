"""Study files: parsing, grid enumeration, validation messages."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from ablate import ConfigError
from ablate.study import SAMPLERS, load_study

TINY = {"data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8}, "train": {"epochs": 1}}


def study_file(tmp_path: Path, text: str | dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text if isinstance(text, str) else yaml.safe_dump(text))
    return path


def test_grid_union_with_conditional_component_values(tmp_path):
    path = study_file(
        tmp_path,
        {
            "config": TINY,
            "grid": [
                {"transfer.projection": ["conv", {"name": "mlp", "hidden": 32}], "transfer.lambda": [0.5, 1.0]},
                {"paradigm": [{"name": "single", "network": "teacher"}]},
            ],
            "seeds": 3,
            "baseline": {"transfer.lambda": 1.0, "transfer.projection": "conv"},
        },
    )
    study = load_study(path)
    configs = study.configurations()
    assert len(configs) == 5 and study.total_trials() == 15 and study.seeds == [0, 1, 2]
    assert {"transfer.projection": {"name": "mlp", "hidden": 32}, "transfer.lambda": 0.5} in configs
    assert [c for c in configs if study.is_baseline(c)] == [{"transfer.projection": "conv", "transfer.lambda": 1.0}]
    assert study.name == "s" and study.objectives[0].metric == "smoke_iou"


def test_grids_that_overlap_give_each_configuration_once_in_order(tmp_path):
    mlp = {"name": "mlp", "hidden": 32}
    grid = [
        {"transfer.projection": ["conv", mlp], "transfer.lambda": [0.5, 1.0]},
        {"transfer.lambda": [1.0, 2.0], "transfer.projection": [{"hidden": 32, "name": "mlp"}]},  # keys reordered
    ]
    study = load_study(study_file(tmp_path, {"config": TINY, "grid": grid}))
    first_seen: list[dict] = []  # the definition: each combination where it first appears
    for axes in study.grid:
        for values in itertools.product(*axes.values()):
            combo = dict(zip(axes, values, strict=True))
            first_seen += [] if combo in first_seen else [combo]
    assert study.configurations() == first_seen and len(first_seen) == 5
    assert {"transfer.lambda": 2.0, "transfer.projection": mlp} in first_seen


def test_extends_merges_the_parent_config(tmp_path):
    study_file(tmp_path, {"config": {**TINY, "seed": 0}, "seeds": 2, "objective": "miou"}, "base.yaml")
    child = load_study(study_file(tmp_path, {"extends": "base.yaml", "config": {"train": {"lr": 0.01}}}))
    assert child.config["train"] == {"epochs": 1, "lr": 0.01} and child.seeds == [0, 1]
    assert child.objectives[0].metric == "miou"


def test_an_inherited_reference_is_found_beside_the_file_that_names_it(tmp_path):
    # a tiny copy of studies/transfer.yaml elsewhere looked for references/paper.yaml beside the copy
    shipped = Path(__file__).parents[3] / "studies" / "transfer.yaml"
    child = load_study(study_file(tmp_path, {"extends": str(shipped), "config": TINY}), check_configs=False)
    assert child.reference is not None and child.reference.path == shipped.parent / "references" / "paper.yaml"


HUNDRED = list(range(100))
MILLION = {f"k{i}": list(range(10)) for i in range(6)}  # six axes of ten values


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("config: {train: {epochs: 1}\n", "s.yaml:2:1: invalid YAML"),
        ("grids: {}\n", "grids: unknown study key (did you mean 'grid'?)"),
        ("grid: {transfer.level: [global, glob]}\n", "'glob' is not in the levels registry (did you mean 'global'?)."),
        ("grid: {transfer.projection: [none]}\n", "transfer.projection: 'none' learns no mapping"),
        ("grid: {train.epochs: [0]}\n", "train.epochs: expected int >= 1, got 0 (configuration"),
        ("objective: mIoU\n", "objective: 'mIoU' is not in the metrics registry (did you mean 'miou'?)."),
        ("tune: {transfer.lambda: {low: 2, high: 1}}\nn_trials: 3\n", "tune.transfer.lambda: needs numbers low < high"),
        ("tune: {transfer.lambda: {low: 0.1, high: 1.0}}\n", "tune: needs a budget"),
        ("tune: {train.lr: {low: 0.1, high: 1, log: true, step: 0.1}}\nn_trials: 2\n", "log and step cannot be"),
        ("tune: {train.lr: {low: 0.1, high: 1, step: abc}}\nn_trials: 2\n", "step: expected a number > 0, got 'abc'"),
        ("tune: {train.lr: {low: 0.1, high: 1, step: 0}}\nn_trials: 2\n", "step: expected a number > 0, got 0"),
        ("tune: {train.epochs: {low: 1, high: 4, step: 1.5}}\nn_trials: 2\n", "needs a whole-number step"),
        ("tune: {train.lr: {low: 0.1, high: 1, log: yes please}}\nn_trials: 2\n", "log: expected true or false"),
        ("tune: {transfer.lambda: [0.5, 1.0]}\nn_trials: true\n", "n_trials: expected a positive integer, got True"),
        ("tune: {transfer.lambda: [0.5, 1.0]}\ntimeout: true\n", "timeout: expected seconds > 0, got True"),
        ("objective: [smoke_iou, smoke_iou]\n", "objective: smoke_iou is listed twice"),
        (
            "tune: {postprocess.0.value: {low: 0.1, high: 0.5}}\nn_trials: 2\n",
            "postprocess.0.value: '0' is not an index of a list of 0 items",
        ),
        ("seeds: [1, 1]\n", "seeds: duplicates"),
        # counted before anything is enumerated: validate grew to 2 GB over 180 s, seeds ended in MemoryError
        (
            f"grid: {MILLION}\n",
            "grid: 1,000,000 configurations (10 x 10 x 10 x 10 x 10 x 10 values); a grid holds at",
        ),
        ("seeds: 100000000\n", "seeds: 100,000,000 seeds; a study runs at most 1,000"),
        ("seeds: {initial: 3, max: 5000}\nrace: {}\nbaseline: {}\n", "seeds: 5,000 seeds; a study runs at most"),
        (
            "tune: {transfer.lambda: [0.5, 1.0]}\nn_trials: 10000000\n",
            "n_trials: 10,000,000 configurations x 1 seed = 10,000,000 trials; a study runs at most 1,000,000",
        ),
        (
            f"grid: {{a: {HUNDRED}, b: {HUNDRED}}}\nseeds: 200\n",
            "grid: 10,000 configurations x 200 seeds = 2,000,000 trials; a study runs at most 1,000,000",
        ),
        (
            "tune: {cam.name: {choices: [gradcam, gradcam]}}\nn_trials: 2\n",
            "tune.cam.name.choices: 'gradcam' is listed twice",
        ),
        ("grid: {transfer.lambda: [0.5, 1, 1.0]}\n", "grid.transfer.lambda: 1.0 is listed twice"),
        ("grid: {transfer.lambda: [1.0]}\nbaseline: {transfer.lambda: 2.0}\n", "matches no grid configuration"),
        ("grid: {transfer.lamda: [1.0]}\nbaseline: {transfer.lamda: 2.0}\n", "transfer.lamda: unknown key"),
        ("plugins: [no_such_module_xyz]\n", "cannot import plugin module 'no_such_module_xyz'"),
        (
            "grid: {postprocess: [[{name: crf, iterations: -1}]]}\n",
            "postprocess[0]: parameter 'iterations' of postprocessors 'crf'",
        ),
        (
            "grid: {postprocess: [[{name: threshold, value: 0.3}]], postprocess.0.value: [0.3, 1.5]}\n",
            "grid: 'postprocess.0.value' lies inside 'postprocess'; set one of them, not both",
        ),
        (
            "tune: {train: {choices: [{lr: 0.1}]}, train.lr: {low: 0.1, high: 0.2}}\nn_trials: 2\n",
            "tune: 'train.lr' lies inside 'train'",
        ),
        (
            "grid: {transfer.level: [global, {name: global}]}\n",
            'configurations {"transfer.level": "global"} and {"transfer.level": {"name": "global"}} give the same',
        ),
    ],
)
def test_invalid_study_names_file_and_field(tmp_path, text, message):
    path = study_file(tmp_path, text)
    with pytest.raises(Exception) as info:
        load_study(path)
    assert message in str(info.value)
    assert str(path) in str(info.value) or "plugin" in message


def test_an_invalid_base_config_is_named_as_config_not_as_a_grid_configuration(tmp_path):
    path = study_file(tmp_path, "config: {train: {epochs: 0}}\ngrid: {transfer.lambda: [0.5, 1.0]}\n")
    with pytest.raises(Exception) as info:
        load_study(path)
    assert str(info.value).endswith(f"{path}: config: train.epochs: expected int >= 1, got 0")


def test_tune_distributions(tmp_path):
    study = load_study(
        study_file(
            tmp_path,
            {
                "config": TINY,
                "n_trials": 4,
                "seeds": 2,
                "tune": {
                    "transfer.lambda": {"low": 0.1, "high": 2.0},
                    "train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
                    "train.epochs": {"low": 1, "high": 3},
                    "cam.name": {"choices": ["gradcam", "class_map"]},
                },
            },
        )
    )
    kinds = {d.path: d.kind for d in study.tune}
    assert kinds == {"transfer.lambda": "float", "train.lr": "float", "train.epochs": "int", "cam.name": "categorical"}
    assert study.is_tuning and study.total_trials() == 8


def test_signature_changes_with_the_search_space_only(tmp_path):
    base = {"config": TINY, "grid": {"transfer.lambda": [1.0]}}
    first = load_study(study_file(tmp_path, base)).signature()
    assert load_study(study_file(tmp_path, {**base, "description": "changed"})).signature() == first
    assert load_study(study_file(tmp_path, {**base, "grid": {"transfer.lambda": [0.5]}})).signature() != first


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_an_unset_optional_slot_leaves_the_signature_as_before_the_slot_existed(tmp_path):
    base = {"config": TINY, "grid": {"transfer.lambda": [1.0]}}
    first = load_study(study_file(tmp_path, base)).signature()
    unset = {**base, "config": {**TINY, "student": {"pretrain": None}}}
    assert load_study(study_file(tmp_path, unset)).signature() == first
    chosen = {**base, "config": {**TINY, "student": {"pretrain": {"name": "fractaldb"}}}}
    assert load_study(study_file(tmp_path, chosen)).signature() != first


def test_a_later_key_at_its_earlier_value_leaves_the_signature_as_before_the_key_existed(tmp_path):
    base = {"config": TINY, "grid": {"transfer.lambda": [1.0]}}
    first = load_study(study_file(tmp_path, base)).signature()
    off = {**base, "config": {**TINY, "train": {**TINY.get("train", {}), "compile": False}}}
    assert load_study(study_file(tmp_path, off)).signature() == first
    on = {**base, "config": {**TINY, "train": {**TINY.get("train", {}), "compile": True}}}
    assert load_study(study_file(tmp_path, on)).signature() != first


def test_the_shipped_lambda_study_keeps_the_signature_it_was_stored_with():
    # the value since the teacher's default head became `cam` (a study run before trained other teachers: it must not
    # resume); a new config key whose default changes nothing must leave it alone, as train.compile did
    assert load_study(Path(__file__).parents[3] / "studies" / "lambda.yaml").signature() == "66d79e4866a92b8d5fb1"


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_finite_space_caps_the_budget_of_every_sampler(tmp_path, sampler):
    # any sampler could only repeat itself beyond 6 configurations: a tpe study with n_trials 10 ran for ever
    tune = {"train.epochs": {"low": 1, "high": 3}, "transfer.lambda": {"choices": [0.5, 1.0]}}  # 3 x 2 points
    study = load_study(study_file(tmp_path, {"config": TINY, "tune": tune, "sampler": sampler, "n_trials": 10}))
    assert study.trial_budget == 6 and study.total_trials() == 6
    assert "(6 configurations)" in study.describe()
    assert [d.values() for d in study.tune] == [[1, 2, 3], [0.5, 1.0]]


def test_a_continuous_range_leaves_the_budget_at_n_trials(tmp_path):
    tune = {"transfer.lambda": {"low": 0.5, "high": 1.0}, "train.epochs": {"low": 1, "high": 2}}
    study = load_study(study_file(tmp_path, {"config": TINY, "tune": tune, "n_trials": 10}))
    assert study.space_size() is None and study.trial_budget == 10


def test_float_steps_are_the_decimal_values_and_stay_within_the_range(tmp_path):
    tune = {"transfer.lambda": {"low": 0.1, "high": 1.0, "step": 0.1}}
    study = load_study(study_file(tmp_path, {"config": TINY, "tune": tune, "sampler": "grid", "n_trials": 20}))
    assert study.tune[0].values() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert study.trial_budget == 10


@pytest.mark.parametrize("sampler", ["grid", "bruteforce"])
def test_an_enumerating_sampler_needs_a_finite_range(tmp_path, sampler):
    with pytest.raises(ConfigError, match=rf"tune.train.lr: sampler {sampler} needs choices or a step"):
        load_study(
            study_file(tmp_path, {"tune": {"train.lr": {"low": 1e-4, "high": 1e-3}}, "sampler": sampler, "n_trials": 2})
        )


@pytest.mark.parametrize(
    ("config", "objective", "message"),
    [
        ({"metrics": ["miou"]}, "smoke_iou", "objective smoke_iou: `metrics` computes only miou; add smoke_iou"),
        ({}, "seg_smoke_iou", "objective seg_smoke_iou: a segmenter's metric needs a `segment:` stage"),
    ],
)
def test_an_objective_no_trial_could_compute_is_refused_before_training(tmp_path, config, objective, message):
    # every trial trained, then failed with "objective ... is undefined (NaN) for this trial"
    path = study_file(tmp_path, {"config": {**TINY, **config}, "grid": {"train.lr": [1e-3]}, "objective": objective})
    with pytest.raises(ConfigError, match=rf"{message} \(configuration"):
        load_study(path)


def test_a_sweep_builds_each_distinct_combination_of_components_once(tmp_path, monkeypatch):
    """Validating 1,000 configurations built the networks of each of them (about 90 s); a sweep of a learning rate or
    a loss weight is one combination of components."""
    import ablate.config._check

    built = []
    check = ablate.config._check._check_combination
    monkeypatch.setattr(ablate.config._check, "_check_combination", lambda r, f: built.append(r) or check(r, f))
    lrs = [round(0.001 * (i + 1), 3) for i in range(20)]
    grid = {"train.lr": lrs, "transfer.lambda": [0.5, 1.0], "transfer.level": ["global", "spatial"]}
    study = load_study(study_file(tmp_path, {"config": TINY, "grid": grid}))
    assert len(study.configurations()) == 80
    assert sorted(r["transfer"]["level"]["name"] for r in built) == ["global", "spatial"]
