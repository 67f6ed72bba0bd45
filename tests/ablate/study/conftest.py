import pytest


@pytest.fixture(autouse=True)
def _cache_of_its_own(private_cache):
    """Every study test runs with a stage cache of its own: its trials train what it asserts they train."""
