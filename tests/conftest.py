"""Test-wide settings: offline, a private stage cache per session, few threads."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach a model hub
os.environ["ABLATE_CACHE"] = tempfile.mkdtemp(prefix="ablate-test-cache-")  # never the user's cache
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import ablate  # noqa: E402

torch.set_num_threads(2)
ablate.load_components()


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
