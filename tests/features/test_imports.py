"""Code test: the shared rules import nothing a Lambda must not ship (ML libraries, pickle)."""

from __future__ import annotations

import ast
from pathlib import Path

import leadscore
import pytest

PACKAGE = Path(leadscore.__file__).parent
FORBIDDEN = {"xgboost", "lightgbm", "sklearn", "scipy", "pandas", "pickle", "joblib", "boto3"}


@pytest.mark.parametrize(
    "module",
    [
        "features/contract.py",
        "features/nested.py",
        "features/vector.py",
        "features/flat.py",
        "errors.py",
        "classes.py",
        "scoring/rules.py",
    ],
)
def test_no_forbidden_imports(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
