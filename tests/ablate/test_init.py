"""The public names of ``ablate``: one list, each loaded on first use."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import ablate


def test_every_public_name_is_exported_once_and_resolves_to_its_module() -> None:
    assert set(ablate._EXPORTS) == set(ablate.__all__) - {"__version__"}
    for name, (module, attribute) in ablate._EXPORTS.items():
        assert getattr(ablate, name) is getattr(importlib.import_module(module), attribute)


def test_the_type_checking_imports_name_the_same_objects() -> None:
    tree = ast.parse(Path(ablate.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))
    imported = {
        alias.asname or alias.name: (node.module, alias.name)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == ablate._EXPORTS
