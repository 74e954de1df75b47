"""A first model is judged against what would otherwise answer for its leads: MIN_AUC where
the rules (real-estate features) or an agency model would score them, better than chance
where nothing would (a team's own columns, no champion: every lead would wait unscored)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from leadscore import registry
from leadscore.bundle import load_model
from leadscore.columns.schema import ColumnSpec, Schema
from leadscore.features import FEATURE_NAMES
from leadscore.registry import LocalObjectStore, gate
from leadscore.settings import PromoteSettings

from tests.fixtures.bad_models import write_lying_bundle

from .conftest import GOOD_METRICS, _tiny_graph
from .test_gate_decision import _raw_rows, team_bundle

# A bar the hand-built graphs (AUC about 0.8 on 600 generated leads) cannot reach, so the
# tests see which bar was applied, not how good the graphs are.
STRICT = replace(PromoteSettings(), min_auc=0.90)
COLUMNS = list(FEATURE_NAMES[:8])


def _auc_reason(reasons: list[str]) -> str:
    return next(r for r in reasons if r.startswith("auc_lower_bound"))


def test_a_team_schema_first_model_needs_only_to_beat_chance(tmp_path: Path) -> None:
    candidate = team_bundle(tmp_path / "team", 2, COLUMNS)
    rows = _raw_rows(candidate)
    store = LocalObjectStore(tmp_path / "store")
    result = registry.promote(candidate, store, STRICT, rows=rows, use_holdout=False)
    assert result.promoted, result.reasons
    measured = result.champion["gate"]["measured"] if result.champion else {}
    assert measured["auc_lower_bound_95"] < STRICT.min_auc
    assert measured["auc_bar"].startswith("lower bound above chance")


def test_the_same_model_keeps_min_auc_when_an_agency_model_would_answer(
    tmp_path: Path
) -> None:
    candidate = team_bundle(tmp_path / "team", 2, COLUMNS)
    store = LocalObjectStore(tmp_path / "store")
    result = registry.promote(candidate, store, STRICT, rows=_raw_rows(candidate),
                              use_holdout=False, otherwise_scored=True)
    assert not result.promoted
    assert "< MIN_AUC 0.90" in _auc_reason(result.reasons)


def test_a_first_model_on_the_real_estate_features_keeps_min_auc(
    make_bundle: Any, gate_rows: gate.EvalRows, tmp_path: Path
) -> None:
    """The rules score the real-estate features when no model does: they are the bar."""
    store = LocalObjectStore(tmp_path / "store")
    result = registry.promote(make_bundle(seed=1), store, STRICT, rows=gate_rows,
                              use_holdout=False)
    assert not result.promoted
    assert "< MIN_AUC 0.90" in _auc_reason(result.reasons)


def test_a_model_no_better_than_chance_is_still_refused(tmp_path: Path) -> None:
    """Upside down (ranks converters last): its lower bound is far below 0.5."""
    schema = Schema(columns=tuple(ColumnSpec(name=c, kind="numeric", fill=0.5)
                                  for c in COLUMNS), target="converted", positive=("1",))
    candidate = write_lying_bundle(tmp_path / "upside-down",
                                   _tiny_graph(3, sign=-1.0, width=len(COLUMNS)),
                                   GOOD_METRICS, class_counts=(1000, 4000), schema=schema)
    report = gate.measure(load_model(candidate), candidate, STRICT, rows=_raw_rows(candidate),
                          nothing_else_scores=True)
    assert "<= chance 0.50" in _auc_reason(report.reasons())
    store = LocalObjectStore(tmp_path / "store")
    assert not registry.promote(candidate, store, STRICT, rows=_raw_rows(candidate),
                                use_holdout=False).promoted


def test_a_location_first_model_keeps_min_auc_while_the_agency_has_a_champion(
    aws: Any, make_bundle: Any, gate_rows: gate.EvalRows, tmp_path: Path
) -> None:
    """Through the promote function: a location's first model on its own columns is judged
    against chance while nothing else would score the location, by MIN_AUC once the agency
    has a champion (it scores the location when pooling is allowed and its columns fit)."""
    from leadscore.adapters.s3_store import S3Artifacts, S3ObjectStore
    from leadscore.registry.locations import location_upload_prefix

    from functions.promote import app
    from tools.lambda_context import lambda_context

    from .conftest import BUCKET, GATE
    from .test_location_retrain import _completed_for

    app.set_container(app.Container(replace(GATE, min_auc=STRICT.min_auc),
                                    S3ObjectStore(BUCKET), S3Artifacts()))
    try:
        first_a = app.lambda_handler(_completed_for(
            aws, "leadscore-loc-a-1", team_bundle(tmp_path / "a", 2, COLUMNS),
            location_upload_prefix("loc-a") + "d/labelled-1.csv"), lambda_context())
        assert first_a["status"] == "promoted", first_a
        lenient = replace(STRICT, min_auc=0.5)
        assert registry.promote(make_bundle(seed=1), S3ObjectStore(BUCKET), lenient,
                                rows=gate_rows, use_holdout=False).promoted
        first_b = app.lambda_handler(_completed_for(
            aws, "leadscore-loc-b-1", team_bundle(tmp_path / "b", 3, COLUMNS),
            location_upload_prefix("loc-b") + "d/labelled-1.csv"), lambda_context())
        assert first_b["status"] == "rejected"
        assert "< MIN_AUC 0.90" in _auc_reason(first_b["reasons"])
    finally:
        app.set_container(None)


def test_the_successor_of_a_team_schema_champion_is_judged_by_the_same_bar(
    tmp_path: Path
) -> None:
    """MIN_AUC for the second model only: the bank file's week-6 candidate (lower bound
    0.594, better than its champion's 0.567 on the same week) was refused and the weaker
    champion kept serving. Refused, a successor leaves that champion answering, which was
    judged against chance: the bar stays, and the champion comparison still decides."""
    store = LocalObjectStore(tmp_path / "store")
    first = team_bundle(tmp_path / "first", 2, COLUMNS)
    assert registry.promote(first, store, STRICT, rows=_raw_rows(first),
                            use_holdout=False).promoted
    successor = team_bundle(tmp_path / "successor", 3, COLUMNS)
    result = registry.promote(successor, store, STRICT, rows=_raw_rows(successor),
                              use_holdout=False)
    assert result.promoted, result.reasons
    assert result.champion is not None
    assert result.champion["gate"]["measured"]["auc_bar"].startswith("lower bound above chance")
    # the comparison with the champion ran and was met, it was not skipped
    assert any(c["name"] == "champion_auc" and c["passed"]
               for c in result.champion["gate"]["checks"])
