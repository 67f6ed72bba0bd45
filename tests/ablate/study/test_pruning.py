"""Pruning of tuning trials: Optuna's pruners on a per-epoch loss, in studies of either direction."""

from __future__ import annotations

import re

import optuna
import pytest

from ablate.cli import main
from ablate.study import PRUNERS, parse_pruner
from tests.ablate.study.studies import TINY, run_cli, trials, write_study

GOOD, BAD = [1.0, 0.6, 0.4, 0.3], [1.0, 1.5, 2.0, 2.5]  # per-epoch losses


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("median", {"n_startup_trials": 2}),
        ("percentile", {"percentile": 50.0, "n_startup_trials": 2}),
        ("successive_halving", {"min_resource": 1, "reduction_factor": 2}),
        ("hyperband", {"min_resource": 1, "max_resource": 4, "reduction_factor": 2}),
    ],
)
@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_a_rising_loss_is_pruned_and_falling_ones_run_to_the_end(name, params, direction) -> None:
    spec = parse_pruner({"name": name, **params})
    study = optuna.create_study(direction=direction, pruner=spec.build())
    curves = [GOOD, GOOD, BAD, GOOD, BAD] * 4
    pruned = []
    for curve in curves:
        trial = study.ask()
        for step, loss in enumerate(curve, start=1):
            trial.report(spec.score(loss, maximize=direction == "maximize"), step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned.append(curve)
                break
        else:
            study.tell(trial, 1.0)
    # the loss turned to the objective's direction: only rising losses are stopped (Hyperband's brackets leave some)
    assert pruned and all(curve is BAD for curve in pruned)


def test_every_pruner_but_percentile_builds_with_its_defaults() -> None:
    for name in set(PRUNERS) - {"percentile"}:
        assert parse_pruner(name).on == "cls"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("medain", "'medain' is not a pruner (did you mean 'median'?); pruners: median, percentile"),
        ({"name": "median", "n_startup": 3}, "n_startup: not a parameter of the median pruner (did you mean"),
        ({"name": "median", "n_startup_trials": -1}, "median: Number of startup trials cannot be negative"),
        ({"name": "median", "on": 3}, "on: expected the name of a per-epoch loss"),
        (3, "expected a pruner name"),
        ("percentile", "percentile: needs parameter 'percentile'"),
    ],
)
def test_bad_pruner_entries_say_what_is_wrong(raw, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_pruner(raw)


def test_a_pruned_configuration_stops_at_its_first_seed_and_the_others_run_every_seed(tmp_path, monkeypatch, capsys):
    import ablate.study._runner as runner_module

    losses = {1e-3: 0.2, 2e-3: 0.3, 3e-3: 2.0, 4e-3: 3.0}  # per-epoch L_cls scripted by learning rate
    real = runner_module.run_trial

    def scripted(config, *, on_epoch=None, **kwargs):
        for epoch in (1, 2):
            if on_epoch is not None:
                on_epoch({"tag": "student", "epoch": epoch, "loss": 1.0, "cls": losses[config["train"]["lr"]]})
        return real(config, **kwargs)

    monkeypatch.setattr(runner_module, "run_trial", scripted)
    study = write_study(
        tmp_path,
        config={**TINY, "paradigm": {"name": "single"}},
        tune={"train.lr": {"choices": list(losses)}},
        sampler="grid",
        n_trials=4,
        seeds=2,
        pruner={"name": "median", "n_startup_trials": 1},
    )
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0
    stored = trials(out)
    by_lr: dict[float, list[str]] = {}
    for t in stored:
        by_lr.setdefault(t.user_attrs["params"]["train.lr"], []).append(t.state.name)
    pruned = [lr for lr, states in by_lr.items() if "PRUNED" in states]
    assert pruned and set(pruned) <= {3e-3, 4e-3}  # only the configurations whose loss stays high
    assert all(states == ["PRUNED"] for lr, states in by_lr.items() if lr in pruned)  # no second seed run
    assert all(states == ["COMPLETE", "COMPLETE"] for lr, states in by_lr.items() if lr not in pruned)
    first = min((t for t in stored if t.state.name == "PRUNED"), key=lambda t: t.number)
    # reported with its sign turned: the study maximises smoke_iou, so a higher value must be the better one
    assert first.intermediate_values == {1: -losses[first.user_attrs["params"]["train.lr"]]}
    printed = capsys.readouterr()
    assert f"pruned trial {first.number}: at epoch 1 (cls " in printed.out
    assert f"trials completed, {len(pruned)} pruned" in printed.out
    assert f"trials completed, {len(pruned)} pruned" in (out / "summary.md").read_text()
    assert main(["status", str(study), "--out", str(out)]) == 0
    status = capsys.readouterr().out.splitlines()[-1]
    assert status.startswith(f"{len(stored)}/{len(stored)} (configuration, seed) pairs done (completed or pruned)")
    assert f"PRUNED {len(pruned)}" in status
    # resuming queues nothing: pruned configurations are finished
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert len(trials(out)) == len(stored)


def test_a_pruner_needs_a_tuning_study(tmp_path, capsys):
    study = write_study(tmp_path, grid={"train.lr": [1e-3, 2e-3]}, pruner="median")
    assert main(["validate", str(study)]) == 2
    assert "pruner: only a tuning study (tune:) prunes" in capsys.readouterr().err


def test_a_pruner_watching_a_value_the_training_lacks_stops_the_run_with_one_line(tmp_path, capsys):
    study = write_study(
        tmp_path,
        config={**TINY, "paradigm": {"name": "single"}},
        tune={"train.lr": {"choices": [1e-3, 2e-3]}},
        n_trials=2,
        pruner={"name": "median", "on": "tf"},  # a single network has no L_tf
    )
    assert run_cli(str(study), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"ablate: error: {study}: pruner.on: 'tf' is not a per-epoch value of trial 0's training (it has loss, cls, lr)"
    ]
    assert [t.state.name for t in trials(tmp_path / "out")] == ["FAIL"]  # marked, not left RUNNING
