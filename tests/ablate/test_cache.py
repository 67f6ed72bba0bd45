"""The content-addressed stage cache: reuse, keys, corruption detection, failed builds, listing and pruning."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ablate import StageCache
from ablate.cache._store import META, default_root, stable_hash


class Builder:
    """A build function that writes ``value.txt`` and counts its calls."""

    def __init__(self, text: str = "hello") -> None:
        self.text = text
        self.calls = 0

    def __call__(self, folder: Path) -> None:
        self.calls += 1
        (folder / "value.txt").write_text(f"{self.text} {self.calls}")


def test_builds_once_then_reuses(tmp_path: Path) -> None:
    cache, build = StageCache(tmp_path), Builder()
    first = cache.get_or_build("model", {"lr": 0.1}, build)
    second = cache.get_or_build("model", {"lr": 0.1}, build)
    assert first == second == tmp_path / "model" / stable_hash({"lr": 0.1})
    assert build.calls == 1 and cache.builds == {"model": 1}
    assert (first / "value.txt").read_text() == "hello 1"
    # a new cache object on the same folder (another process) reuses the entry too
    assert StageCache(tmp_path).get_or_build("model", {"lr": 0.1}, build) == first and build.calls == 1


def test_meta_records_stage_inputs_and_checksums(tmp_path: Path) -> None:
    entry = StageCache(tmp_path).get_or_build("cams", {"a": [1, 2]}, Builder())
    meta = json.loads((entry / META).read_text())
    assert meta["stage"] == "cams" and meta["inputs"] == {"a": [1, 2]}
    assert set(meta["files"]) == {"value.txt"} and len(meta["files"]["value.txt"]) == 64


def test_key_ignores_dict_order_but_not_values_or_stage(tmp_path: Path) -> None:
    cache, build = StageCache(tmp_path), Builder()
    a = cache.get_or_build("model", {"x": 1, "y": {"p": 2, "q": 3}}, build)
    assert cache.get_or_build("model", {"y": {"q": 3, "p": 2}, "x": 1}, build) == a
    b = cache.get_or_build("model", {"x": 1, "y": {"p": 2, "q": 4}}, build)
    c = cache.get_or_build("cams", {"x": 1, "y": {"p": 2, "q": 3}}, build)
    assert len({a, b, c}) == 3 and build.calls == 3
    assert (b / "value.txt").read_text() == "hello 2" and (a / "value.txt").read_text() == "hello 1"


def _modify(entry: Path) -> None:
    (entry / "value.txt").write_text("tampered")


def _truncate(entry: Path) -> None:
    (entry / "value.txt").write_bytes(b"")


def _delete_meta(entry: Path) -> None:
    (entry / META).unlink()


def _garble_meta(entry: Path) -> None:
    (entry / META).write_text("{not json")


def _delete_file(entry: Path) -> None:
    (entry / "value.txt").unlink()


def _extra_file(entry: Path) -> None:
    (entry / "stray.bin").write_bytes(b"x")


@pytest.mark.parametrize("damage", [_modify, _truncate, _delete_meta, _garble_meta, _delete_file, _extra_file])
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    cache, build = StageCache(tmp_path), Builder()
    entry = cache.get_or_build("model", {"k": 1}, build)
    damage(entry)
    assert cache.lookup("model", {"k": 1}) is None
    assert [intact for *_, intact in cache.entries()] == [False]
    assert cache.get_or_build("model", {"k": 1}, build) == entry
    assert build.calls == 2 and (entry / "value.txt").read_text() == "hello 2"
    assert not (entry / "stray.bin").exists()  # the corrupt folder was replaced whole
    assert cache.lookup("model", {"k": 1}) == entry


def test_failed_build_leaves_no_entry(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)

    def build(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        cache.get_or_build("model", {"k": 1}, build)
    assert cache.lookup("model", {"k": 1}) is None
    assert cache.entries() == [] and cache.builds == {}
    assert [p.name for p in (tmp_path / "model").iterdir() if p.is_dir()] == []  # no temporary folder left
    # the next attempt builds normally
    good = Builder()
    assert cache.get_or_build("model", {"k": 1}, good).is_dir() and good.calls == 1


def test_prune_corrupt_removes_the_build_folders_of_killed_processes_not_of_running_ones(tmp_path: Path) -> None:
    # a kill -9 mid-build left .<key>.<random> folders that no command removed
    cache = StageCache(tmp_path)
    kept = cache.get_or_build("model", {"k": 1}, Builder())
    killed = tmp_path / "model" / f".{stable_hash({'k': 2})}.a1b2c3"
    killed.mkdir()
    (killed / "half.bin").write_bytes(b"partial")
    seen_while_building: list[list[Path]] = []

    def build(folder: Path) -> None:  # another process's build in progress: its folder holds the entry's lock
        seen_while_building.append(cache.abandoned_builds())
        (folder / "value.txt").write_text("done")

    cache.get_or_build("model", {"k": 3}, build)
    assert seen_while_building == [[killed]]
    assert cache.abandoned_builds() == [killed]
    assert cache.prune(corrupt_only=True) == 1
    assert not killed.exists() and kept.is_dir() and cache.abandoned_builds() == []


def test_entries_and_prune(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    assert cache.entries() == [] and StageCache(tmp_path / "missing").entries() == []
    m1 = cache.get_or_build("model", 1, Builder("a"))  # "a 1": 3 bytes
    m2 = cache.get_or_build("model", 2, Builder("bb"))
    c1 = cache.get_or_build("cams", 1, Builder("ccc"))
    _modify(m2)
    rows = cache.entries()
    assert [(stage, path, intact) for stage, path, _, intact in rows] == sorted(
        [("cams", c1, True), ("model", m1, True), ("model", m2, False)]
    )
    size = dict((path, size) for _, path, size, _ in rows)
    assert size[m1] == 3 + (m1 / META).stat().st_size
    assert size[m2] == len("tampered") + (m2 / META).stat().st_size

    assert cache.prune(corrupt_only=True) == 1 and not m2.exists() and m1.exists()
    assert cache.prune(stage="cams") == 1 and not c1.exists() and m1.exists()
    assert cache.prune() == 1 and cache.entries() == []


def test_files_a_dataset_component_wrote_are_entries_of_the_datasets_stage(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    model = cache.get_or_build("model", 1, Builder("a"))
    data = tmp_path / "datasets" / "synthetic-smoke-0123.npz"  # where a component writes what it generated
    data.parent.mkdir()
    data.write_bytes(b"x" * 10)
    (tmp_path / "datasets" / ".synthetic-smoke-0123.npz.ab12.tmp").write_bytes(b"half")  # still being written
    assert [(stage, path, size, intact) for stage, path, size, intact in cache.entries() if stage == "datasets"] == [
        ("datasets", data, 10, True)
    ]
    assert cache.prune(stage="datasets") == 1 and not data.exists() and model.is_dir()
    assert [stage for stage, *_ in cache.entries()] == ["model"]
    assert cache.prune() == 1 and (tmp_path / "model" / f"{model.name}.lock").exists()  # a lock may be held


def test_default_root_honours_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "here"))
    assert default_root() == tmp_path / "here" and StageCache().root == tmp_path / "here"
    monkeypatch.delenv("ABLATE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "ablate"


def test_a_stage_outside_the_documented_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown cache stage 'modle'"):
        StageCache(tmp_path).get_or_build("modle", {"k": 1}, Builder())
