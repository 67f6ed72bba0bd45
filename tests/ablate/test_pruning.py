"""Pruning of tuning trials: Optuna's pruners on a per-epoch loss, in studies of either direction."""

from __future__ import annotations

import re

import optuna
import pytest

from ablate._pruning import PRUNERS, parse_pruner

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
