"""Code fingerprints of cache entries: which modules count, and which changes make an entry outdated."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from ablate import DISTANCES, StageCache
from ablate.cache._code import code_changes, code_fingerprint, computation, module_hash

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
        "model": {
            "code": {"ablate.pipeline._data": module_hash("ablate.pipeline._data"), "ablate.pipeline._train": "0" * 16}
        },
        "cams": [{"code": {"code_test_not_on_this_path": "1" * 16}}],
    }
    assert code_changes(inputs) == (["ablate.pipeline._train"], ["code_test_not_on_this_path"])


def test_pruning_outdated_entries_keeps_those_of_plugins_that_do_not_import_here(tmp_path: Path) -> None:
    # run outside the plugin's folder, `ablate cache --prune-outdated` deleted the plugin's valid models
    cache = StageCache(tmp_path)
    elsewhere = cache.get_or_build("model", {"code": {"code_test_not_on_this_path": "1" * 16}}, _write)
    changed = cache.get_or_build("model", {"code": {"ablate.pipeline._train": "0" * 16}}, _write)
    assert cache.prune(outdated_only=True) == 1
    assert elsewhere.is_dir() and not changed.exists()


def _write(folder: Path) -> None:
    (folder / "weights.pt").write_bytes(b"weights")


COMPUTATION = '''"""A module."""
import sys


def scale(values, factor):
    """Scaled."""
    total = [v * factor for v in values]
    print(f"scaled {len(values)}", file=sys.stderr)
    return total
'''
RETOUCHED = '''"""The module, documented again."""
import sys

# a comment that explains nothing new
def scale(values,
          factor):
    total = [v * factor for v in values]  # the same maths
    print(f"scaled {len(values)} values", file=sys.stderr, flush=True)
    return total
'''
CHANGED = COMPUTATION.replace("v * factor", "v * factor + 1")


def _hash_of(tmp_path: Path, source: str, name: str) -> str:
    (tmp_path / f"{name}.py").write_text(source)
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.import_module(name)
        return module_hash(name)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_a_comment_a_docstring_formatting_or_a_log_line_leaves_the_hash_and_a_computation_does_not(tmp_path):
    # appending a comment to the trial path's modules marked every model and CAM set of the main job outdated
    original = _hash_of(tmp_path, COMPUTATION, "code_test_original")
    assert _hash_of(tmp_path, RETOUCHED, "code_test_retouched") == original
    assert _hash_of(tmp_path, CHANGED, "code_test_changed") != original
    # a report-only call whose value is used still counts: it is no longer only a report
    assert computation("x = print(1)") != computation("x = None") and computation("print(1)") == computation("pass")
    # a report whose arguments compute, or that writes a file, counts: found in review
    assert computation("x = []\nprint(x.append(1))") != computation("x = []")
    assert computation("logger.info('%s', (n := a * 2))") != computation("pass")
    assert computation("print(r, file=h)") != computation("print(r * 2, file=h)")
    assert computation("print(f'{len(x)} done')") == computation("pass")
