"""`modelctl experiment ...` end to end on a local store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leadscore import registry
from leadscore.experiments import store as experiment_store
from leadscore.registry.store import LocalObjectStore
from leadscore.settings import PromoteSettings

from tests.fixtures.scoring import bundle_version
from tools import modelctl


def _rows(path: Path, name: str, strengths: dict[str, float], n: int = 1500) -> Path:
    """Labelled rows where each arm ranks leads with the given strength."""
    rng = np.random.default_rng(11)
    lines = []
    for variant, strength in strengths.items():
        p = rng.beta(2, 6, size=n)
        converted = rng.random(n) < p
        logit = strength * np.log(p / (1 - p)) + rng.normal(size=n)
        score = 1 / (1 + np.exp(-logit))
        lines += [json.dumps({"experiment": name, "variant": variant,
                              "predicted_score": float(s),
                              "predicted_class": "hot" if s >= 0.8 else "cold",
                              "converted": int(c)}) for s, c in zip(score, converted, strict=True)]
    lines.append(json.dumps({"experiment": "other", "variant": "rules", "predicted_score": 0.5,
                             "predicted_class": "cold", "converted": 1}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def store_dir(trained_bundle: Path, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    assert registry.promote(trained_bundle, LocalObjectStore(root), PromoteSettings(),
                            force=True).promoted
    return root


def _ctl(store: Path, *args: str) -> int:
    return modelctl.main(["--store", str(store), "experiment", *args])


def test_create_report_and_apply_a_champion_win(
    store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # These rows differ in ranking strength: the experiment is declared on AUC.
    assert _ctl(store_dir, "create", "ab", "--variants", "rules,champion",
                "--allocation", "50,50", "--metric", "auc") == 0
    rows = _rows(tmp_path / "rows.jsonl", "ab", {"rules": 0.3, "champion": 3.0})
    capsys.readouterr()
    page = tmp_path / "report.html"
    assert _ctl(store_dir, "report", "ab", "--rows", str(rows), "--html", str(page)) == 0
    out = capsys.readouterr().out
    assert "champion ranks leads better than rules" in out
    assert "<svg class=\"chart\"" in page.read_text()
    assert _ctl(store_dir, "promote-winner", "ab", "--rows", str(rows)) == 0
    stopped = experiment_store.get(LocalObjectStore(store_dir), "ab")
    assert stopped.status == "stopped" and stopped.winner == "champion"


def test_no_winner_and_a_rules_win_are_refused(
    store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _ctl(store_dir, "create", "tie", "--variants", "rules,champion",
                "--allocation", "50,50") == 0
    tie = _rows(tmp_path / "tie.jsonl", "tie", {"rules": 1.0, "champion": 1.0})
    assert _ctl(store_dir, "promote-winner", "tie", "--rows", str(tie)) == 1
    assert "no winner yet" in capsys.readouterr().err
    rules_win = _rows(tmp_path / "rules.jsonl", "tie", {"rules": 3.0, "champion": 0.2})
    assert _ctl(store_dir, "promote-winner", "tie", "--rows", str(rules_win)) == 1
    assert "the rules won" in capsys.readouterr().err
    assert experiment_store.running(LocalObjectStore(store_dir)) is not None


def test_a_winning_version_is_promoted_through_the_gate(
    store_dir: Path, second_bundle: Path, tmp_path: Path
) -> None:
    challenger = bundle_version(second_bundle)
    shutil.copytree(second_bundle, store_dir / "models" / challenger)
    assert _ctl(store_dir, "create", "vs", "--variants", f"champion,{challenger}",
                "--allocation", "50,50") == 0
    rows = _rows(tmp_path / "rows.jsonl", "vs", {"champion": 0.3, challenger: 3.0})
    assert _ctl(store_dir, "promote-winner", "vs", "--rows", str(rows)) == 0
    assert registry.get_champion(LocalObjectStore(store_dir))["version"] == challenger


@pytest.mark.parametrize("args, message", [
    (["create", "x", "--variants", "rules", "--allocation", "100"], "variants"),
    (["create", "x", "--variants", "rules,champion", "--allocation", "a,b"], "percentages"),
    (["stop", "never"], "not running"),
    (["report", "never", "--rows", "/dev/null"], "no experiment named"),
])
def test_refusals_are_one_line(store_dir: Path, args: list[str], message: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _ctl(store_dir, *args) == 1
    err: Any = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
