"""The one decision rule against the champion, on the same RAW rows read through each bundle's
own schema (hand-built graphs: fast; the trained candidates are in test_gate_candidates.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from leadscore import registry
from leadscore.bundle import load_model
from leadscore.columns.schema import ColumnSpec, Schema
from leadscore.features import FEATURE_NAMES
from leadscore.registry import LocalObjectStore, gate
from leadscore.registry.holdout import write_holdout
from leadscore.settings import PromoteSettings

from tests.fixtures.bad_models import write_lying_bundle

from .conftest import GOOD_METRICS, _tiny_graph, gate_csv

SETTINGS = PromoteSettings()


def team_bundle(directory: Path, seed: int, columns: list[str]) -> Path:
    """A bundle on a team's own columns: these feature columns as plain numbers, target
    `converted`. Its graph reads only them, so its input width differs from the champion's."""
    schema = Schema(columns=tuple(ColumnSpec(name=c, kind="numeric", fill=0.5)
                                  for c in columns),
                    target="converted", positive=("1",))
    return write_lying_bundle(directory, _tiny_graph(seed, width=len(columns)), GOOD_METRICS,
                              class_counts=(1000, 4000), schema=schema)


def _raw_rows(bundle_dir: Path) -> gate.EvalRows:
    rows, skipped = gate.read_rows_for_bundle(gate_csv(), jsonl=False, bundle_dir=bundle_dir,
                                              source="600 generated leads")
    assert skipped == 0
    return rows


def _failed(report: gate.GateReport) -> set[str]:
    return {c.name for c in report.failed()}


def test_a_different_schema_worse_candidate_is_refused_on_the_same_leads(
    tmp_path: Path
) -> None:
    """The champion reads 20 columns, the candidate 8 (an [N, 20] and an [N, 8] graph): each
    reads the same raw rows through its own schema, so the comparison happens and refuses."""
    champion_dir = team_bundle(tmp_path / "champion", 1, list(FEATURE_NAMES))
    candidate_dir = team_bundle(tmp_path / "candidate", 2, list(FEATURE_NAMES[:8]))
    champion, candidate = load_model(champion_dir), load_model(candidate_dir)
    assert champion.n_inputs == 20 and candidate.n_inputs == 8
    rows = _raw_rows(candidate_dir)
    alone = gate.measure(candidate, candidate_dir, SETTINGS, rows=rows,
                         counts=gate.claimed_counts(candidate.manifest))
    assert alone.reasons() == []  # judged alone it looks fine: AUC well above MIN_AUC
    report = gate.measure(candidate, candidate_dir, SETTINGS, rows=rows, champion=champion)
    assert "champion_auc" in _failed(report), report.reasons()
    assert "schema_change" not in {c.name for c in report.checks}  # same fields, fewer used
    stats = report.measured["evaluation_sets"]["gate rows"]["champion"]
    assert stats["same_rows"] == rows.n == 600
    auc = stats["metrics"]["auc"]
    assert auc["candidate"] < auc["champion"] and auc["upper_bound"] > SETTINGS.max_auc_drop


def test_a_champion_that_cannot_read_the_rows_no_longer_waves_the_candidate_through(
    tmp_path: Path
) -> None:
    champion_dir = team_bundle(tmp_path / "champion", 1, [*FEATURE_NAMES[:8], "budget"])
    candidate_dir = team_bundle(tmp_path / "candidate", 2, list(FEATURE_NAMES))
    report = gate.measure(load_model(candidate_dir), candidate_dir, SETTINGS,
                          rows=_raw_rows(candidate_dir), champion=load_model(champion_dir))
    assert "champion_comparable" in _failed(report)
    assert "budget" in next(r for r in report.reasons() if r.startswith("champion_comparable"))


def test_an_equal_candidate_passes_and_a_small_gate_set_refuses_it(
    make_bundle: Any, gate_rows: gate.EvalRows
) -> None:
    champion = load_model(make_bundle(seed=1))
    candidate_dir = make_bundle(seed=5, keep=18)  # two weak features fewer: about as good
    full = gate.measure(load_model(candidate_dir), candidate_dir, SETTINGS, rows=gate_rows,
                        champion=champion)
    assert not _failed(full) & set(gate.CHAMPION_CHECKS), full.reasons()
    small_rows = gate.EvalRows(gate_rows.records[:150], gate_rows.y[:150], "150 rows",
                               gate_rows.columns)
    small = gate.measure(load_model(candidate_dir), candidate_dir, SETTINGS, rows=small_rows,
                         champion=champion)
    refused = _failed(small) & set(gate.CHAMPION_CHECKS)
    assert refused, "150 rows cannot show the candidate is no worse"
    big = full.measured["evaluation_sets"]["gate rows"]["champion"]["metrics"]
    tiny = small.measured["evaluation_sets"]["gate rows"]["champion"]["metrics"]
    for metric in big:  # the bound, not the point estimate, grows on fewer rows
        assert tiny[metric]["upper_bound"] - tiny[metric]["loss"] > (
            big[metric]["upper_bound"] - big[metric]["loss"])


def test_a_schema_change_needs_its_flag_and_says_who_is_answered_400(
    make_bundle: Any, tmp_path: Path, gate_rows: gate.EvalRows
) -> None:
    store = LocalObjectStore(tmp_path / "store")
    first = registry.promote(make_bundle(seed=1), store, SETTINGS, rows=gate_rows)
    assert first.promoted, first.reasons
    candidate = team_bundle(tmp_path / "team", 4, list(FEATURE_NAMES))
    rows = _raw_rows(candidate)
    refused = registry.promote(candidate, store, SETTINGS, rows=rows, force=True)
    assert not refused.promoted  # --force is not the way to change what callers send
    [reason] = [r for r in refused.reasons if r.startswith("schema_change")]
    assert "`features` or `feature_vector`" in reason and "answered 400" in reason
    assert "--allow-schema-change" in reason
    allowed = registry.promote(candidate, store, SETTINGS, rows=rows, allow_schema_change=True)
    assert allowed.promoted, allowed.reasons
    record = registry.get_champion(store) or {}
    assert "answered 400" in record["schema_change"]
    assert record["gate"]["measured"]["evaluation_sets"]["gate rows"]["champion"]["comparable"]


def _modelctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    from tools import modelctl

    code = modelctl.main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_modelctl_says_when_no_metric_was_measured_and_uses_the_platform_held_set(
    make_bundle: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    code, answer = _modelctl(capsys, "--store", str(store_dir), "promote",
                             str(make_bundle(seed=1)))
    assert code == 0 and answer["status"] == "promoted"
    assert answer["not_measured"].startswith("no metric was measured")
    # once the platform holds an evaluation set, a promotion without --eval is measured on it
    write_holdout(LocalObjectStore(store_dir), gate_csv_as_jsonl(), {"rows": 600})
    code, answer = _modelctl(capsys, "--store", str(store_dir), "promote",
                             str(make_bundle(seed=2, sign=-1.0)))
    assert code == 1 and "not_measured" not in answer
    assert answer["measured_on"]["platform-held"]["rows"] == 600
    assert answer["against_champion"]["platform-held"]["metrics"]["auc"]["passed"] is False
    assert any(r.startswith("champion_auc [platform-held") for r in answer["reasons"])


def gate_csv_as_jsonl() -> bytes:
    """The 600 gate leads as the loop writes them: one JSON object per lead."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(gate_csv().decode()))
    return "".join(json.dumps({k: float(v) for k, v in r.items()}) + "\n"
                   for r in reader).encode()


def test_two_small_sets_decide_together_and_each_still_refuses_what_it_shows_worse(
    make_bundle: Any, gate_rows: gate.EvalRows
) -> None:
    """An agency's gate part and platform-held set hold a few hundred rows each: alone, the
    gate part's 150 rows cannot bound an equal candidate's calibration loss within the margin
    (each set had to pass on its own: no weekly candidate was ever promoted); on both sets'
    300 rows together it can. A candidate upside down is still refused on each set alone."""
    champion = load_model(make_bundle(seed=1))
    candidate_dir = make_bundle(seed=7)  # perturbed like the champion: equally good
    candidate = load_model(candidate_dir)

    def part(lo: int, hi: int, source: str) -> gate.EvalRows:
        return gate.EvalRows(gate_rows.records[lo:hi], gate_rows.y[lo:hi], source,
                             gate_rows.columns)

    first, second = part(0, 150, "150 rows"), part(150, 300, "150 newer rows")
    alone = gate.measure(candidate, candidate_dir, SETTINGS, rows=first, champion=champion)
    assert "champion_calibration" in _failed(alone), alone.reasons()
    both = gate.measure(candidate, candidate_dir, SETTINGS, rows=first, holdout=second,
                        champion=champion)
    assert not _failed(both) & set(gate.CHAMPION_CHECKS), both.reasons()
    decision = both.measured["champion_decision"]
    assert decision["on"] == ["gate rows", "platform-held"] and decision["same_rows"] == 300
    top = decision["metrics"]["precision_top_10pct"]
    assert top["judged"] is False and gate.top_precision_min_leads(SETTINGS) == 271
    # a row both sets hold counts once
    again = gate.measure(candidate, candidate_dir, SETTINGS, rows=first, holdout=first,
                         champion=champion)
    assert again.measured["champion_decision"]["same_rows"] == 150

    upside_down_dir = make_bundle(seed=2, sign=-1.0)
    worse = gate.measure(load_model(upside_down_dir), upside_down_dir, SETTINGS, rows=first,
                         holdout=second, champion=champion)
    refused = {f"{c.name}@{c.on.split(':')[0]}" for c in worse.failed()}
    for where in ("gate rows", "platform-held"):
        assert {f"champion_auc@{where}", f"champion_top_precision@{where}"} <= refused


def _noisy_scores(seed: int, n: int) -> tuple[Any, Any, Any, Any]:
    """Labels drawn from a true probability; a champion, a better and a worse candidate that
    each read it with their own per-lead error (models fitted on different samples disagree
    lead by lead, which is what widens the paired bounds)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    p = 1.0 / (1.0 + np.exp(-rng.normal(-1.4, 1.5, n)))
    y = (rng.random(n) < p).astype(int)

    def read(error: float) -> Any:
        return np.clip(p + error * rng.normal(size=n), 0.01, 0.99)

    return y, read(0.10), read(0.07), read(0.13)


def test_a_margin_the_rows_cannot_decide_promotes_a_candidate_measured_no_worse() -> None:
    """On ~600 rows (an agency's weekly gate part and held set) the Brier bound is wider than
    its margin: the old rule refused every candidate there, a better one included, and the
    first model served for good. The candidate measured at least as good passes; one measured
    worse is still refused; the AUC's margin still decides."""
    y, champion, better, worse = _noisy_scores(26, 600)
    stats = gate.compare_with_champion(y, better, champion, SETTINGS)
    brier = stats["brier"]
    assert brier["loss"] < 0 < brier["upper_bound"] - brier["loss"] - SETTINGS.max_brier_loss
    assert brier["upper_bound"] > SETTINGS.max_brier_loss  # what the old rule refused on
    assert brier["judged"] is False and brier["passed"], brier
    assert stats["auc"].get("judged", True) and stats["auc"]["passed"]
    assert all(s["passed"] for s in stats.values()), stats
    checks = gate._decision_checks(stats, y.size, SETTINGS, "every evaluation row")
    said = next(c.detail for c in checks if c.name == "champion_brier")
    assert "wider than the margin" in said and "at least as good" in said

    refused = gate.compare_with_champion(y, worse, champion, SETTINGS)
    assert refused["brier"]["loss"] > 0 and not refused["brier"]["passed"]
    assert not all(s["passed"] for s in refused.values())
