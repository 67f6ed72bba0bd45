"""Content-addressed stage cache: trained models, CAMs and other artifacts.

An entry lives in ``<root>/<stage>/<key>/`` where ``key`` hashes everything that affects it.
Entries are built in a temporary folder and renamed into place, and ``meta.json`` (written
last, holding file checksums) marks them complete, so a killed process never leaves a
half-written entry that looks valid. A per-entry file lock stops two workers building the
same artifact twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

META = "meta.json"

#: Every stage the harness caches, with what its entries hold (``ablate cache`` checks ``--stage`` against it).
STAGES: dict[str, str] = {
    "pretrained": "backbones after a pretrainer's task, the start of every trial that names it",
    "model": "trained networks, keyed by everything their training read",
    "frozen_outputs": "a frozen teacher's class maps on every training batch, read by the students of a sweep",
    "cams": "CAMs and smoke probabilities of a split",
    "features": "a trained network's features on a split, for post-processors",
    "post": "values a post-processing step computed (a learned affinity, CLIP or SAM outputs)",
    "pseudo_masks": "the train split's pseudo-masks, for stage 3",
    "segmenter": "segmenters trained on pseudo-masks (stage 3)",
    "datasets": "files a dataset component generated under its own key (a plain file each, not a keyed entry)",
}


def default_root() -> Path:
    """``$ABLATE_CACHE``, else ``$XDG_CACHE_HOME/ablate`` (``~/.cache/ablate``)."""
    if os.environ.get("ABLATE_CACHE"):
        return Path(os.environ["ABLATE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ablate"


def stable_hash(value: Any) -> str:
    """Hash of a JSON-able value, independent of dict order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _checksums(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != META
    }


class StageCache:
    """Artifacts keyed by the inputs that produced them.

    Args:
        root: cache folder (created on demand).

    Raises:
        NotADirectoryError: ``root`` exists and is not a folder.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"stage cache {self.root} is a file, not a folder (set --dir or $ABLATE_CACHE)")
        self.builds: dict[str, int] = {}  # stage -> entries built by this process (tests count trainings)

    def path(self, stage: str, inputs: Any) -> Path:
        if stage not in STAGES:
            raise ValueError(f"unknown cache stage {stage!r}: add it to ablate.cache._store.STAGES")
        return self.root / stage / stable_hash(inputs)

    def _valid(self, entry: Path) -> bool:
        try:
            meta = json.loads((entry / META).read_text())
            return meta["files"] == _checksums(entry)
        except (OSError, ValueError, KeyError):
            return False

    @contextmanager
    def _lock(self, entry: Path) -> Iterator[None]:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with open(entry.parent / f"{entry.name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def lookup(self, stage: str, inputs: Any) -> Path | None:
        """The entry's folder if it exists and is intact, else None."""
        entry = self.path(stage, inputs)
        return entry if self._valid(entry) else None

    def get_or_build(self, stage: str, inputs: Any, build: Callable[[Path], None]) -> Path:
        """The folder of entry (stage, inputs); ``build(folder)`` writes its files if it is missing or corrupt."""
        entry = self.path(stage, inputs)
        if self._valid(entry):
            return entry
        with self._lock(entry):
            if self._valid(entry):  # another worker finished it while we waited
                return entry
            tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
            try:
                build(tmp)
                meta = {"stage": stage, "inputs": inputs, "files": _checksums(tmp)}
                (tmp / META).write_text(json.dumps(meta, sort_keys=True, default=str, indent=1))
                if entry.exists():
                    shutil.rmtree(entry)  # corrupt leftover
                os.replace(tmp, entry)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        self.builds[stage] = self.builds.get(stage, 0) + 1
        return entry

    def entries(self) -> list[tuple[str, Path, int, bool]]:
        """(stage, path, size in bytes, intact) for every entry: a keyed folder, or a file a component wrote into
        a stage folder itself (a generated dataset: checked by its component when read, so counted intact)."""
        rows = []
        if not self.root.is_dir():
            return rows
        for stage_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for entry in sorted(p for p in stage_dir.iterdir() if not p.name.startswith(".")):
                if entry.is_dir():
                    size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                    rows.append((stage_dir.name, entry, size, self._valid(entry)))
                elif entry.suffix != ".lock":  # a lock file is kept: a process may hold it (see _lock)
                    rows.append((stage_dir.name, entry, entry.stat().st_size, True))
        return rows

    @staticmethod
    def code_changes(entry: Path) -> tuple[list[str], list[str]]:
        """The modules whose code changed since ``entry`` was made, and those that do not import here to be
        checked (both empty when it is current or unreadable)."""
        from ablate.cache._code import code_changes

        try:
            return code_changes(json.loads((entry / META).read_text()).get("inputs"))
        except (OSError, ValueError):
            return [], []

    def outdated(self, entry: Path) -> list[str]:
        """The modules whose code changed since ``entry`` was made; a module that does not import here is not
        counted (its entry may well be current where the study's plugins import)."""
        return self.code_changes(entry)[0]

    def prune(self, stage: str | None = None, corrupt_only: bool = False, outdated_only: bool = False) -> int:
        """Delete entries (of one stage; or only corrupt ones, or only those made by changed code); returns how
        many were removed. Pruning all or the corrupt entries also removes the unfinished builds of killed
        processes."""
        removed = 0
        for entry_stage, entry, _, intact in self.entries():
            if stage is not None and entry_stage != stage:
                continue
            if (corrupt_only and intact) or (outdated_only and not self.outdated(entry)):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        if not outdated_only:
            for folder in self.abandoned_builds(stage):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def abandoned_builds(self, stage: str | None = None) -> list[Path]:
        """Temporary build folders (``.<key>.<random>``) that no process is building: left by a killed one."""
        found: list[Path] = []
        if not self.root.is_dir():
            return found
        stage_dirs = [self.root / stage] if stage else [p for p in self.root.iterdir() if p.is_dir()]
        for folder in (f for d in stage_dirs if d.is_dir() for f in sorted(d.iterdir())):
            if not (folder.is_dir() and folder.name.startswith(".")):
                continue
            key = folder.name[1:].split(".")[0]
            with open(folder.parent / f"{key}.lock", "a") as handle:
                try:  # a builder holds its entry's lock until the folder is renamed into place or removed
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                fcntl.flock(handle, fcntl.LOCK_UN)
            found.append(folder)
        return found
