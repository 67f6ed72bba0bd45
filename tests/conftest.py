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
