"""Each location's health: the model that serves it, the scope, and drift measured against
that model (a location with its own champion is judged on its own model's training data,
not on the agency's)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leadscore.bundle import location_root
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.monitoring import job
from leadscore.monitoring.reference import build_reference, parse_reference
from leadscore.registry.store import LocalObjectStore

from tests.fixtures.location_store import RECORDED, place_champion, reissued
from tests.monitoring.test_monitor_job import NOW, _write_snapshots

NAMES = ("size", "price")


def _champion(version: str, centre: float, seed: int) -> job.Champion:
    """A model whose training rows sat around ``centre`` (its reference), scoring by size."""
    rng = np.random.default_rng(seed)
    x = rng.normal(centre, 1.0, (2000, 2))

    def predict(rows: np.ndarray) -> np.ndarray:
        return np.asarray(1 / (1 + np.exp(-(rows[:, 0] - centre))), dtype=np.float64)

    scores = predict(x)
    labels = rng.random(2000) < scores
    reference = parse_reference(build_reference(NAMES, x, scores, labels))
    return job.Champion(version, NAMES, reference, predict)


def _run(root: Path, agency: job.Champion, **own: job.Champion) -> job.MonitorResult:
    return job.run_monitor(
        DuckDbQueryRunner(root), LocalObjectStore(root), agency, now=NOW,
        config=job.MonitorConfig(), labelled_rows=lambda since, until: [],
        own_champion=own.get)


def test_each_location_is_judged_against_the_model_that_serves_it(tmp_path: Path) -> None:
    agency = _champion("lsm-agency", 0.0, 1)
    own = _champion("lsm-own-b", 6.0, 2)  # loc-b's market: far from the agency's rows
    rng = np.random.default_rng(3)
    start = NOW - timedelta(days=3)
    a_rows, b_rows = rng.normal(0.0, 1.0, (300, 2)), rng.normal(6.0, 1.0, (300, 2))
    _write_snapshots(tmp_path, a_rows, agency.predict(a_rows), "loc-a", start,
                     version=agency.version)
    _write_snapshots(tmp_path, b_rows, own.predict(b_rows), "loc-b", start, version=own.version)
    rules = rng.normal(0.0, 1.0, (50, 2))
    _write_snapshots(tmp_path, rules, np.full(50, 0.5), "loc-r", start, version="rules")

    result = _run(tmp_path, agency, **{"loc-b": own})
    a, b, r = (result.locations[k] for k in ("loc-a", "loc-b", "loc-r"))
    assert (a["model_scope"], a["model_version"]) == ("agency", agency.version)
    assert (b["model_scope"], b["model_version"]) == ("location", own.version)
    assert r["model_scope"] == "rules"
    # loc-b's leads look like its own model's training rows: no alarm, score PSI measured
    # on the scores its own model gave
    assert not b["drift_alarm"] and b["score_psi"] is not None and b["score_psi"] < 0.1
    assert not a["drift_alarm"] and a["snapshots"] == 300
    page = result.pages[job.page_key("loc-b")]
    assert f"Model {own.version} (the location" in page and "own model)" in page

    # judged against the agency's model instead (what the monitor did before), loc-b alarms
    others = tmp_path / "agency-only"
    _write_snapshots(others, b_rows, own.predict(b_rows), "loc-b", start, version=own.version)
    judged_by_agency = _run(others, agency)
    assert judged_by_agency.locations["loc-b"]["drift_alarm"]
    assert judged_by_agency.locations["loc-b"]["model_scope"] == "agency"


def test_a_location_s_drift_is_confirmed_by_its_own_second_alarm(tmp_path: Path) -> None:
    agency = _champion("lsm-agency", 0.0, 1)
    rng = np.random.default_rng(4)
    moved: Any = rng.normal(4.0, 1.0, (200, 2))
    _write_snapshots(tmp_path, moved, agency.predict(moved), "loc-a", NOW - timedelta(days=2),
                     version=agency.version)
    first = _run(tmp_path, agency).locations["loc-a"]
    assert first["drift_alarm"] and not first["confirmed_drift"]
    second = _run(tmp_path, agency).locations["loc-a"]
    assert second["drift_alarm"] and second["confirmed_drift"]
    assert set(second["drifted_features"]) == set(NAMES)


def test_a_location_s_confirmed_drift_asks_for_its_own_export(tmp_path: Path) -> None:
    """A location with its own model retrains on its own rows when its drift is confirmed;
    a location the agency's model serves is the agency's retraining, not its own."""
    agency, own = _champion("lsm-agency", 0.0, 1), _champion("lsm-own-b", 6.0, 2)
    rng = np.random.default_rng(7)
    start = NOW - timedelta(days=2)
    moved_b: Any = rng.normal(10.0, 1.0, (200, 2))  # away from loc-b's own training rows
    moved_a: Any = rng.normal(4.0, 1.0, (200, 2))  # away from the agency's
    _write_snapshots(tmp_path, moved_b, own.predict(moved_b), "loc-b", start,
                     version=own.version)
    _write_snapshots(tmp_path, moved_a, agency.predict(moved_a), "loc-a", start,
                     version=agency.version)
    asked: list[str] = []

    def run(retrain_on_drift: bool) -> job.MonitorResult:
        return job.run_monitor(
            DuckDbQueryRunner(tmp_path), LocalObjectStore(tmp_path), agency, now=NOW,
            config=job.MonitorConfig(retrain_on_drift=retrain_on_drift),
            labelled_rows=lambda since, until: [], own_champion={"loc-b": own}.get,
            request_location_export=lambda location: asked.append(location) is None)

    first = run(True).locations
    assert first["loc-b"]["drift_alarm"] and asked == []  # one alarm is not yet a drift
    second = run(True).locations
    assert second["loc-b"]["confirmed_drift"] and second["loc-b"]["retrain_requested"]
    assert second["loc-a"]["confirmed_drift"] and "retrain_requested" not in second["loc-a"]
    assert asked == ["loc-b"]
    run(False)  # the stack's RetrainOnDrift off: nothing is asked
    assert asked == ["loc-b"]


def test_modelctl_health_and_experiments_per_location(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`modelctl --location L health` shows L's champion and the last run's line for L (its
    model, scope, drift, page); experiments kept with --location stay in L's folder."""
    from tools import modelctl

    root = tmp_path / "store"
    place_champion(root, RECORDED)
    own_version = place_champion(root, reissued(tmp_path / "own", "loc-b"), location_root("loc-b"))
    agency, own = _champion("lsm-agency", 0.0, 1), _champion(own_version, 6.0, 2)
    rng = np.random.default_rng(5)
    b_rows = rng.normal(6.0, 1.0, (100, 2))
    _write_snapshots(root, b_rows, own.predict(b_rows), "loc-b", NOW - timedelta(days=1),
                     version=own_version)
    _run(root, agency, **{"loc-b": own})

    def run(*argv: str) -> tuple[int, Any]:
        code = modelctl.main(["--store", str(root), *argv])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else None

    code, health = run("--location", "loc-b", "health")
    assert code == 0 and health["champion"] == own_version
    assert health["monitoring"]["model_scope"] == "location"
    assert health["monitoring"]["model_version"] == own_version
    assert health["monitoring"]["drift_alarm"] is False
    assert health["page"] == job.page_key("loc-b") and (root / health["page"]).is_file()
    code, overall = run("health")
    assert code == 0 and set(overall["locations"]) == {"loc-b"}
    code, nothing = run("--location", "loc-z", "health")  # no model, never monitored
    assert code == 1 and nothing["champion"] is None and nothing["monitoring"] is None

    code, created = run("--location", "loc-b", "experiment", "create", "trial",
                        "--variants", "champion,rules", "--allocation", "50,50")
    assert code == 0 and created["name"] == "trial"
    code, shown = run("--location", "loc-b", "experiment", "show")
    assert code == 0 and shown["name"] == "trial"
    code, agency_experiment = run("experiment", "show")
    assert code == 0 and agency_experiment is None  # the agency runs no experiment
    assert all(str(p.relative_to(root)).startswith("locations/loc-b/")
               for p in root.rglob("*") if "trial" in p.name)


def test_the_monitor_command_finds_a_location_s_own_champion(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`./leadscore monitor` with LOCATION_MODELS=true looks a location's champion up as the
    score function does; off, every location is the agency's."""
    from tools.monitor import monitor_local

    root = tmp_path / "store"
    agency = place_champion(root, RECORDED)
    own = place_champion(root, reissued(tmp_path / "own", "loc-b"), location_root("loc-b"))
    rows = np.random.default_rng(6).random((30, 20))
    for location, version in (("loc-a", agency), ("loc-b", own)):
        _write_snapshots(root, rows, np.full(30, 0.4), location, NOW - timedelta(days=1),
                         version=version)
    monkeypatch.setenv("LOCATION_MODELS", "true")
    found = monitor_local(root, NOW, job.MonitorConfig()).locations
    assert (found["loc-b"]["model_version"], found["loc-b"]["model_scope"]) == (own, "location")
    assert (found["loc-a"]["model_version"], found["loc-a"]["model_scope"]) == (agency, "agency")
    monkeypatch.setenv("LOCATION_MODELS", "false")
    found = monitor_local(root, NOW, job.MonitorConfig()).locations
    assert found["loc-b"]["model_version"] == agency
