import pytest

from tests.ablate.study.studies import SLOW_STEP


@pytest.fixture(autouse=True)
def _cache_of_its_own(private_cache):
    """Every study test runs with a stage cache of its own: its trials train what it asserts they train."""


@pytest.fixture
def hold(tmp_path, monkeypatch):
    """A file that holds trials in their ``test_hold`` post-processing step while it exists (the step's plugin
    ``hold_step`` beside the study file; :data:`~tests.ablate.study.studies.HELD` runs it). Removed at the end, so
    a worker that outlived its test finishes and the suite does not hang."""
    (tmp_path / "hold_step.py").write_text(SLOW_STEP)
    path = tmp_path / "hold"
    path.touch()
    monkeypatch.setenv("ABLATE_TEST_HOLD", str(path))
    yield path
    path.unlink(missing_ok=True)
