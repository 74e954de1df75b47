"""The model registry on a local store: promote (measured), refuse, roll back, list, archives."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from leadscore import registry
from leadscore.bundle import MODEL_FILE, finalize_bundle
from leadscore.registry import EvalRows, LocalObjectStore
from leadscore.registry.gate import PARITY_REFERENCE_FILE
from leadscore.settings import PromoteSettings

from .conftest import GOOD_METRICS, BundleFactory

SETTINGS = PromoteSettings(min_auc=0.70, max_auc_drop=0.02, max_brier=0.20)


# The gate's checks themselves: tests/registry/test_gate.py (the gate measures the graph;
# a manifest's figures are only recorded as claims).


# ----------------------------------------------------------------------------- the store


def test_local_store_round_trip_and_listing(local_store: LocalObjectStore) -> None:
    local_store.put_bytes("models/a/x.json", b"1")
    local_store.put_bytes("models/b.json", b"2")
    local_store.copy("models/b.json", "other/c.json")
    assert local_store.get_bytes("other/c.json") == b"2"
    assert local_store.list("models/") == ["models/a/x.json", "models/b.json"]
    assert local_store.exists("models/a/x.json") and not local_store.exists("models/a/y")
    with pytest.raises(registry.ObjectNotFound):
        local_store.get_bytes("nope.json")
    # no temporary files are left behind by the atomic replace
    assert not [p for p in local_store.root.rglob("*") if p.name.startswith(".")]


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/./b", ""])
def test_local_store_refuses_keys_outside_its_root(
    local_store: LocalObjectStore, key: str
) -> None:
    with pytest.raises(ValueError):
        local_store.put_bytes(key, b"x")


# ----------------------------------------------------------------------------- promote


def _clock(hour: int) -> registry.Clock:
    return lambda: datetime(2026, 2, 5, hour, tzinfo=UTC)


def test_good_bundle_becomes_champion_files_first(
    make_bundle: BundleFactory, local_store: LocalObjectStore, gate_rows: EvalRows
) -> None:
    directory = make_bundle(seed=1)
    result = registry.promote(directory, local_store, SETTINGS, clock=_clock(10),
                              rows=gate_rows)
    assert result.promoted, result.reasons
    manifest = json.loads((directory / "manifest.json").read_text())
    champion = registry.get_champion(local_store)
    assert champion is not None
    assert champion["version"] == manifest["model_version"] == result.version
    assert champion["prefix"] == f"models/{result.version}/"
    assert champion["sha256"] == manifest["sha256"]
    assert champion["promoted_at"] == "2026-02-05T10:00:00Z"
    assert champion["claimed_metrics"]["auc"] == GOOD_METRICS["auc"]  # recorded as a claim
    assert champion["metrics"]["gate_rows"] == len(gate_rows.y)  # what was measured
    assert 0.7 < champion["metrics"]["auc"] != GOOD_METRICS["auc"]
    assert champion["previous"] == []
    for path in directory.iterdir():
        assert local_store.get_bytes(champion["prefix"] + path.name) == path.read_bytes()
    # the copy under models/<version>/ is itself a bundle that verifies and loads
    from leadscore.bundle import load_model

    assert load_model(local_store.root / champion["prefix"]).version == result.version


def test_second_promotion_keeps_history_and_rollback_restores(
    make_bundle: BundleFactory, local_store: LocalObjectStore
) -> None:
    first = registry.promote(make_bundle(seed=1), local_store, SETTINGS, clock=_clock(10))
    second = registry.promote(make_bundle(seed=2), local_store, SETTINGS, clock=_clock(11))
    assert first.promoted and second.promoted and first.version != second.version
    champion = registry.get_champion(local_store)
    assert champion is not None and champion["version"] == second.version
    assert [p["version"] for p in champion["previous"]] == [first.version]

    restored = registry.rollback(local_store, clock=_clock(12))
    assert restored["version"] == first.version
    assert restored["rolled_back_from"] == second.version
    champion = registry.get_champion(local_store)
    assert champion is not None and champion["version"] == first.version
    assert champion["previous"] == []
    with pytest.raises(registry.RegistryError, match="only champion"):
        registry.rollback(local_store)


def test_rollback_without_champion_refuses(local_store: LocalObjectStore) -> None:
    with pytest.raises(registry.RegistryError, match="no champion"):
        registry.rollback(local_store)


def test_promoting_the_champion_again_changes_nothing(
    make_bundle: BundleFactory, local_store: LocalObjectStore
) -> None:
    directory = make_bundle(seed=1)
    registry.promote(directory, local_store, SETTINGS, clock=_clock(10))
    before = local_store.get_bytes(registry.CHAMPION_KEY)
    again = registry.promote(directory, local_store, SETTINGS, clock=_clock(11))
    assert again.promoted and again.already_champion
    assert local_store.get_bytes(registry.CHAMPION_KEY) == before


def _assert_refused(
    result: registry.PromotionResult, store: LocalObjectStore, champion_before: bytes | None,
    fragment: str,
) -> dict[str, object]:
    assert not result.promoted
    assert any(fragment in r for r in result.reasons), result.reasons
    record = registry.why_rejected(result.version, store)
    assert record["reasons"] == result.reasons
    after = store.get_bytes(registry.CHAMPION_KEY) if champion_before is not None else None
    assert after == champion_before
    if champion_before is None:
        assert registry.get_champion(store) is None
    return record


@pytest.fixture
def with_champion(make_bundle: BundleFactory, local_store: LocalObjectStore) -> bytes:
    assert registry.promote(make_bundle(seed=1), local_store, SETTINGS).promoted
    return local_store.get_bytes(registry.CHAMPION_KEY)


def test_below_gate_is_refused_and_champion_kept(
    make_bundle: BundleFactory, local_store: LocalObjectStore, with_champion: bytes,
    gate_rows: EvalRows,
) -> None:
    weak = make_bundle(seed=3, sign=-1.0)  # ranks leads upside down, claims GOOD_METRICS
    result = registry.promote(weak, local_store, SETTINGS, rows=gate_rows)
    record = _assert_refused(result, local_store, with_champion, "auc_lower_bound")
    assert record["claimed_metrics"] == GOOD_METRICS
    assert record["metrics"]["auc"] < 0.5
    # nothing of the refused bundle reached models/<version>/
    assert not local_store.list(f"models/{result.version}/")


def test_force_skips_the_metric_checks_but_records_them(
    make_bundle: BundleFactory, local_store: LocalObjectStore, with_champion: bytes,
    gate_rows: EvalRows,
) -> None:
    weak = make_bundle(seed=3, sign=-1.0)
    result = registry.promote(weak, local_store, SETTINGS, force=True, rows=gate_rows)
    assert result.promoted
    champion = registry.get_champion(local_store)
    assert champion is not None and champion["version"] == result.version
    assert any(r.startswith("auc_lower_bound") for r in champion["forced_past"])


def test_tampered_model_is_refused(
    make_bundle: BundleFactory, local_store: LocalObjectStore, with_champion: bytes
) -> None:
    directory = make_bundle(seed=4)
    with open(directory / MODEL_FILE, "ab") as fh:
        fh.write(b"\x00")
    result = registry.promote(directory, local_store, SETTINGS)
    _assert_refused(result, local_store, with_champion, "sha256 mismatch")


def test_model_that_does_not_load_is_refused(
    make_bundle: BundleFactory, local_store: LocalObjectStore, with_champion: bytes
) -> None:
    directory = make_bundle(seed=5)
    (directory / MODEL_FILE).write_bytes(b"this is not an onnx graph")
    finalize_bundle(directory, {"metrics": GOOD_METRICS})  # hashes agree: only loading fails
    result = registry.promote(directory, local_store, SETTINGS)
    _assert_refused(result, local_store, with_champion, "does not load")


def test_missing_parity_reference_is_refused_even_with_force(
    make_bundle: BundleFactory, local_store: LocalObjectStore
) -> None:
    directory = make_bundle(seed=6)  # its manifest claims parity 2e-7
    (directory / PARITY_REFERENCE_FILE).unlink()
    finalize_bundle(directory, {"metrics": GOOD_METRICS})
    result = registry.promote(directory, local_store, SETTINGS, force=True)
    _assert_refused(result, local_store, None, "parity_recomputed")


def test_broken_bundle_is_recorded_under_its_fallback_name(
    tmp_path: Path, local_store: LocalObjectStore
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = registry.promote(empty, local_store, SETTINGS, fallback_version="job-7")
    assert not result.promoted and result.version == "job-7"
    assert "manifest.json missing" in registry.why_rejected("job-7", local_store)["reasons"][0]


def test_why_rejected_finds_a_record_by_job_name(local_store: LocalObjectStore) -> None:
    registry.reject("lsm-abc", ["bad"], local_store, details={"source": {"job_name": "job-9"}})
    assert registry.why_rejected("job-9", local_store)["version"] == "lsm-abc"
    with pytest.raises(registry.RegistryError):
        registry.why_rejected("job-unknown", local_store)
    with pytest.raises(registry.RegistryError):
        registry.why_rejected("../etc/passwd", local_store)


def test_list_versions_reports_each_status(
    make_bundle: BundleFactory, local_store: LocalObjectStore, gate_rows: EvalRows
) -> None:
    a = registry.promote(make_bundle(seed=1), local_store, SETTINGS)
    b = registry.promote(make_bundle(seed=2), local_store, SETTINGS)
    c = registry.promote(make_bundle(seed=3, sign=-1.0), local_store, SETTINGS, rows=gate_rows)
    rows = {r["version"]: r["status"] for r in registry.list_versions(local_store)}
    assert rows == {b.version: "champion", a.version: "previous", c.version: "rejected"}


# ----------------------------------------------------------------------------- archives


def _archive(tmp_path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    path = tmp_path / "model.tar.gz"
    with tarfile.open(path, mode="w:gz") as tar:
        for info, payload in entries:
            info.size = len(payload) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return path


def _entry(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_archive_of_a_bundle_extracts_to_a_verifiable_bundle(
    tmp_path: Path, make_bundle: BundleFactory
) -> None:
    from leadscore.bundle import verify_bundle

    from .conftest import tar_bundle

    directory = make_bundle(seed=1)
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(tar_bundle(directory))
    out = registry.extract_bundle_archive(archive, tmp_path / "out", 10_000_000)
    assert verify_bundle(out)["model_version"] == verify_bundle(directory)["model_version"]


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (_entry("../evil.txt"), "escapes"),
        (_entry("/etc/evil.txt"), "escapes"),
        (_entry("link", tarfile.SYMTYPE, "/etc/passwd"), "not a regular file"),
        (_entry("hard", tarfile.LNKTYPE, "manifest.json"), "not a regular file"),
        (_entry("fifo", tarfile.FIFOTYPE), "not a regular file"),
    ],
)
def test_archive_with_unsafe_entries_is_refused(
    tmp_path: Path, entry: tarfile.TarInfo, fragment: str
) -> None:
    archive = _archive(tmp_path, [(_entry("manifest.json"), b"{}"), (entry, b"x")])
    with pytest.raises(registry.RegistryError, match=fragment):
        registry.extract_bundle_archive(archive, tmp_path / "out", 10_000)
    assert not (tmp_path / "evil.txt").exists()


def test_archive_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    archive = _archive(tmp_path, [(_entry("model.onnx"), b"0" * 5000)])
    with pytest.raises(registry.RegistryError, match="more than 4096 bytes"):
        registry.extract_bundle_archive(archive, tmp_path / "out", 4096)


def test_corrupt_archive_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"not a tar at all")
    with pytest.raises(registry.RegistryError, match="cannot be read"):
        registry.extract_bundle_archive(archive, tmp_path / "out", 4096)


def test_a_promotion_that_moves_the_class_thresholds_records_and_logs_it(
    make_bundle: BundleFactory, local_store: LocalObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    """New thresholds change which leads start a team's "hot" workflows: said, not silent."""
    first_dir = make_bundle(seed=1)
    assert registry.promote(first_dir, local_store, SETTINGS, clock=_clock(10)).promoted
    before = registry.get_champion(local_store)
    assert before is not None and "thresholds_moved" not in before
    chosen = {"hot": 0.31, "warm": 0.18, "lukewarm": 0.09}
    moved_dir = make_bundle(seed=2)
    manifest = json.loads((moved_dir / "manifest.json").read_text())
    manifest["class_thresholds"] = chosen
    (moved_dir / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="leadscore.registry.promotion"):
        assert registry.promote(moved_dir, local_store, SETTINGS, clock=_clock(11)).promoted
    champion = registry.get_champion(local_store)
    assert champion is not None
    assert champion["thresholds_moved"] == {"from": before["class_thresholds"], "to": chosen}
    assert champion["class_thresholds"] == chosen
    assert "moves the class thresholds" in caplog.text and "pin-thresholds" in caplog.text
    # the previous record keeps its thresholds: what a location can pin
    assert champion["previous"][0]["class_thresholds"] == before["class_thresholds"]
