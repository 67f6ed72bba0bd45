"""The queue: atomic claims under racing processes, queueing one grid from several processes, duplicates."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import yaml

from tests.ablate.study.studies import (
    trials,
    write_study,
)


def _waiting_study(tmp_path: Path, n: int) -> tuple[str, optuna.Study]:
    url = f"sqlite:///{tmp_path}/claims.db"
    study = optuna.create_study(study_name="claims", storage=url)
    for i in range(n):
        study.enqueue_trial({}, user_attrs={"i": i}, skip_if_exists=False)
    return url, study


def test_a_waiting_trial_is_claimed_once_and_names_its_worker(tmp_path):
    from ablate.storage import claim_waiting, open_storage

    url, study = _waiting_study(tmp_path, 1)
    storage = open_storage(url)
    (trial,) = study.get_trials()
    assert claim_waiting(storage, trial._trial_id, "host:1")
    assert not claim_waiting(storage, trial._trial_id, "host:2")  # already RUNNING: the second loses
    (claimed,) = study.get_trials()
    assert claimed.state.name == "RUNNING" and claimed.user_attrs["worker"] == "host:1"
    assert claimed.datetime_start is not None


CLAIMER = """
import json, sys, time
from pathlib import Path
import optuna
from ablate.storage import claim_waiting, open_storage
url, go, worker = sys.argv[1:]
storage = open_storage(url)
study = optuna.load_study(study_name="claims", storage=storage)
ids = [t._trial_id for t in study.get_trials()]
while not Path(go).exists():
    time.sleep(0.01)
print(json.dumps([i for i in ids if claim_waiting(storage, i, worker)]))
"""


def test_processes_racing_for_the_same_trials_claim_each_exactly_once(tmp_path):
    """The race Optuna's read-then-write transition loses on SQLite: 4 processes claim 60 trials at once."""
    url, study = _waiting_study(tmp_path, 60)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, url, str(go), f"w{k}"], stdout=subprocess.PIPE, text=True)
        for k in range(4)
    ]
    time.sleep(8)  # every process has imported and listed the trials (they wait for "go" otherwise)
    go.touch()
    won = [yaml.safe_load(proc.communicate(timeout=120)[0]) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    claimed = [i for ids in won for i in ids]
    assert sorted(claimed) == sorted(t._trial_id for t in study.get_trials())  # each exactly once
    workers = {t._trial_id: t.user_attrs["worker"] for t in study.get_trials()}
    assert all(workers[i] == f"w{k}" for k, ids in enumerate(won) for i in ids)


QUEUER = """
import sys, time
from pathlib import Path
from ablate.study import StudyRunner, load_study
path, out, go = sys.argv[1:]
runner = StudyRunner(load_study(path, check_configs=False), out=out)
runner.open()
while not Path(go).exists():
    time.sleep(0.01)
print(runner.enqueue_missing())
"""


def test_processes_queueing_one_grid_at_once_queue_each_pair_once(tmp_path):
    study = write_study(tmp_path, grid={"transfer.lambda": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}, seeds=2)
    out, go = tmp_path / "out", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", QUEUER, str(study), str(out), str(go)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    time.sleep(8)  # every process has opened the study and waits for "go"
    go.touch()
    queued = [int(proc.communicate(timeout=120)[0].split()[-1]) for proc in procs]
    assert sum(queued) == 16 and len(trials(out)) == 16
    assert len({t.user_attrs["identity"] for t in trials(out)}) == 16
    assert all(t.state.name == "WAITING" for t in trials(out))
    storage = optuna.storages.RDBStorage(f"sqlite:///{out}/study.db")
    assert "ablate:queue-lock" not in storage.get_study_system_attrs(storage.get_study_id_from_name("tiny"))


def test_a_pruned_configuration_proposed_again_is_a_duplicate_not_a_new_run(tmp_path):
    from ablate.storage import identity
    from ablate.study import StudyRunner, load_study

    path = write_study(tmp_path, tune={"train.lr": {"choices": [1e-3, 2e-3]}}, n_trials=2, pruner="median")
    runner = StudyRunner(load_study(path, check_configs=False), out=tmp_path / "out")
    runner.open()
    key = identity({"train.lr": 1e-3}, 0)
    optuna_study = runner.stored.optuna_study
    pruned = optuna_study.ask()
    pruned.set_user_attr("identity", key)
    optuna_study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    again = optuna_study.ask()
    assert runner.queue.duplicate_of(again, key) == pruned.number
    assert runner.queue.duplicate_of(again, identity({"train.lr": 2e-3}, 0)) is None
