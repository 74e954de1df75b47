"""A location's experiment is judged on its own leads only; the agency's experiment of the
same name leaves that location's leads out (`experiments.rows.in_scope`, `modelctl
--location L experiment report`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from leadscore.experiments import store as experiment_store
from leadscore.experiments.rows import in_scope, locations_with_experiment
from leadscore.registry.locations import location_store
from leadscore.registry.store import LocalObjectStore

from tools import modelctl
from tools.experiment_commands import summarise


def _lines(location_id: str, strengths: dict[str, float], n: int, seed: int) -> list[str]:
    """Rows of experiment ``ab`` from one location, each arm ranking with its strength."""
    rng = np.random.default_rng(seed)
    lines = []
    for variant, strength in strengths.items():
        p = rng.beta(2, 6, size=n)
        converted = rng.random(n) < p
        score = 1 / (1 + np.exp(-(strength * np.log(p / (1 - p)) + rng.normal(size=n))))
        lines += [json.dumps({"location_id": location_id, "experiment": "ab",
                              "variant": variant, "predicted_score": float(s),
                              "predicted_class": "hot" if s >= 0.8 else "cold",
                              "converted": int(c)}) for s, c in zip(score, converted, strict=True)]
    return lines


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    return root


def _ctl(store: Path, *args: str) -> int:
    return modelctl.main(["--store", str(store), *args])


def test_a_locations_report_counts_its_own_leads_and_the_agencys_leaves_them_out(
        store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for scope in ([], ["--location", "loc-a"]):
        assert _ctl(store_dir, *scope, "experiment", "create", "ab", "--variants",
                    "rules,champion", "--allocation", "50,50", "--metric", "auc") == 0
    # the agency's arms answered "pooled" (champion strong); loc-a's own arms the opposite
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(_lines("pooled", {"rules": 0.3, "champion": 3.0}, 800, 1)
                              + _lines("loc-a", {"rules": 3.0, "champion": 0.3}, 300, 2)) + "\n")
    root = LocalObjectStore(store_dir)
    listed = [json.loads(line) for line in rows.read_text().splitlines()]
    assert locations_with_experiment(root, "ab", listed) == ["loc-a"]
    assert locations_with_experiment(root, "other", listed) == []

    own, _ = summarise(location_store(root, "loc-a"), "ab", rows, root=root,
                       location_id="loc-a")
    agency, _ = summarise(root, "ab", rows)
    assert {v.variant: v.leads for v in own.variants} == {"rules": 300, "champion": 300}
    assert {v.variant: v.leads for v in agency.variants} == {"rules": 800, "champion": 800}
    assert own.winner == "rules" and agency.winner == "champion"

    capsys.readouterr()
    assert _ctl(store_dir, "--location", "loc-a", "experiment", "report", "ab",
                "--rows", str(rows)) == 0
    out = capsys.readouterr().out
    assert "rules ranks leads better than every other variant" in out
    counted = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
               if line.split()[:1] in (["rules"], ["champion"]) and len(line.split()) > 2
               and line.split()[1].isdigit()}
    assert counted == {"rules": 300, "champion": 300}
    # its winner is applied to its own record only
    assert _ctl(store_dir, "--location", "loc-a", "experiment", "promote-winner", "ab",
                "--rows", str(rows)) == 1  # the rules won: refused, as for the agency
    assert experiment_store.running(root) is not None


def test_in_scope_keeps_rows_of_no_location_and_drops_other_locations() -> None:
    rows = [{"location_id": "a"}, {"location_id": "b"}, {}]
    assert in_scope(rows, "a") == [{"location_id": "a"}, {}]
    assert in_scope(rows, None, ["a"]) == [{"location_id": "b"}, {}]
    assert in_scope(rows, None) == rows


def test_a_locations_health_page_shows_its_own_experiment(tmp_path: Path) -> None:
    """The page of a location with its own champion shows that location's experiment, judged
    on its own leads; a location the agency serves shows the agency's."""
    from datetime import timedelta

    from leadscore.experiments.rows import scope_results
    from leadscore.loop.local_query import DuckDbQueryRunner
    from leadscore.monitoring import job

    from tests.monitoring.test_location_health import _champion
    from tests.monitoring.test_monitor_job import NOW, _write_snapshots

    root = LocalObjectStore(tmp_path)
    experiment_store.create(root, "agency-x", ["rules", "champion"], [50, 50])
    experiment_store.create(location_store(root, "loc-b"), "b-x", ["rules", "champion"], [50, 50])
    agency, own = _champion("lsm-agency", 0.0, 1), _champion("lsm-own-b", 6.0, 2)
    rng = np.random.default_rng(3)
    for location, centre, model in (("loc-a", 0.0, agency), ("loc-b", 6.0, own)):
        x = rng.normal(centre, 1.0, (60, 2))
        _write_snapshots(tmp_path, x, model.predict(x), location, NOW - timedelta(days=1),
                         version=model.version)
    rows = [json.loads(line) for line in
            _lines("loc-a", {"rules": 1.0, "champion": 1.0}, 20, 3)
            + _lines("loc-b", {"rules": 1.0, "champion": 1.0}, 7, 4)]
    for row in rows:  # each location's rows carry its own experiment's name
        row["experiment"] = "b-x" if row["location_id"] == "loc-b" else "agency-x"

    class Rows:
        queries = 0

        def query(self, sql: str) -> list[dict[str, object]]:
            Rows.queries += 1
            return rows

    experiments = scope_results(root, Rows(), NOW)
    result = job.run_monitor(
        DuckDbQueryRunner(tmp_path), root, agency, now=NOW, config=job.MonitorConfig(),
        labelled_rows=lambda since, until: [], own_champion={"loc-b": own}.get,
        experiment=experiments(None), location_experiment=experiments)
    own_page, agency_page = (result.pages[job.page_key(k)] for k in ("loc-b", "loc-a"))
    assert result.locations["loc-b"]["model_scope"] == "location"
    assert "Experiment b-x" in own_page and "agency-x" not in own_page
    assert "Experiment agency-x" in agency_page and "b-x" not in agency_page
    assert "Experiment agency-x" in result.pages[job.page_key(job.OVERALL)]
    assert Rows.queries == 1  # one query of the loop's rows for every scope's experiment


def test_a_locations_report_reads_the_stacks_loop_tables(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a local store, `--location L experiment report` queries the loop tables at the
    store's top (every location's rows land there) and keeps L's."""
    from datetime import UTC, datetime

    from leadscore.features import FEATURE_NAMES
    from leadscore.loop.snapshots import build_snapshot

    from tests.loop.helpers import HOUR, T0, lead_request, outcome, write_records

    root = tmp_path / "store"
    root.mkdir()
    assert _ctl(root, "--location", "loc-a", "experiment", "create", "ab", "--variants",
                "rules,champion", "--allocation", "50,50") == 0
    records = []
    for i in range(12):
        location, contact = ("loc-a" if i < 8 else "loc-b"), f"c{i}"
        variant = "rules" if i % 2 else "champion"
        answer = {"contact_id": contact, "predicted_score": 0.2 + 0.05 * i,
                  "predicted_class": "cold", "model_version": "lsm-test",
                  "feature_values": {name: 0.5 for name in FEATURE_NAMES},
                  "experiment": "ab", "variant": variant}
        records.append(build_snapshot(lead_request(contact), answer, location_id=location,
                                      source="webhook", scored_at_ms=T0 + i * HOUR))
        records.append(outcome(contact, "won" if i % 3 else "lost", T0 + (i + 20) * HOUR,
                               location_id=location))
    write_records(root, records)
    now = datetime.fromtimestamp((T0 + 60 * HOUR) / 1000, tz=UTC)
    capsys.readouterr()
    import tools.experiment_commands as commands

    # the report judges on every outcome up to now: "now" is after these records
    original = commands.experiment_rows_sql
    monkeypatch.setattr(commands, "experiment_rows_sql", lambda: original(now))
    assert _ctl(root, "--location", "loc-a", "experiment", "report", "ab") == 0
    out = capsys.readouterr().out
    counted = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
               if line.split()[:1] in (["rules"], ["champion"]) and len(line.split()) > 2
               and line.split()[1].isdigit()}
    assert counted == {"rules": 4, "champion": 4}  # loc-b's four leads are not loc-a's
