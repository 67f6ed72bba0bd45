"""Code fingerprints for stage-cache keys: an entry made by code that has since changed is never served.

A stage's key holds, beside the configuration, the hash of the code that computes the stage: the harness
modules it runs and the defining module of every component it uses, with the private helper modules
(``components/<kind>/_*.py``) and the shared ``ablate`` helpers that module takes names from. Editing a
post-processor thus invalidates only post-processing entries, editing a loss only the models trained with it.

A module's hash is that of its computation, not of its file: the syntax tree (so comments and formatting do not
count) without docstrings and without statements that only report (a ``print``, a progress bar's postfix, a
warning: :data:`OUTPUT_CALLS`), written back as source. A comment or a log line edited on a cluster retrains
nothing; any change to what a statement computes does.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import sys
import types
from pathlib import Path

from ablate._plugins import BUILT_IN
from ablate._registry import Registry

#: Calls that only report: an expression statement calling one of them (by name or as a method) is left out of a
#: module's hash, when nothing in its arguments can compute (see :func:`_only_reports`). Such a call whose value is
#: used (assigned, passed on) still counts.
OUTPUT_CALLS = frozenset({"print", "warn", "set_postfix", "set_description", "debug", "info", "warning"})
#: The calls a report-only statement's arguments may make: formatting, no side effects.
PURE_CALLS = frozenset({"len", "str", "repr", "round", "float", "int", "abs", "min", "max", "sum", "format", "join"})

# module name -> (the module's spec when hashed, hash): the code this process runs, read once per import
_HASHES: dict[str, tuple[object, str]] = {}


def module_hash(name: str) -> str:
    """Hash of the source of the imported module ``name`` as this process loaded it.

    Read once per import (``importlib.reload`` gives the module a new spec, and a new hash): a file edited
    while a study runs does not relabel the results of the code already running.
    """
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    if name in _HASHES and _HASHES[name][0] is spec:
        return _HASHES[name][1]
    path = getattr(module, "__file__", None)
    if not path or not Path(path).is_file():
        return f"unknown:{name}"  # built in or not a file: only its name can be recorded
    digest = hashlib.sha256(computation(Path(path).read_text(encoding="utf-8")).encode()).hexdigest()[:16]
    _HASHES[name] = (spec, digest)
    return digest


def computation(source: str) -> str:
    """``source`` as what it computes: parsed, docstrings and report-only statements left out, unparsed."""
    return ast.unparse(_Computation().visit(ast.parse(source)))


class _Computation(ast.NodeTransformer):
    """Leaves out docstrings and expression statements that call an :data:`OUTPUT_CALLS` function."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list) or not all(isinstance(s, ast.stmt) for s in statements):
                continue
            has_docstring = field == "body" and isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            )
            kept = [
                s
                for i, s in enumerate(statements)
                if not (has_docstring and i == 0 and _is_string(s)) and not _only_reports(s)
            ]
            if statements and not kept:
                kept = [ast.Pass()]  # a block needs a statement
            setattr(node, field, kept)
        return node


def _is_string(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _only_reports(statement: ast.stmt) -> bool:
    """An expression statement calling an :data:`OUTPUT_CALLS` function whose arguments compute nothing: no
    ``file=`` but the console (a print into a file writes output), no assignment expression, no call but
    :data:`PURE_CALLS`."""
    if not isinstance(statement, ast.Expr) or not isinstance(statement.value, ast.Call):
        return False
    call = statement.value
    if _called_name(call) not in OUTPUT_CALLS or any(
        k.arg == "file" and not _is_console(k.value) for k in call.keywords
    ):
        return False
    arguments = [*call.args, *(k.value for k in call.keywords)]
    inner = [node for argument in arguments for node in ast.walk(argument)]
    return not any(
        isinstance(node, ast.NamedExpr) or (isinstance(node, ast.Call) and _called_name(node) not in PURE_CALLS)
        for node in inner
    )


def _is_console(node: ast.expr) -> bool:
    """``sys.stderr`` or ``sys.stdout``."""
    return isinstance(node, ast.Attribute) and node.attr in ("stderr", "stdout") and isinstance(node.value, ast.Name)


def _called_name(call: ast.Call) -> str | None:
    function = call.func
    return function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)


def _package(name: str) -> str:
    """The package whose modules count as a component's helpers: the built-ins' or a plugin's top level."""
    return BUILT_IN if name.startswith(f"{BUILT_IN}.") else name.split(".")[0]


def _beside(name: str) -> Path | None:
    """The folder of ``name`` when it is a top-level single-file module (a plugin beside its study), else None."""
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if "." in name or hasattr(module, "__path__") or not path:
        return None
    return Path(path).resolve().parent


def _helpers(name: str) -> set[str]:
    """Modules (other than ``name``) that ``name`` imports or takes functions and classes from: in its own
    package (``components/<kind>/_*.py``, sibling variants), the single-file modules beside a single-file
    plugin (``from _my_helpers import core``), and the ``ablate`` modules defining the shared helpers it calls
    (``ablate.minmax``: ``ablate.pipeline._cams``)."""
    module = sys.modules.get(name)
    package = _package(name)
    folder = _beside(name)
    found = set()
    for value in vars(module).values() if module else ():
        if isinstance(value, types.ModuleType):
            origin = value.__name__
        elif inspect.isfunction(value) or inspect.isclass(value):
            origin = value.__module__
        else:  # instances (registries, constants) carry no code of their own
            continue
        in_package = origin == package or origin.startswith(f"{package}.")
        beside = folder is not None and _beside(origin) == folder
        if origin != name and (in_package or beside or _is_harness_private(origin)):
            found.add(origin)
    return found


def _is_harness_private(name: str) -> bool:
    """Whether ``name`` is a private module of the harness (``ablate._registry``, ``ablate.pipeline._cams``), where
    the shared helpers a component takes from ``ablate`` are defined."""
    parts = name.split(".")
    return parts[0] == "ablate" and any(part.startswith("_") for part in parts[1:])


def code_changes(inputs: object) -> tuple[list[str], list[str]]:
    """The modules recorded in the ``code`` fingerprints anywhere inside a cache entry's ``inputs``: those whose
    source differs now (the entry was made by code that no longer exists), and those that do not import in this
    process (a plugin outside ``sys.path``: nothing can be said about them)."""
    changed, unchecked = [], []
    for name, digest in _fingerprints(inputs).items():
        current = current_hash(name)
        if current is None:
            unchecked.append(name)
        elif current != digest:
            changed.append(name)
    return sorted(changed), sorted(unchecked)


def _fingerprints(inputs: object) -> dict[str, str]:
    found: dict[str, str] = {}
    if isinstance(inputs, dict):
        for key, value in inputs.items():
            if key == "code" and isinstance(value, dict):
                found.update(value)
            else:
                found.update(_fingerprints(value))
    elif isinstance(inputs, list):
        for value in inputs:
            found.update(_fingerprints(value))
    return found


def current_hash(name: str) -> str | None:
    """The source hash of module ``name`` as it is now (None: it does not import in this process)."""
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a plugin that fails to import, however it fails, cannot be checked
        return None
    return module_hash(name)


def code_fingerprint(harness: tuple[str, ...], components: list[tuple[Registry, str]]) -> dict[str, str]:
    """Module name -> source hash for the ``harness`` modules and the modules of the named ``components``."""
    names = set(harness)
    for registry, component in components:
        module = registry.get(component).module
        names |= {module, *_helpers(module)}
    return {name: module_hash(name) for name in sorted(names)}
