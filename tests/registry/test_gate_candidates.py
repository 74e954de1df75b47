"""Trained candidates the gate must refuse, and the one it must promote (small sizes; the full
sizes, an 8k-row champion and a 32k-row candidate, are bench/gate_candidates.py).

A 2,000-row champion; candidates trained on 800 rows, on a biased upload (three in four
non-conversions dropped), on an upload with 30 % of conversions relabelled, and on 6,000 rows.
Each is measured with the champion on 2,000 gate rows and on a platform-held set of 1,000
newer leads; the biased and relabelled uploads also bring their own (equally corrupted) gate
part, on which they look fine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from leadscore import registry
from leadscore.bundle import load_model
from leadscore.columns.labels import LabelRule
from leadscore.registry import LocalObjectStore, gate
from leadscore.registry.holdout import write_holdout
from leadscore.settings import PromoteSettings

from tests.fixtures import gate_candidates as gc

pytestmark = pytest.mark.slow

SETTINGS = PromoteSettings()
CHAMPION, BETTER, SMALL, GATE, HELD = 2000, 6000, 800, 2000, 1000


def _rows(rows: list[gc.Row], source: str) -> gate.EvalRows:
    out, skipped = gate.read_rows(gc.csv_bytes(rows), jsonl=False, source=source)
    assert skipped == 0
    return out


def _jsonl(rows: list[gc.Row]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("gate-candidates")
    pool = gc.leads(BETTER, 41)
    clean = gc.leads(GATE + HELD, 43)
    gate_rows, held = clean[:GATE], clean[GATE:]
    uploads = {
        "small": (pool[CHAMPION: CHAMPION + SMALL], gate_rows),
        "biased": (gc.biased(pool[CHAMPION: 2 * CHAMPION], 1), gc.biased(gate_rows, 2)),
        "label_noise": (gc.label_noise(pool[2 * CHAMPION: 3 * CHAMPION], 3),
                        gc.label_noise(gate_rows, 4)),
        "better": (pool, gate_rows),
    }
    bundles = {"champion": gc.train_on(pool[:CHAMPION], tmp / "champion")}
    for name, (train_rows, _) in uploads.items():
        bundles[name] = gc.train_on(train_rows, tmp / name)
    gate_csv = tmp / "gate.csv"
    gate_csv.write_bytes(gc.csv_bytes(gate_rows))
    return {"bundles": bundles, "own_gate": {k: v[1] for k, v in uploads.items()},
            "gate": _rows(gate_rows, "2,000 gate rows"), "gate_csv": gate_csv,
            "held": held, "holdout": _rows(held, "platform-held"), "pool": pool}


def _judge(world: dict[str, Any], name: str, rows: gate.EvalRows,
           holdout: gate.EvalRows | None) -> gate.GateReport:
    bundle_dir = world["bundles"][name]
    model = load_model(bundle_dir)
    return gate.measure(model, bundle_dir, SETTINGS, rows=rows, holdout=holdout,
                        champion=load_model(world["bundles"]["champion"]),
                        counts=gate.claimed_counts(model.manifest))


def _refused_by(report: gate.GateReport) -> set[str]:
    return {f"{c.name}@{c.on.split(':')[0]}" for c in report.failed()}


def test_small_biased_and_relabelled_candidates_are_refused_a_better_one_promoted(
    world: dict[str, Any]
) -> None:
    for name in ("small", "biased", "label_noise"):
        report = _judge(world, name, world["gate"], world["holdout"])
        # the comparison refuses (800 rows also leave fewer than 120 conversions fitted on)
        assert {c.name for c in report.failed()} & set(gate.CHAMPION_CHECKS), name
        assert {c.name for c in report.failed()} <= {*gate.CHAMPION_CHECKS, "min_conversions"}
    small = _refused_by(_judge(world, "small", world["gate"], None))
    assert "champion_auc@gate rows" in small, small
    better = _judge(world, "better", world["gate"], world["holdout"])
    assert better.reasons() == [], better.reasons()


def test_a_corrupted_upload_looks_fine_on_its_own_gate_part_and_is_caught_on_the_held_set(
    world: dict[str, Any]
) -> None:
    for name in ("biased", "label_noise"):
        own = _rows(world["own_gate"][name], f"{name} upload's gate part")
        alone = _judge(world, name, own, None)
        calibration = alone.measured["evaluation_sets"]["gate rows"]["champion"]["metrics"][
            "calibration_error"]
        assert calibration["passed"], (name, calibration)  # invisible in its own upload
        caught = _refused_by(_judge(world, name, own, world["holdout"]))
        assert "champion_calibration@platform-held" in caught, (name, caught)


def test_the_same_through_modelctl_promote_eval(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import modelctl

    store_dir = tmp_path / "store"
    write_holdout(LocalObjectStore(store_dir), _jsonl(world["held"]), {"rows": HELD})

    def promote(name: str) -> tuple[int, dict[str, Any]]:
        code = modelctl.main(["--store", str(store_dir), "promote",
                              str(world["bundles"][name]), "--eval", str(world["gate_csv"])])
        return code, json.loads(capsys.readouterr().out)

    code, answer = promote("champion")
    assert code == 0 and answer["status"] == "promoted", answer
    assert answer["measured_on"]["gate rows"]["rows"] == GATE
    for name in ("small", "biased", "label_noise"):
        code, answer = promote(name)
        assert code == 1 and answer["status"] == "rejected", (name, answer)
        assert answer["against_champion"]["platform-held"]["same_rows"] == HELD
        record = registry.why_rejected(answer["version"], LocalObjectStore(store_dir))
        assert record["gate"]["measured"]["decision_rule"].startswith("on the same rows")
    code, answer = promote("better")
    assert code == 0 and answer["status"] == "promoted", answer
    stats = answer["against_champion"]["gate rows"]["metrics"]
    assert all(s["upper_bound"] <= s["margin"] for s in stats.values())


def test_a_two_percent_base_rate_file_with_enough_conversions_trains_and_is_judged(
    world: dict[str, Any], tmp_path: Path
) -> None:
    pool: list[gc.Row] = world["pool"]
    won = [r for r in pool if int(r["converted"]) == 1][:125]
    lost = [r for r in pool if int(r["converted"]) == 0][:6125]
    bundle_dir = gc.train_on(won + lost, tmp_path / "rare")  # 2.0 %, 125 conversions
    held = world["gate"]
    keep = [i for i, label in enumerate(held.y) if label == 0][:1470] + [
        i for i, label in enumerate(held.y) if label == 1][:30]
    rows = gate.EvalRows(tuple(held.records[i] for i in keep), held.y[keep], "2 % gate rows",
                         held.columns)
    result = registry.promote(bundle_dir, LocalObjectStore(tmp_path / "store"), SETTINGS,
                              rows=rows, counts=gate.ClassCounts(125, 6125, "the file"))
    assert result.promoted, result.reasons
    measured = (result.gate or {})["measured"]
    assert measured["gate_converted"] == 30 and measured["auc_lower_bound_95"] >= 0.70


def test_a_leaky_candidate_is_refused_on_the_platform_held_set(
    custom_bundle: Path, custom_csv: Path, tmp_path: Path
) -> None:
    """A team's export with `outcome_call_minutes` (filled in after the deciding call): a
    candidate trained with it kept (--keep overrides the leak guard) wins on the upload's own
    gate part, where the column is filled in too. The platform-held set keeps every column as
    it was when the lead was scored, before that call: there the candidate falls apart."""
    import warnings

    import train

    from tests.fixtures.custom_leads import AS_OF, custom_rows, custom_train_args

    leaky = tmp_path / "leaky"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert train.main(custom_train_args(custom_csv, leaky, "--as-of", AS_OF.isoformat(),
                                            "--keep", "outcome_call_minutes")) == 0
    candidate, champion = load_model(leaky), load_model(custom_bundle)
    assert candidate.schema is not None and champion.schema is not None
    assert "outcome_call_minutes" in candidate.schema.column_names
    assert "outcome_call_minutes" not in champion.schema.column_names

    gate_csv = tmp_path / "gate.csv"
    from tests.fixtures.custom_leads import write_custom_csv

    write_custom_csv(gate_csv, n=600, seed=99)
    rows, _ = gate.read_rows_for_bundle(gate_csv.read_bytes(), jsonl=False, bundle_dir=leaky,
                                        source="the upload's gate part")
    scored_then = [{"fields": {**r, "outcome_call_minutes": ""}, "status": r["status"]}
                   for r in custom_rows(600, 98)]
    held, _ = gate.read_rows(_jsonl(scored_then), jsonl=True, source="platform-held",
                             target="status", rule=LabelRule.of(["won"]))
    on_upload = gate.measure(candidate, leaky, SETTINGS, rows=rows, champion=champion)
    auc = on_upload.measured["evaluation_sets"]["gate rows"]["champion"]["metrics"]["auc"]
    assert auc["candidate"] > auc["champion"] + 0.05 and auc["passed"]  # the leak pays here
    report = gate.measure(candidate, leaky, SETTINGS, rows=rows, holdout=held,
                          champion=champion)
    caught = _refused_by(report)
    assert "champion_auc@platform-held" in caught, report.reasons()
