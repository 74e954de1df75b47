"""tools/modelctl.py on a local store: promote, list, show-champion, why-rejected, rollback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import modelctl

from .conftest import GOOD_METRICS, BundleFactory

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = modelctl.main(list(argv))
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else None, captured.err


@pytest.fixture(autouse=True)
def _default_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MIN_AUC", "MAX_AUC_DROP", "MAX_BRIER"):
        monkeypatch.delenv(name, raising=False)


def test_operator_workflow(
    capsys: pytest.CaptureFixture[str], make_bundle: BundleFactory, tmp_path: Path
) -> None:
    store = f"file://{tmp_path / 'store'}"
    code, _, err = _run(capsys, "--store", store, "show-champion")
    assert code == 1 and "no champion" in err

    code, first, _ = _run(capsys, "--store", store, "promote", str(make_bundle(seed=1)))
    assert code == 0 and first["status"] == "promoted"
    code, second, _ = _run(capsys, "--store", store, "promote", str(make_bundle(seed=2)))
    assert code == 0 and second["status"] == "promoted"

    weak = make_bundle(seed=3, metrics={**GOOD_METRICS, "brier": 0.4})
    code, refused, _ = _run(capsys, "--store", store, "promote", str(weak))
    assert code == 1 and refused["status"] == "rejected"
    assert "above MAX_BRIER" in refused["reasons"][0]

    code, why, _ = _run(capsys, "--store", store, "why-rejected", refused["version"])
    assert code == 0 and why["reasons"] == refused["reasons"]

    code, listing, _ = _run(capsys, "--store", store, "list")
    assert code == 0
    assert {r["version"]: r["status"] for r in listing} == {
        second["version"]: "champion", first["version"]: "previous",
        refused["version"]: "rejected",
    }

    code, champion, _ = _run(capsys, "--store", store, "show-champion")
    assert code == 0 and champion["version"] == second["version"]

    code, rolled, _ = _run(capsys, "--store", store, "rollback")
    assert code == 0 and rolled["version"] == first["version"]
    code, _, err = _run(capsys, "--store", store, "rollback")
    assert code == 1 and "nothing to roll back" in err

    code, forced, _ = _run(capsys, "--store", store, "promote", str(weak), "--force")
    assert code == 0 and forced["status"] == "promoted"


def test_gate_thresholds_come_from_the_environment(
    capsys: pytest.CaptureFixture[str], make_bundle: BundleFactory, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MIN_AUC", "0.9")
    code, out, _ = _run(capsys, "--store", str(tmp_path / "s"), "promote", str(make_bundle()))
    assert code == 1 and "below MIN_AUC 0.9000" in out["reasons"][0]


def test_unknown_rejection_and_missing_bundle(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "--store", str(tmp_path), "why-rejected", "lsm-nope")
    assert code == 1 and "no rejection recorded" in err
    code, _, err = _run(capsys, "--store", str(tmp_path), "promote", str(tmp_path / "missing"))
    assert code == 2 and "not a bundle directory" in err


def test_the_script_runs_standalone(make_bundle: BundleFactory, tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "modelctl.py"), "--store", str(store),
         "promote", str(make_bundle(seed=1))],
        capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
        check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "promoted"
    assert (store / "models" / "champion.json").is_file()
