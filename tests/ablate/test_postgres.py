"""A real PostgreSQL storage: two ``ablate run`` processes share one grid study through it.

The server is the throwaway cluster of the ``postgres`` fixture (tests/conftest.py). Without PostgreSQL's server
binaries the test is skipped with the reason; ``.ci/run`` installs them, so in CI it always runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import yaml

TINY = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 1, "batch_size": 16},
    "paradigm": {"name": "single"},
}


def test_two_processes_share_a_grid_on_postgresql(postgres: str, tmp_path: Path, shared_cache) -> None:
    lrs = [1e-3, 2e-3, 3e-3, 4e-3]
    study = tmp_path / "pg.yaml"
    study.write_text(yaml.safe_dump({"name": "pg", "config": TINY, "grid": {"train.lr": lrs}, "seeds": 2}))
    env = {**os.environ, "ABLATE_CACHE": str(shared_cache.root)}
    command = [sys.executable, "-m", "ablate", "run", str(study), "--storage", postgres, "--quiet", "--no-report"]
    procs = [
        subprocess.Popen([*command, "--out", str(tmp_path / f"out{k}")], env=env, text=True, stdout=subprocess.PIPE)
        for k in range(2)
    ]
    logs = [proc.communicate(timeout=400)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], logs
    stored = optuna.load_study(study_name="pg", storage=postgres).get_trials()
    assert Counter(t.state.name for t in stored) == {"COMPLETE": 8}  # nothing failed, pruned or queued twice
    assert Counter(t.user_attrs["identity"] for t in stored) == Counter(
        {i: 1 for i in {t.user_attrs["identity"] for t in stored}}
    )
    assert len({t.user_attrs["identity"] for t in stored}) == 8
