"""Test-wide settings: offline, a private stage cache per session, one torch thread; shared fixtures."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach a model hub
os.environ["ABLATE_CACHE"] = tempfile.mkdtemp(prefix="ablate-test-cache-")  # never the user's cache
os.environ.setdefault("TQDM_DISABLE", "1")
# One thread per process, also for the ablate processes tests start: with more runnable threads than the two cores
# (several processes at once, or any load beside the suite), two OpenMP threads made a training step of the default
# student 50 times slower (1.7 s instead of 0.036 s with one thread, measured on this 2-core machine under load)
os.environ["OMP_NUM_THREADS"] = "1"

import psycopg  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ablate  # noqa: E402

torch.set_num_threads(1)
ablate.load_components()


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    """A stage cache of the test's own (``ABLATE_CACHE``), for a test that asserts what it trains."""
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> ablate.StageCache:
    """One stage cache for the whole session, so the default data is generated once."""
    return ablate.StageCache(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def plugin_folder(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """``tmp_path`` on ``sys.path`` for plugin modules; every registration and plugin import is undone afterwards."""
    import ablate._plugins as plugins

    for registry in ablate.REGISTRIES.values():
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(plugins, "_loaded", set(plugins._loaded))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture
def ablate_process():
    """``run(*args, cwd=..., **env)``: ``python -m ablate *args`` in another process, as a user runs it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def run(*args: object, cwd: Path = root, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "ablate", *map(str, args)]
        environ = {**os.environ, **env}
        return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout)

    return run


def _server_binaries() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[::-1]), None)
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
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
