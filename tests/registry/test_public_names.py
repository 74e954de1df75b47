"""The registry's public names are spelled three times in its ``__init__``: the imports type
checkers read, the table the lazy ``__getattr__`` resolves from, and ``__all__``. They must
agree, or a name type-checks and then fails at run time (or loads from the wrong module)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import leadscore.registry as registry


def _type_checking_imports() -> dict[str, str]:
    tree = ast.parse(Path(registry.__file__).read_text())
    guarded = next(node for node in tree.body if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    return {alias.asname or alias.name: str(node.module)
            for node in guarded.body if isinstance(node, ast.ImportFrom)
            for alias in node.names}


def test_the_lazy_table_names_what_the_type_checker_imports_from_the_same_module() -> None:
    assert _type_checking_imports() == registry._OWNER


def test_every_public_name_is_exported_and_resolves_to_its_owner_s_object() -> None:
    assert sorted(registry.__all__) == sorted(registry._OWNER)
    for name, owner in registry._OWNER.items():
        assert getattr(registry, name) is getattr(importlib.import_module(owner), name), name
