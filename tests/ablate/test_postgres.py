"""A real PostgreSQL storage: two ``ablate run`` processes share one grid study through it.

The server is a throwaway cluster started by the fixture (``initdb`` + ``pg_ctl``, as the ``postgres`` user
when the tests run as root). Without PostgreSQL's server binaries the test is skipped with the reason;
``.ci/run`` installs them, so in CI it always runs.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest
import yaml

TINY = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 1, "batch_size": 16},
    "paradigm": {"name": "single"},
}


def _server_binaries() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[::-1]), None)
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """The URL of a fresh, empty database on a private PostgreSQL server (stopped afterwards)."""
    bindir = _server_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed; .ci/run installs them")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root
    folder = Path(tempfile.mkdtemp(prefix="ablate-pg-"))
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "ablate")
    options = f"-p {port} -h 127.0.0.1 -k {folder}"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    try:
        with psycopg.connect(f"postgresql://ablate@127.0.0.1:{port}/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE studies")
        yield f"postgresql://ablate@127.0.0.1:{port}/studies"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


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
