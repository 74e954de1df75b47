"""One model-store layout: the champion pointer, the version folders, the rejected records and
the experiment keys are spelled once (`leadscore.bundle`), and promotion, the model store and
experiments agree on them, also for a store kept under a prefix of its bucket."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from leadscore import bundle
from leadscore.adapters.s3_store import open_store
from leadscore.bundle import CHAMPION_POINTER_KEY, pointer_root, version_prefix
from leadscore.experiments.serving import ExperimentScorer, experiment_scorer
from leadscore.scoring.service import ScoringService
from leadscore.wiring.scoring import model_store

from tests.fixtures.scoring import upload_bundle

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "shared" / "python" / "leadscore"
RECORDED = ROOT / "tests" / "scoring" / "default_contract" / "bundle"
LAYOUT_WORDS = ("models/", "champion.json", "experiment.json")


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_the_layout_is_spelled_in_one_module() -> None:
    spelled: list[str] = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "functions").rglob("*.py")]):
        if path == PACKAGE / "bundle.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docs
                    and any(word in node.value for word in LAYOUT_WORDS)):
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert spelled == []


def test_pointer_roots() -> None:
    assert pointer_root(CHAMPION_POINTER_KEY) == ""
    assert pointer_root("team/a/models/champion.json") == "team/a"
    assert pointer_root("/srv/store/models/champion.json") == "/srv/store"
    assert pointer_root("pointers/champion.json") is None
    assert bundle.pointed_prefix({"version": "lsm-1"}) == "models/lsm-1/"


def test_a_store_under_a_bucket_prefix_serves_its_champion(
    s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """Promotion keeps a store's keys relative to its root (``s3://bucket/team``): the
    pointer's ``prefix`` is ``models/<version>/`` under that root. The model store read it
    from the bucket's top and never found the bundle."""
    s3, name = s3_bucket
    manifest = json.loads((RECORDED / "manifest.json").read_text())
    version = manifest["model_version"]
    upload_bundle(s3, name, RECORDED, f"team/{version_prefix(version)}")
    pointer = {"version": version, "prefix": version_prefix(version),
               "sha256": manifest["sha256"]}
    s3.put_object(Bucket=name, Key=f"team/{CHAMPION_POINTER_KEY}",
                  Body=json.dumps(pointer).encode())
    uri = f"s3://{name}/team/{CHAMPION_POINTER_KEY}"
    loaded: list[str] = []

    def loader(directory: Path) -> Any:
        # what was downloaded, without the cost of an onnxruntime session
        loaded.append(json.loads((directory / "manifest.json").read_text())["model_version"])
        return SimpleNamespace(version=version, manifest=manifest)

    store = model_store(uri, cache_dir=tmp_path, loader=loader)
    model = store.current()
    assert model is not None and loaded == [version], store.status()
    # experiments are read beside the same pointer, their variants from the same folders
    scorer = experiment_scorer(ScoringService(store), uri, refresh_seconds=60,
                               open_store=open_store)
    assert isinstance(scorer, ExperimentScorer)
    assert scorer.models._version_uri(version) == f"s3://{name}/team/{version_prefix(version)}"
