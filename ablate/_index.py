"""The component index that ``ablate list`` prints, kept so that listing imports neither torch nor a component.

The index (every registry's contract, and each entry's description and parameters) is built by importing the
components once, and stored in the stage cache folder under a key of everything it was read from: the source of
the ``ablate`` package and its built-in components, the installed plugin entry points (name, target, version and
source files) and the ``--plugin`` modules' source files. A change to any of them builds a new index.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ablate import __version__
from ablate._plugins import ENTRY_POINT_GROUP
from ablate.cache._store import default_root

Index = dict[str, dict[str, Any]]  # kind -> {"contract": str, "entries": [{name, description, params: [str]}]}


def component_index(plugins: Iterable[str] = ()) -> Index:
    """Every registry's contract and entries, from the stored index when nothing it was read from changed."""
    plugins = list(plugins)
    key = _sources_key(plugins)
    path = default_root() / "index" / f"{key}.json" if key else None
    if path is not None and path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # unreadable: build it again
    index = _build(plugins)
    if path is not None:
        _write(path, index)
    return index


def _build(plugins: list[str]) -> Index:
    from ablate._plugins import load_components
    from ablate._registries import ALL

    load_components(plugins, origin="--plugin")
    return {
        kind: {
            "contract": registry.contract,
            "entries": [
                {"name": e.name, "description": e.description, "params": [p.describe() for p in e.params]}
                for e in registry
            ],
        }
        for kind, registry in ALL.items()
    }


def _write(path: Path, index: Index) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(index, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache costs the next listing its speed, nothing else


def _sources_key(plugins: list[str]) -> str | None:
    """A digest of every file and version the index is read from; None when a plugin's source cannot be found."""
    digest = hashlib.sha256(__version__.encode())
    folders = [Path(__file__).resolve().parent]  # ablate/, whose components/ link os.walk follows
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist
        digest.update(f"{ep.name}={ep.value}@{dist.version if dist else ''}".encode())
        plugins = [*plugins, ep.value.split(":")[0]]
    for module in plugins:
        origin = _source(module)
        if origin is None:
            return None
        folders.append(origin)
    for folder in folders:
        for file in _python_files(folder):
            digest.update(str(file).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:20]


def _source(module: str) -> Path | None:
    """The file or package folder of ``module``'s top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin) if spec.origin else None


def _python_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = [
        Path(folder) / name
        for folder, _, names in os.walk(root, followlinks=True)
        if "__pycache__" not in folder
        for name in names
        if name.endswith(".py")
    ]
    return sorted(files)
