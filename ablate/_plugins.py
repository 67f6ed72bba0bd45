"""Loading of component variants: built-ins, entry points and modules named in a config.

Registration happens on import, so "X is not in the registry" usually means a module was
never imported; :func:`load_components` is therefore called before any name is looked up.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ENTRY_POINT_GROUP = "ablate.plugins"
# the top-level components/ folder, installed (and linked in a source checkout) as ablate/components, so that
# no package named "components" lands on anyone's path
BUILT_IN = "ablate.components"
_loaded: set[str] = set()


class PluginError(ImportError):
    """A plugin module or entry point could not be imported."""


def _import(module: str, origin: str, folder: str | None = None) -> None:
    if module in _loaded:
        return
    try:
        importlib.import_module(module)
    except Exception as exc:  # any import-time failure is the plugin's, report it as such
        where = f"{folder}, " if folder is not None else ""
        searched = f" (searched {where}the current folder, PYTHONPATH and installed packages)"
        missing = isinstance(exc, ModuleNotFoundError) and exc.name is not None and module.startswith(exc.name)
        raise PluginError(
            f"{origin}: cannot import plugin module '{module}': {type(exc).__name__}: {exc}"
            + (searched if missing else "")
        ) from exc
    _loaded.add(module)


def load_components(
    plugins: Iterable[str] = (), origin: str = "plugins", folder: str | Path | Sequence[str | Path] | None = None
) -> None:
    """Import the built-in ``components`` package, installed entry points and ``plugins``.

    Args:
        plugins: Dotted module names (e.g. from a config's ``plugins:`` list).
        origin: Where ``plugins`` came from, for error messages (e.g. the study file).
        folder: Where the file that names ``plugins`` lies: its modules are importable from there, as a
            script's neighbours are (``my_level.py`` beside ``study.yaml`` is ``plugins: [my_level]``); several
            folders for a study that extends files elsewhere (each file's plugins lie beside it).
    """
    plugins = list(plugins)
    folders = [] if folder is None else [folder] if isinstance(folder, str | Path) else list(folder)
    folders = [Path(f).resolve() for f in folders] if plugins else []
    for path in reversed(folders):  # the first one searched first
        if str(path) not in sys.path:  # kept: worker processes unpickle plugin functions by module name
            sys.path.insert(0, str(path))
    searched = ", ".join(map(str, folders)) or None
    if BUILT_IN not in _loaded:
        built_in = importlib.import_module(BUILT_IN)
        for info in pkgutil.walk_packages(built_in.__path__, f"{BUILT_IN}."):
            _import(info.name, "built-in components")
        _loaded.add(BUILT_IN)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            _import(ep.value.split(":")[0], f"entry point '{ep.name}'")
    for module in plugins:
        _import(module, origin, searched)
