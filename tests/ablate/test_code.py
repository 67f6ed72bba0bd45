"""Code fingerprints of cache entries: which modules count, and which changes make an entry outdated."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from ablate import DISTANCES, StageCache
from ablate._code import code_changes, code_fingerprint, module_hash

HELPER = "def core(a, b):\n    return (a - b).abs().mean()\n"
PLUGIN = """
from ablate import DISTANCES
from code_test_helper import core


@DISTANCES.register("code_test_distance")
def distance(a, b):
    return core(a, b)
"""


@pytest.fixture
def plugin(tmp_path: Path):
    """A single-file plugin whose maths lives in a helper module beside it."""
    (tmp_path / "code_test_helper.py").write_text(HELPER)
    (tmp_path / "code_test_plugin.py").write_text(PLUGIN)
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.import_module("code_test_plugin")
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        DISTANCES._entries.pop("code_test_distance", None)
        for name in ("code_test_plugin", "code_test_helper"):
            sys.modules.pop(name, None)


def test_a_helper_module_beside_a_single_file_plugin_is_fingerprinted(plugin: Path) -> None:
    # an edit of the helper served the models trained with the old maths
    fingerprint = code_fingerprint((), [(DISTANCES, "code_test_distance")])
    assert set(fingerprint) == {"code_test_plugin", "code_test_helper"}


def test_only_modules_that_import_and_differ_are_changed() -> None:
    inputs = {
        "model": {"code": {"ablate._data": module_hash("ablate._data"), "ablate._train": "0" * 16}},
        "cams": [{"code": {"code_test_not_on_this_path": "1" * 16}}],
    }
    assert code_changes(inputs) == (["ablate._train"], ["code_test_not_on_this_path"])


def test_pruning_outdated_entries_keeps_those_of_plugins_that_do_not_import_here(tmp_path: Path) -> None:
    # run outside the plugin's folder, `ablate cache --prune-outdated` deleted the plugin's valid models
    cache = StageCache(tmp_path)
    elsewhere = cache.get_or_build("model", {"code": {"code_test_not_on_this_path": "1" * 16}}, _write)
    changed = cache.get_or_build("model", {"code": {"ablate._train": "0" * 16}}, _write)
    assert cache.prune(outdated_only=True) == 1
    assert elsewhere.is_dir() and not changed.exists()


def _write(folder: Path) -> None:
    (folder / "weights.pt").write_bytes(b"weights")
