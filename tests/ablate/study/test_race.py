"""Racing over seeds: the race's replay from stored results, its study keys, and a race run from the CLI."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from ablate import ConfigError
from ablate.storage import config_id
from ablate.study import RaceSpec, load_study, race_plan, study_plan
from tests.ablate.study.studies import (
    HELD,
    completed_identities,
    spawn,
    trials,
    wait_for_trials_running,
    write_study,
)

SEEDS = list(range(6))
CONFIGS = {"base": {}, "far": {}, "same": {}}


def _results(values: dict[str, list[float]]) -> dict[tuple[str, int], float]:
    return {(c, s): v for c, vs in values.items() for s, v in enumerate(vs)}


def test_the_race_gives_seeds_only_to_undecided_comparisons_and_the_reference_its_longest():
    spec = RaceSpec("baseline", initial=3, maximum=6, futility=0.0)
    values = {
        "base": [0.10, 0.12, 0.11, 0.10, 0.12, 0.11],
        "far": [0.90, 0.91, 0.92, 0.90, 0.91, 0.92],  # decided at its first look
        "same": [0.10, 0.13, 0.10, 0.11, 0.12],  # undecided; its 6th seed has not run yet
    }
    plan = race_plan(spec, CONFIGS, _results(values), SEEDS, lambda c: None if c == "base" else "base")
    far, same = plan.comparisons
    assert (far.look.verdict, far.looks) == ("better", [3])
    assert same.racing and same.looks == [3, 4, 5] and plan.seeds["same"] == 6
    assert plan.seeds == {"base": 6, "far": 3, "same": 6}  # the reference runs the longest comparison's seeds


def test_an_unfinished_round_holds_the_race_where_it_stands():
    spec = RaceSpec("baseline", initial=3, maximum=6)
    values = {"base": [0.1, 0.2, 0.3], "far": [0.5, 0.6], "same": []}
    plan = race_plan(spec, CONFIGS, _results(values), SEEDS, lambda c: None if c == "base" else "base")
    assert plan.seeds == {"base": 3, "far": 3, "same": 3}
    assert all(c.look is None for c in plan.comparisons)


def test_racing_against_the_best_drops_the_configurations_decided_worse():
    spec = RaceSpec("best", initial=3, maximum=6, futility=0.0)
    values = {
        "base": [0.50, 0.52, 0.51, 0.50, 0.52, 0.51],
        "far": [0.10, 0.11, 0.12],  # far below the best: stops at 3 seeds
        "same": [0.50, 0.53, 0.49, 0.51, 0.52, 0.50],
    }
    plan = race_plan(spec, CONFIGS, _results(values), SEEDS, lambda c: None)
    verdicts = {c.config: (c.reference, c.look.verdict) for c in plan.comparisons}
    assert verdicts["far"] == ("base", "worse") and plan.seeds["far"] == 3
    assert plan.seeds["same"] == plan.seeds["base"] == 6 and "base" not in verdicts


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"seeds": {"initial": 2, "max": 4}}, "seeds: {initial, max} is the seeds of a race: add a race: block"),
        ({"race": {"against": "baseline"}, "seeds": 3}, "seeds: a race needs seeds: {initial: N, max: M}, got 3"),
        ({"race": {"alpha": 2.0}, "seeds": {"initial": 2, "max": 4}}, "race.alpha: 2.0 is out of range"),
        ({"race": {"lambda": 1}, "seeds": {"initial": 2, "max": 4}}, "race.lambda: unknown key; race keys: against"),
        ({"race": {}, "seeds": {"initial": 4, "max": 2}}, "seeds.max: 2 is below seeds.initial: 4"),
        ({"race": {"against": "baseline"}, "seeds": {"initial": 2, "max": 4}, "baseline": None}, "needs the study's"),
    ],
)
def test_bad_race_entries_are_refused_with_the_key(tmp_path, search, message):
    search = {"grid": {"train.lr": [1e-3, 2e-3]}, "baseline": {"train.lr": 1e-3}, **search}
    search = {k: v for k, v in search.items() if v is not None}
    with pytest.raises(ConfigError, match="race|seeds") as error:
        load_study(write_study(tmp_path, **search), check_configs=False)
    assert message in str(error.value)


RACE = {
    "config": HELD,
    "grid": {"train.lr": [1e-3, 2e-3]},
    "seeds": {"initial": 2, "max": 4},
    "race": {"against": "baseline", "futility": 0.0},
    "baseline": {"train.lr": 1e-3},
    "plugins": ["hold_step"],
}


def test_a_race_killed_in_a_round_resumes_where_it_stood_and_runs_each_pair_once(tmp_path, hold):
    path = write_study(tmp_path, **RACE)  # its trials wait while `hold` exists: the kill lands in the first round
    out = tmp_path / "out"
    proc = spawn(path, out, "--workers", "2")
    wait_for_trials_running(out, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 60
    while time.time() < deadline and any(t.state.name == "RUNNING" for t in trials(out)):
        time.sleep(0.2)  # the killed parent's workers mark their trials and stop
    hold.unlink()
    resumed = spawn(path, out, "--workers", "2")
    log = resumed.communicate(timeout=400)[0]
    assert resumed.returncode == 0, log
    done = completed_identities(out)
    assert set(done.values()) == {1}  # every (configuration, seed) completed exactly once
    study = load_study(path, check_configs=False)
    results = {(t.user_attrs["config_id"], t.user_attrs["seed"]): t.values[0] for t in trials(out) if t.values}
    plan = study_plan(study, results)
    assert not any(c.racing for c in plan.comparisons)  # resumed to the end of the race
    expected = sum(plan.seeds.values())
    assert len(done) == expected and Counter(t.state.name for t in trials(out))["COMPLETE"] == expected
    assert plan.seeds[config_id({"train.lr": 1e-3})] == max(plan.seeds.values())


def test_a_seed_failed_for_good_stops_the_comparisons_that_need_it_not_the_race():
    # found in review: the race waited for the failed pair for ever, every other comparison with it
    spec = RaceSpec("baseline", initial=3, maximum=6, futility=0.0)
    values = {"base": [0.1, 0.12, 0.11], "far": [0.9, 0.91], "same": [0.1, 0.13, 0.1]}
    reference = lambda c: None if c == "base" else "base"  # noqa: E731
    plan = race_plan(spec, CONFIGS, _results(values), SEEDS, reference, failed={("far", 2)})
    far, same = plan.comparisons
    assert far.failed and far.verdict == "failed" and not far.racing
    assert same.looks == [3] and same.racing and plan.seeds["same"] == 4
    best = race_plan(RaceSpec("best", 3, 6), CONFIGS, _results(values), SEEDS, lambda c: None, failed={("far", 2)})
    assert [c.verdict for c in best.comparisons if c.config == "far"] == ["failed"]
