"""Every limit has one definition the others import: the ONNX parity limit (training refuses
to write a bundle beyond it, the gate refuses to promote one), the secret cache age, and the
request limits' defaults (ScoreSettings, and a ScoringService built without settings). A second
literal copy is how a limit drifts: one copy gets changed, the other keeps the old value."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

from leadscore import bundle, errors, settings
from leadscore.registry import gate
from leadscore.scoring.service import ScoringService

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("layers", "training", "functions", "tools", "bench")
LIMIT_PARAMETERS = ("max_age_seconds", "max_batch_size", "max_list_items", "max_error_paths")
#: ``max_age_seconds`` is the secret cache age only where secrets are read (elsewhere, e.g.
#: the loop's record batches, it names another limit)
SECRET_READERS = "layers/shared/python/leadscore/adapters/"


def _trees() -> Iterator[tuple[str, ast.AST]]:
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"))


def _is_limit(name: str, path: str) -> bool:
    return name in LIMIT_PARAMETERS and (name != "max_age_seconds"
                                         or path.startswith(SECRET_READERS))


def _literal_number(node: ast.AST | None) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, int | float)
            and not isinstance(node.value, bool))


def test_the_parity_limit_is_written_once() -> None:
    found = [name for name, tree in _trees() for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and node.value == 1e-5
             and isinstance(node.value, float)]
    assert found == ["layers/shared/python/leadscore/bundle.py"]
    assert gate.MAX_PARITY_ABS_DIFF == bundle.PARITY_MAX_ABS_DIFF


def test_no_limit_default_is_a_literal_copy() -> None:
    """Parameters and settings fields named after a limit take its named default."""
    copies: list[str] = []
    for name, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                positional = args.posonlyargs + args.args
                pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults,
                              strict=True),
                         *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
                copies += [f"{name}:{node.lineno} {arg.arg}" for arg, default in pairs
                           if _is_limit(arg.arg, name) and _literal_number(default)]
            elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                  and _is_limit(node.target.id, name) and _literal_number(node.value)):
                copies.append(f"{name}:{node.lineno} {node.target.id}")
    assert copies == []


def test_the_defaults_agree() -> None:
    defaults = settings.ScoreSettings()
    params = inspect.signature(ScoringService.__init__).parameters
    assert params["max_batch_size"].default == defaults.max_batch_size
    assert params["max_list_items"].default == defaults.max_list_items
    assert params["max_error_paths"].default == defaults.max_error_paths == errors.MAX_ERROR_PATHS
