"""Plugins: variants registered from modules outside the package, by config and by entry point."""

from __future__ import annotations

import importlib.metadata
import math
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

import ablate
import ablate._plugins as plugins
from ablate._plugins import ENTRY_POINT_GROUP, PluginError

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 1, "batch_size": 16},
    "threads": 1,
}

CENTROID = '''
"""A third-party level: compares the per-image mean vectors."""

from ablate import LEVELS

CALLS = []


@LEVELS.register("centroid")
def centroid(scale: float = 1.0):
    """Per-image mean vectors (one C-vector per image)."""

    def loss(student, teacher, distance):
        CALLS.append((tuple(student.shape), tuple(teacher.shape)))
        return scale * distance(student.mean(dim=2), teacher.mean(dim=2)).mean()

    return loss
'''


@pytest.fixture
def isolated(plugin_folder: Path) -> Iterator[Path]:
    """The plugin folder; also restores torch's threads and forgets the test's plugin modules."""
    threads = torch.get_num_threads()
    before = set(sys.modules)
    yield plugin_folder
    torch.set_num_threads(threads)
    for name in set(sys.modules) - before:
        if name.startswith("plugin_test_"):
            del sys.modules[name]


def _write(folder: Path, module: str, source: str) -> None:
    (folder / f"{module}.py").write_text(textwrap.dedent(source))


def test_plugin_level_from_outside_the_package_runs_in_a_trial(isolated: Path, shared_cache: ablate.StageCache) -> None:
    _write(isolated, "plugin_test_align", CENTROID)
    assert "centroid" not in ablate.LEVELS
    config = {**TINY, "plugins": ["plugin_test_align"], "transfer": {"level": {"name": "centroid", "scale": 2.0}}}
    result = ablate.run_trial(config, cache=shared_cache, progress=False)

    assert "centroid" in ablate.LEVELS
    assert ablate.LEVELS.get("centroid").module == "plugin_test_align"
    assert result.trainings >= 1
    assert set(result.metrics) == set(ablate.METRICS.names())
    assert all(math.isnan(v) or v >= 0 for v in result.metrics.values())
    # the student's loss used the plugin on every step: 32 images / batch 16 = 2 steps of 1 epoch, and
    # the projected student map was resampled to the teacher's [B, 2, 8x8] class map
    calls = sys.modules["plugin_test_align"].CALLS
    assert calls == [((16, 2, 64), (16, 2, 64))] * 2
    (student_epoch,) = [h for h in result.history if h["tag"] == "student"]
    assert "tf" in student_epoch and math.isfinite(student_epoch["tf"])


def test_plugin_is_only_imported_when_named(isolated: Path) -> None:
    _write(isolated, "plugin_test_align", CENTROID)
    with pytest.raises(ablate.ConfigError, match="transfer.level.name: 'centroid' is not in the levels registry"):
        ablate.validate({"transfer": {"level": "centroid"}})
    ablate.validate({"plugins": ["plugin_test_align"], "transfer": {"level": "centroid"}})


def test_plugin_that_fails_to_import_names_the_module(isolated: Path) -> None:
    _write(isolated, "plugin_test_broken", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginError) as info:
        ablate.validate({"plugins": ["plugin_test_broken"]})
    assert str(info.value) == "plugins: cannot import plugin module 'plugin_test_broken': RuntimeError: boom"
    assert "plugin_test_broken" not in plugins._loaded


def test_missing_plugin_module_names_the_module_and_origin(isolated: Path) -> None:
    with pytest.raises(PluginError, match="^study.yaml: cannot import plugin module 'plugin_test_nothing_here': "):
        ablate.load_components(["plugin_test_nothing_here"], origin="study.yaml")


def test_missing_plugin_says_where_it_was_searched(isolated: Path) -> None:
    with pytest.raises(PluginError, match=r"searched .*sub, the current folder, PYTHONPATH and installed packages\)$"):
        ablate.load_components(["plugin_test_nothing_here"], origin="study.yaml", folder=isolated / "sub")


def test_plugin_beside_the_study_file_is_found_from_any_folder(
    tmp_path: Path, shared_cache: ablate.StageCache, ablate_process
) -> None:
    """``my_level.py`` next to ``study.yaml`` is ``plugins: [my_level]``, run from elsewhere, not on sys.path."""
    folder = tmp_path / "project"
    folder.mkdir()
    _write(folder, "plugin_test_beside", CENTROID)
    study = {
        "name": "beside",
        "plugins": ["plugin_test_beside"],
        "config": TINY,
        "grid": {"transfer.level": ["centroid"]},
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(study))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = ablate_process(
        "run", folder / "study.yaml", "--out", "out", "--quiet", "--no-report",
        cwd=elsewhere, ABLATE_CACHE=str(shared_cache.root), PYTHONPATH=str(ROOT),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "beside: 1/1 trials completed" in proc.stdout


def test_components_import_only_public_names_of_ablate() -> None:
    """A plugin written by copying a built-in must not depend on private modules."""
    private = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "components").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bablate\.(?!components\.)(\w+\.)*_", line)  # ablate._registry, ablate.pipeline._cams, ...
    ]
    assert private == []


class _FakeEntryPoints:
    def __init__(self, *entries: importlib.metadata.EntryPoint) -> None:
        self.entries = entries
        self.groups: list[str | None] = []

    def __call__(self, group: str | None = None) -> tuple[importlib.metadata.EntryPoint, ...]:
        self.groups.append(group)
        return self.entries if group == ENTRY_POINT_GROUP else ()


def _entry_point(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_entry_point_plugin_is_imported_with_the_built_ins(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(
        isolated,
        "plugin_test_ep",
        '''
        from ablate import DISTANCES

        @DISTANCES.register("plugin_test_distance")
        def factory():
            """Always zero."""
            return lambda a, b: (a - b).sum(dim=-1) * 0
        ''',
    )
    fake = _FakeEntryPoints(_entry_point("mine", "plugin_test_ep:factory"))
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", fake)
    monkeypatch.setattr(plugins, "_loaded", set())  # as in a fresh process

    ablate.load_components()
    assert fake.groups == [ENTRY_POINT_GROUP]
    assert "plugin_test_ep" in plugins._loaded and "plugin_test_ep" in sys.modules
    assert ablate.DISTANCES.get("plugin_test_distance").description == "Always zero."
    assert "global" in ablate.LEVELS  # the built-ins are still there
    ablate.load_components()  # entry points are scanned once per process
    assert fake.groups == [ENTRY_POINT_GROUP]


def test_broken_entry_point_names_the_entry_point(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        plugins.importlib.metadata, "entry_points", _FakeEntryPoints(_entry_point("bad", "plugin_test_gone:x"))
    )
    monkeypatch.setattr(plugins, "_loaded", set())
    with pytest.raises(PluginError, match="^entry point 'bad': cannot import plugin module 'plugin_test_gone': "):
        ablate.load_components()


METRIC_PLUGIN = '''
from ablate import METRICS

@METRICS.register("plugin_test_score")
def plugin_test_score(ev):
    """Accuracy under another name (lower is better, so the stored direction is minimize)."""
    return float((ev.smoke_prob >= 0.5).astype(int).__eq__(ev.labels).mean())

plugin_test_score.lower_is_better = True
'''


def test_status_and_report_work_where_the_studys_plugin_does_not_import(tmp_path: Path, ablate_process) -> None:
    """A study run with a plugin metric as objective, read on a machine without the plugin."""
    folder = tmp_path / "project"
    folder.mkdir()
    _write(folder, "plugin_test_metric", METRIC_PLUGIN)
    study = {"name": "gone", "plugins": ["plugin_test_metric"], "config": TINY, "grid": {"train.lr": [1e-3, 2e-3]}}
    study |= {"objective": "plugin_test_score"}
    (folder / "study.yaml").write_text(yaml.safe_dump(study))
    # a cache of its own: the session's serves other tests that count their trainings
    env = {"ABLATE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}

    def ablate_cli(command: str, *options: str) -> subprocess.CompletedProcess:
        return ablate_process(command, folder / "study.yaml", "--out", tmp_path / "out", *options, **env)

    assert ablate_cli("run", "--quiet", "--no-report").returncode == 0
    (folder / "plugin_test_metric.py").unlink()  # the plugin is not on this machine
    status = ablate_cli("status")
    assert status.returncode == 0, status.stderr
    assert "cannot import plugin module 'plugin_test_metric'" in status.stderr and "2/2" in status.stdout
    report = ablate_cli("report")
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "out" / "report.pdf").is_file()
    assert ablate_cli("run", "--quiet").returncode == 2  # running needs it: refused in one line


def test_the_ablate_script_imports_a_plugin_from_the_current_folder(tmp_path: Path) -> None:
    """The console script, unlike ``python -m ablate``, does not put the current folder on sys.path by itself."""
    _write(tmp_path, "plugin_test_here", CENTROID)
    script = Path(sys.executable).with_name("ablate")
    env = {"ABLATE_CACHE": str(tmp_path / "cache"), "PATH": str(script.parent), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [str(script), "list", "levels", "--plugin", "plugin_test_here"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^  centroid +Per-image mean vectors", proc.stdout, re.MULTILINE)


def test_a_study_extending_a_file_elsewhere_finds_that_files_plugins_beside_it(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ablate.study import load_study

    monkeypatch.setattr(sys, "path", list(sys.path))  # the folders load_components adds are dropped afterwards
    library, mine = isolated / "library", isolated / "mine"
    library.mkdir()
    mine.mkdir()
    _write(library, "plugin_test_extended", CENTROID)
    tiny = {"data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8}}
    parent = {"name": "base", "config": tiny, "grid": {"transfer.level": ["centroid"]}}
    (library / "base.yaml").write_text(yaml.safe_dump({**parent, "plugins": ["plugin_test_extended"]}))
    (mine / "child.yaml").write_text(yaml.safe_dump({"extends": "../library/base.yaml", "name": "child"}))
    # it was looked for beside child.yaml only: "cannot import plugin module 'plugin_test_extended'"
    study = load_study(mine / "child.yaml", check_configs=False)
    assert study.plugins == ["plugin_test_extended"] and "centroid" in ablate.LEVELS
