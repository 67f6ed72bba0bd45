"""Sampling a tuning study: the budget, proposals beside other workers' queued seeds, finite spaces, stuck samplers."""

from __future__ import annotations

import optuna

from tests.ablate.study.studies import (
    TINY,
    completed_identities,
    run_cli,
    trials,
    write_study,
)


def test_resumed_tuning_with_a_larger_budget_never_repeats_a_configuration(tmp_path, capsys):
    tune = {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}}
    config = {**TINY, "paradigm": {"name": "single"}}
    out = tmp_path / "out"
    for n_trials in (2, 3):
        study = write_study(tmp_path, config=config, tune=tune, sampler="random", n_trials=n_trials)
        assert run_cli(str(study), "--out", str(out)) == 0
    done = [t for t in trials(out) if t.state.name == "COMPLETE"]
    assert len(done) == 3 and len({t.params["train.lr"] for t in done}) == 3
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert [line.split()[0] for line in lines] == ["[1/2]", "[2/2]", "[3/3]"]


def test_the_budget_count_reads_trials_other_workers_write_while_it_runs(tmp_path):
    from ablate.storage import identity
    from ablate.study import StudyRunner, load_study

    tune = {"transfer.lambda": {"low": 0.0, "high": 2.0}}
    study = load_study(write_study(tmp_path, tune=tune, sampler="random", n_trials=3))
    runner = StudyRunner(study, out=tmp_path / "out", quiet=True)
    runner.open()
    stored, proposals = runner.stored, runner.proposals
    other = optuna.load_study(study_name="tiny", storage=stored.storage)  # another worker on the same storage

    def primary(value: float) -> dict:
        return {"identity": identity({"transfer.lambda": value}, 0), "primary": True, "seed": 0}

    first = other.ask()
    for key, value in primary(0.1).items():
        first.set_user_attr(key, value)
    just_asked = other.ask()  # its identity is written a moment after the ask
    third = other.ask()
    for key, value in primary(0.3).items():
        third.set_user_attr(key, value)
    assert len(stored.primary_identities()) == 2 and not proposals.spent()
    assert stored._primaries_read == 1  # the trials from the one still without an identity are read again
    for key, value in primary(0.2).items():
        just_asked.set_user_attr(key, value)
    other.enqueue_trial({"transfer.lambda": 0.1}, user_attrs={**primary(0.1), "primary": False, "seed": 1})
    assert len(stored.primary_identities()) == 3 and proposals.spent()
    assert stored._primaries_read == 4


def test_asking_for_a_tuning_trial_leaves_a_trial_another_worker_queued_to_the_atomic_claim(tmp_path, monkeypatch):
    import ablate.study._queue
    from ablate.storage import identity
    from ablate.study import StudyRunner, load_study

    tune = {"transfer.lambda": {"low": 0.0, "high": 2.0}}
    study = load_study(write_study(tmp_path, tune=tune, sampler="random", n_trials=3, seeds=2))
    runner = StudyRunner(study, out=tmp_path / "out", quiet=True)
    runner.open()
    other = optuna.load_study(study_name="tiny", storage=runner.stored.storage)
    params = {"transfer.lambda": 0.5}
    attrs = {"identity": identity(params, 1), "primary": False, "seed": 1, "params": params}
    other.enqueue_trial(params, user_attrs=attrs)
    # the other worker's seed 1 lands after this worker's claim found the queue empty, before it asks
    monkeypatch.setattr(ablate.study._queue, "waiting_trial_ids", lambda storage, study_id: [])
    trial, sampled, seed = runner._next()
    # the queued trial still waits for a claim instead of running as a sampled configuration
    assert other.get_trials()[0].state == optuna.trial.TrialState.WAITING
    assert trial.number == 1 and seed == 0 and sampled != params


def test_a_worker_runs_the_seed_another_worker_queued_for_its_tuned_configuration(tmp_path):
    from ablate.study import StudyRunner, load_study

    tune = {"transfer.lambda": {"low": 0.0, "high": 2.0}}
    study = load_study(write_study(tmp_path, tune=tune, sampler="random", n_trials=3, seeds=2))
    runner, other = (StudyRunner(study, out=tmp_path / "out", quiet=True) for _ in range(2))  # two processes' own
    runner.open()
    other.open()
    _, params, _ = other._next()  # the other worker asks a configuration and queues its seed 1
    # this worker's Optuna cache has never seen that queued trial: registering its parameters raised KeyError
    claimed, claimed_params, seed = runner._next()
    assert (claimed_params, seed) == (params, 1) and claimed.params == other.stored.optuna_study.get_trials()[0].params


def test_a_grid_sampler_over_tuned_choices_runs_every_seed_and_stops_at_the_end_of_its_grid(tmp_path, capsys):
    # Optuna's grid sampler asked Study.stop (refused outside optimize) and read a grid id the queued seeds lack
    study = write_study(
        tmp_path,
        config={**TINY, "paradigm": {"name": "single"}},
        tune={"train.lr": {"choices": [1e-3, 2e-3]}},
        sampler="grid",
        n_trials=5,  # more than the grid holds
        seeds=2,
    )
    assert run_cli(str(study), "--out", str(tmp_path / "out")) == 0
    assert len(completed_identities(tmp_path / "out")) == 4
    assert "tiny: 4/4 trials completed" in capsys.readouterr().out


def test_a_tpe_study_over_fewer_configurations_than_its_budget_stops_when_each_has_run(tmp_path, capsys):
    # it asked the sampler for ever, storing hundreds of pruned duplicates; the timeout bounds the test if it regresses
    study = write_study(
        tmp_path,
        config={**TINY, "paradigm": {"name": "single"}},
        tune={"train.lr": {"choices": [1e-3, 2e-3]}},
        n_trials=3,
        timeout=120,
    )
    assert run_cli(str(study), "--out", str(tmp_path / "out")) == 0
    assert len(completed_identities(tmp_path / "out")) == 2
    assert "tiny: 2/2 trials completed" in capsys.readouterr().out


def test_a_sampler_that_proposes_only_configurations_already_run_is_stopped(tmp_path, monkeypatch, capsys):
    # a finite space caps the budget, but a sampler stuck on what it has run would still be asked for ever
    from ablate.study import _sampling
    from ablate.study._sampling import MAX_REPEATS

    suggest = _sampling.suggest
    monkeypatch.setattr(_sampling, "suggest", lambda study, trial: {**suggest(study, trial), "train.lr": 1e-3})
    config = {**TINY, "paradigm": {"name": "single"}}
    study = write_study(tmp_path, config=config, tune={"train.lr": {"choices": [1e-3, 2e-3]}}, n_trials=2)
    assert run_cli(str(study), "--out", str(tmp_path / "out")) == 1  # one of the two configurations never ran
    assert len(completed_identities(tmp_path / "out")) == 1
    assert sum(t.state.name == "PRUNED" for t in trials(tmp_path / "out")) == MAX_REPEATS
    out = capsys.readouterr()
    assert f"stopped asking the tpe sampler: its last {MAX_REPEATS} proposals had all run already" in out.out
    assert "tiny: 1/2 trials completed, 1 failed or missing" in out.err
