"""tools/modelctl.py on a local store: promote, list, show-champion, why-rejected, rollback."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.bad_models import constant_bundle
from tools import modelctl

from .conftest import BundleFactory, gate_csv

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = modelctl.main(list(argv))
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else None, captured.err


@pytest.fixture(autouse=True)
def _default_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MIN_AUC", "MAX_AUC_DROP", "MAX_BRIER", "MIN_CONVERSIONS"):
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

    weak = make_bundle(seed=3, sign=-1.0)  # ranks leads upside down, claims GOOD_METRICS
    code, refused, _ = _run(capsys, "--store", store, "promote", str(weak), "--eval",
                            str(_eval_file(tmp_path)))
    assert code == 1 and refused["status"] == "rejected"
    assert any(r.startswith("auc_lower_bound") for r in refused["reasons"])

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

    code, forced, _ = _run(capsys, "--store", store, "promote", str(weak), "--force",
                           "--eval", str(_eval_file(tmp_path)))
    assert code == 0 and forced["status"] == "promoted"


def test_gate_thresholds_come_from_the_environment(
    capsys: pytest.CaptureFixture[str], make_bundle: BundleFactory, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MIN_AUC", "0.9")
    code, out, _ = _run(capsys, "--store", str(tmp_path / "s"), "promote", str(make_bundle()),
                        "--eval", str(_eval_file(tmp_path)))
    assert code == 1 and "< MIN_AUC 0.90" in out["reasons"][0]
    monkeypatch.setenv("MIN_CONVERSIONS", "2000")  # the bundle says it saw 1,000
    monkeypatch.setenv("MIN_AUC", "0.7")
    code, out, _ = _run(capsys, "--store", str(tmp_path / "s"), "promote", str(make_bundle()))
    assert code == 1 and out["reasons"][0].startswith("min_conversions")


def _eval_file(tmp_path: Path) -> Path:
    path = tmp_path / "held_out.csv"
    if not path.exists():
        path.write_bytes(gate_csv())
    return path


def _checks(reasons: list[str]) -> set[str]:
    return {r.split(":", 1)[0].split(" [", 1)[0] for r in reasons}  # "name [set]: detail"


def test_a_constant_bundle_with_a_lying_manifest_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Every lead 0.99 while the manifest claims AUC 0.999, Brier 0.001, parity 0."""
    bundle_dir = constant_bundle(tmp_path / "constant", 0.99)
    store = str(tmp_path / "store")
    code, out, _ = _run(capsys, "--store", store, "promote", str(bundle_dir), "--eval",
                        str(_eval_file(tmp_path)))
    assert code == 1 and out["status"] == "rejected"
    assert {"scores_not_constant", "auc_lower_bound", "brier",
            "log_loss_beats_base_rate"} <= _checks(out["reasons"])
    # without --eval the probe leads catch it, and --force does not help
    code, out, _ = _run(capsys, "--store", store, "promote", str(bundle_dir), "--force")
    assert code == 1 and _checks(out["reasons"]) == {"scores_not_constant"}
    code, _, err = _run(capsys, "--store", store, "show-champion")
    assert code == 1 and "no champion" in err


def test_a_nan_bundle_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bundle_dir = constant_bundle(tmp_path / "nan", math.nan)
    for extra in ([], ["--eval", str(_eval_file(tmp_path))], ["--force"]):
        code, out, _ = _run(capsys, "--store", str(tmp_path / "store"), "promote",
                            str(bundle_dir), *extra)
        assert code == 1 and "outputs_finite" in _checks(out["reasons"]), out


def test_a_genuinely_trained_bundle_is_accepted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, trained_bundle: Path
) -> None:
    store = str(tmp_path / "store")
    code, out, _ = _run(capsys, "--store", store, "promote", str(trained_bundle), "--eval",
                        str(_eval_file(tmp_path)))
    assert code == 0 and out["status"] == "promoted", out
    code, champion, _ = _run(capsys, "--store", store, "show-champion")
    assert champion["metrics"]["gate_rows"] == 600
    passed = {c["name"] for c in champion["gate"]["checks"] if c["passed"]}
    assert {"outputs_finite", "scores_in_unit_interval", "interval_contains_score",
            "scores_not_constant", "parity_recomputed", "auc_lower_bound", "brier",
            "log_loss_beats_base_rate", "min_conversions"} <= passed


def test_unknown_rejection_and_missing_bundle(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "--store", str(tmp_path), "why-rejected", "lsm-nope")
    assert code == 1 and "no rejection recorded" in err
    code, _, err = _run(capsys, "--store", str(tmp_path), "promote", str(tmp_path / "missing"))
    assert code == 2 and "not a bundle directory" in err


@pytest.mark.slow
def test_the_script_runs_standalone(make_bundle: BundleFactory, tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = subprocess.run(
        [str(ROOT / "leadscore"), "modelctl", "--store", str(store),
         "promote", str(make_bundle(seed=1))],
        capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
        check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "promoted"
    assert (store / "models" / "champion.json").is_file()
