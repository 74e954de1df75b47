"""The model registry: which bundle is the champion, which were refused, and why.

Pure logic over a tiny storage protocol (`ObjectStore`), so the same code runs on a local
directory (`make demo`, `tools/modelctl.py`) and on the S3 bucket
(`leadscore.adapters.s3_store.S3ObjectStore`). Layout, the same in both (ARCHITECTURE.md):

    models/<version>/...bundle files...
    models/champion.json            {"version", "prefix", "sha256", "promoted_at", "metrics",
                                     "previous": [earlier champion records, newest first]}
    models/rejected/<version>.json  {"version", "rejected_at", "reasons": [...], ...}

A promotion copies every bundle file under `models/<version>/` FIRST and only then replaces
`models/champion.json` in one write, so a reader that follows the pointer never sees a
half-written bundle. `prefix` in champion.json is relative to the store root
(`models/<version>/`); the scoring side resolves it against its own bucket or directory.

That one write is conditional on the pointer read before it (S3 If-Match / If-None-Match, a
file lock locally): two promotions, or a promotion and a rollback, finishing at the same time
never overwrite each other; the loser re-reads the pointer and decides (and gates) again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadscore.bundle import (
    CHAMPION_POINTER_KEY,
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    MODELS_PREFIX,
    REJECTED_PREFIX,
    BundleError,
    LoadedModel,
    load_model,
    rejected_key,
    verify_bundle,
    version_prefix,
)
from leadscore.classes import DEFAULT_CLASS_THRESHOLDS, bundle_thresholds, thresholds_change
from leadscore.registry import gate
from leadscore.registry.gate import auc_of, brier_of, metric_value, parity_of
from leadscore.registry.holdout import read_holdout
from leadscore.registry.store import ConcurrentUpdate, ObjectNotFound, ObjectStore, RegistryError
from leadscore.settings import PromoteSettings

# The store's layout is the bundle module's (one copy for promotion, serving, experiments).
CHAMPION_KEY = CHAMPION_POINTER_KEY
MAX_HISTORY = 20
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Clock = Callable[[], datetime]


_log = logging.getLogger(__name__)

def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class PromotionResult:
    promoted: bool
    version: str
    reasons: list[str] = field(default_factory=list)
    champion: dict[str, Any] | None = None
    already_champion: bool = False
    # what the gate measured and decided (the record's `gate`), for the operator's answer
    gate: dict[str, Any] | None = None


def _json_object(key: str, raw: bytes) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise RegistryError(f"{key} is not a JSON object")
    return value


def _read_json(store: ObjectStore, key: str) -> dict[str, Any] | None:
    try:
        raw = store.get_bytes(key)
    except ObjectNotFound:
        return None
    return _json_object(key, raw)


def _json_bytes(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode("utf-8")


def _put_json(store: ObjectStore, key: str, value: Mapping[str, Any]) -> None:
    store.put_bytes(key, _json_bytes(value), "application/json")


def _champion_tagged(store: ObjectStore) -> tuple[dict[str, Any] | None, str | None]:
    """The champion record and the tag to make the next pointer write conditional on."""
    try:
        raw, tag = store.get_tagged(CHAMPION_KEY)
    except ObjectNotFound:
        return None, None
    return _json_object(CHAMPION_KEY, raw), tag


# Two promotions (or a promotion and a rollback) finishing together must not overwrite each
# other: each decision is re-made against the champion it lost to, a few times at most.
POINTER_ATTEMPTS = 5


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise RegistryError(f"invalid version name {name!r}")
    return name


def _content_type(name: str) -> str:
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".txt"):
        return "text/plain; charset=utf-8"
    if name.endswith(".html"):
        return "text/html; charset=utf-8"
    return "application/octet-stream"


def _jsonable(value: Any) -> Any:
    """NaN/inf become null (records must be valid JSON); numpy scalars plain numbers."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) or hasattr(value, "item"):
        number = value.item() if hasattr(value, "item") else value
        if isinstance(number, float) and not math.isfinite(number):
            return None
        return number
    return str(value)


def get_champion(store: ObjectStore) -> dict[str, Any] | None:
    """The champion record, or None when nothing was ever promoted."""
    return _read_json(store, CHAMPION_KEY)


def _summary_metrics(bundle_dir: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's metric summary, completed from ensemble_metrics.json when it lacks one."""
    metrics: dict[str, Any] = dict(manifest.get("metrics") or {})
    path = bundle_dir / METRICS_FILE
    if path.is_file():
        try:
            full = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            full = {}
        if isinstance(full, dict):
            for name, value in (
                ("auc", auc_of(full)),
                ("brier", brier_of(full)),
                ("parity_max_abs_diff", parity_of(full)),
            ):
                if metric_value(metrics, name) is None and value is not None:
                    metrics[name] = value
    return metrics


def reject(
    version: str,
    reasons: Sequence[str],
    store: ObjectStore,
    *,
    details: Mapping[str, Any] | None = None,
    clock: Clock = _utcnow,
) -> dict[str, Any]:
    """Record why `version` (or a job name) was refused: models/rejected/<version>.json."""
    record: dict[str, Any] = {
        "version": _check_name(version),
        "rejected_at": _iso(clock()),
        "reasons": list(reasons),
    }
    if details:
        record.update({k: v for k, v in details.items() if k not in record})
    _put_json(store, rejected_key(version), record)
    return record


def why_rejected(version: str, store: ObjectStore) -> dict[str, Any]:
    """The rejection record of a version, or of the training job that produced it."""
    record = _read_json(store, rejected_key(_check_name(version)))
    if record is not None:
        return record
    for key in store.list(REJECTED_PREFIX):
        candidate = _read_json(store, key) or {}
        source = candidate.get("source")
        if isinstance(source, dict) and source.get("job_name") == version:
            return candidate
    raise RegistryError(f"no rejection recorded for {version!r}")


def verify_candidate(bundle_dir: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """(manifest or None, problems): files, sha256, feature names, loads in onnxruntime."""
    manifest, _, problems = _open_candidate(bundle_dir)
    return manifest, problems


def _open_candidate(
    bundle_dir: Path,
) -> tuple[dict[str, Any] | None, LoadedModel | None, list[str]]:
    try:
        manifest = dict(verify_bundle(bundle_dir))
    except BundleError as exc:
        return None, None, [f"bundle verification failed: {exc}"]
    except (OSError, ValueError) as exc:
        return None, None, [f"bundle verification failed: {type(exc).__name__}: {exc}"]
    try:
        model = load_model(bundle_dir)
    except Exception as exc:
        return manifest, None, [
            f"model.onnx does not load in onnxruntime: {type(exc).__name__}: {exc}"]
    return manifest, model, []


def _fetch_bundle(store: ObjectStore, prefix: str, dest: Path) -> Path:
    """Copy the bundle stored under `prefix` into `dest` (its manifest names every file)."""
    dest.mkdir(parents=True, exist_ok=True)
    manifest_raw = store.get_bytes(prefix + MANIFEST_FILE)
    manifest = _json_object(prefix + MANIFEST_FILE, manifest_raw)
    names = {MODEL_FILE, *(manifest.get("files") or {})}
    for name in sorted(names):
        _check_name(name)
        (dest / name).write_bytes(store.get_bytes(prefix + name))
    (dest / MANIFEST_FILE).write_bytes(manifest_raw)
    return dest


def _load_champion(store: ObjectStore, champion: Mapping[str, Any], work: Path
                   ) -> LoadedModel | str:
    """The champion's model, to score on the same rows; a sentence when it cannot be had."""
    version = str(champion.get("version") or "")
    prefix = str(champion.get("prefix") or version_prefix(str(version)))
    try:
        return load_model(_fetch_bundle(store, prefix, work / f"champion-{_check_name(version)}"))
    except (ObjectNotFound, BundleError, RegistryError, OSError, ValueError) as exc:
        return f"champion {version} cannot be loaded: {type(exc).__name__}: {exc}"


NOT_MEASURED = ("no metric was measured: no evaluation rows were given (modelctl promote "
                "--eval FILE) and the platform holds no evaluation set the candidate can read; "
                "only the output checks ran (probe leads, the bundle's reference rows)")


def _measured_summary(report: gate.GateReport) -> dict[str, Any]:
    """The figures the gate measured, in the champion record's `metrics`."""
    keys = ("auc", "auc_lower_bound_95", "auc_se", "brier", "log_loss", "base_rate_log_loss",
            "gate_rows", "gate_converted", "evaluation_source")
    out = {k: report.measured[k] for k in keys if k in report.measured}
    parity = next((c for c in report.checks if c.name == "parity_recomputed"), None)
    if parity is not None:
        out["parity_check"] = parity.detail
    if not out.get("gate_rows"):
        out["note"] = NOT_MEASURED
    return out


def promote(
    bundle_dir: str | os.PathLike[str],
    store: ObjectStore,
    settings: PromoteSettings,
    *,
    force: bool = False,
    fallback_version: str | None = None,
    source: Mapping[str, Any] | None = None,
    clock: Clock = _utcnow,
    rows: gate.EvalRows | None = None,
    counts: gate.ClassCounts | None = None,
    allow_schema_change: bool = False,
    use_holdout: bool = True,
    otherwise_scored: bool = False,
) -> PromotionResult:
    """Verify, MEASURE (leadscore.gate), copy to models/<version>/, then switch champion.json.

    `rows`: labelled rows the candidate never trained on (the gate part of the upload, or
    `modelctl promote --eval FILE`); the champion is scored on the same rows, and both on the
    platform-held evaluation set when the store holds one (`registry/holdout.py`;
    `use_holdout=False` only for tools that measure something else). `counts`: the
    training class counts as counted by the retrain function (without them, the manifest's
    claim is used and the record says so). The manifest's own metrics are recorded as
    `claimed_metrics`, never decisive. A refusal is recorded under models/rejected/ and leaves
    the champion untouched. `force` overrides the metric checks only, never verification or
    the output checks (finite, in [0, 1], interval, not constant, recomputed parity), nor a
    change of what callers send (that needs `allow_schema_change`).

    A first model (no champion) reading a team's own columns is judged against chance, not
    MIN_AUC: nothing else would score those leads (the rules read the real-estate features
    only), so refusing a weak but real model leaves every lead unscored. So is its successor
    while the champion reads a team's columns too: refused, it leaves that champion serving,
    which was judged by the same bar; MIN_AUC there refused candidates measured better than
    the champion and kept the worse one. The champion comparison still applies. `otherwise_scored`
    says another model would answer (a location's first model beside an agency champion):
    MIN_AUC stays the bar then, as it does for a model on the real-estate features.
    """
    bundle = Path(bundle_dir)
    fallback = fallback_version or bundle.name or "unknown"
    details: dict[str, Any] = {"source": dict(source)} if source else {}
    manifest, candidate, problems = _open_candidate(bundle)
    version = str(manifest.get("model_version", "")) if manifest else ""
    if manifest is not None and not _NAME_RE.match(version):
        problems.append(f"manifest model_version {version!r} is not a valid version name")
        version = ""
    version = version or fallback
    claimed = _summary_metrics(bundle, manifest) if manifest is not None else {}
    if problems or candidate is None or manifest is None:
        record = reject(version, problems, store,
                        details={**details, "claimed_metrics": _jsonable(claimed)}, clock=clock)
        return PromotionResult(False, version, list(record["reasons"]))
    counts = counts or gate.claimed_counts(manifest)
    target, rule = gate.label_rule(manifest)
    holdout = read_holdout(store, target=target, rule=rule) if use_holdout else None

    prefix = version_prefix(version)
    copied = False
    champions: dict[str, LoadedModel | str] = {}
    with tempfile.TemporaryDirectory(prefix="champion-") as work:
        for _ in range(POINTER_ATTEMPTS):
            champion, tag = _champion_tagged(store)
            if champion is not None and champion.get("version") == version:
                return PromotionResult(True, version, [], champion, already_champion=True)
            champion_model: LoadedModel | str | None = None
            if champion is not None:
                # Loaded even without rows: a schema change is judged on the bundles alone.
                key = str(champion.get("version"))
                if key not in champions:
                    champions[key] = _load_champion(store, champion, Path(work))
                champion_model = champions[key]
            # What answers if the candidate is refused: no one (a first team-schema model),
            # or a champion that itself reads a team's columns and was judged by this bar;
            # the champion comparison below then guards against a worse model. Against a
            # real-estate champion or another model (`otherwise_scored`), MIN_AUC stays.
            nothing_else = (not otherwise_scored
                            and getattr(candidate, "schema", None) is not None
                            and (champion is None
                                 or getattr(champion_model, "schema", None) is not None))
            report = gate.measure(candidate, bundle, settings, rows=rows, holdout=holdout,
                                  champion=champion_model, counts=counts,
                                  allow_schema_change=allow_schema_change,
                                  nothing_else_scores=nothing_else)
            measured = _jsonable(_measured_summary(report))
            gate_record = _jsonable(report.summary())
            failed = report.reasons(force=force)
            if failed:
                record = reject(version, failed, store, details={
                    **details, "metrics": measured, "claimed_metrics": _jsonable(claimed),
                    "gate": gate_record}, clock=clock)
                return PromotionResult(False, version, list(record["reasons"]),
                                       gate=gate_record)
            if not copied:
                # Exactly the verified files (verify_bundle checked each name and sha256),
                # pointer last.
                names = sorted({MODEL_FILE, *(manifest.get("files") or {})})
                for name in [*names, MANIFEST_FILE]:
                    store.put_bytes(prefix + name, (bundle / name).read_bytes(),
                                    _content_type(name))
                copied = True
            record = {
                "version": version,
                "prefix": prefix,
                "sha256": manifest.get("sha256"),
                "promoted_at": _iso(clock()),
                "metrics": measured,
                "claimed_metrics": _jsonable(claimed),
                "gate": gate_record,
            }
            if details:
                record.update(details)
            record["class_thresholds"] = dict(bundle_thresholds(manifest)
                                              or DEFAULT_CLASS_THRESHOLDS)
            moved = thresholds_change(champion, manifest)
            if moved is not None:
                # New thresholds change which leads start a team's "hot" workflows: say so.
                record["thresholds_moved"] = moved
                _log.warning("promotion moves the class thresholds of %s: %s -> %s; pin the "
                             "previous ones for a location with ghlctl pin-thresholds",
                             version, moved["from"], moved["to"])
            overridden = report.overridden()
            if overridden:
                record["forced_past"] = overridden
            if "schema_change" in report.measured:
                record["schema_change"] = report.measured["schema_change"]
            history: list[dict[str, Any]] = []
            if champion is not None:
                earlier = [dict(p) for p in champion.get("previous", []) if isinstance(p, dict)]
                history = [{k: v for k, v in champion.items() if k not in ("previous", "gate")},
                           *earlier]
            record["previous"] = [h for h in history
                                  if h.get("version") != version][:MAX_HISTORY]
            try:
                store.replace_if(CHAMPION_KEY, _json_bytes(record), "application/json", tag)
            except ConcurrentUpdate:
                continue
            return PromotionResult(True, version, [], record, gate=gate_record)
    raise RegistryError(
        f"could not switch {CHAMPION_KEY}: it kept changing under {POINTER_ATTEMPTS} attempts"
    )


def rollback(store: ObjectStore, *, clock: Clock = _utcnow) -> dict[str, Any]:
    """Make the previous champion the champion again (one put). Refuses when there is none."""
    for _ in range(POINTER_ATTEMPTS):
        champion, tag = _champion_tagged(store)
        if champion is None:
            raise RegistryError("nothing to roll back: no champion has been promoted")
        previous = [p for p in champion.get("previous", []) if isinstance(p, dict)]
        if not previous:
            raise RegistryError(
                f"nothing to roll back to: {champion.get('version')} is the only champion so far"
            )
        target = dict(previous[0])
        prefix = str(target.get("prefix") or version_prefix(str(target.get('version'))))
        if not store.exists(prefix + MANIFEST_FILE):
            raise RegistryError(
                f"cannot roll back to {target.get('version')}: {prefix} no longer holds a bundle"
            )
        target["previous"] = previous[1:]
        target["restored_at"] = _iso(clock())
        target["rolled_back_from"] = champion.get("version")
        try:
            store.replace_if(CHAMPION_KEY, _json_bytes(target), "application/json", tag)
        except ConcurrentUpdate:
            continue
        return target
    raise RegistryError(
        f"could not switch {CHAMPION_KEY}: it kept changing under {POINTER_ATTEMPTS} attempts"
    )


def list_versions(store: ObjectStore) -> list[dict[str, Any]]:
    """Every stored or rejected version with its status: champion, previous, stored, rejected."""
    champion = get_champion(store)
    earlier = (champion or {}).get("previous", [])
    history = {str(p.get("version")): p for p in earlier if isinstance(p, dict)}
    rows: dict[str, dict[str, Any]] = {}
    for key in store.list(MODELS_PREFIX):
        rest = key[len(MODELS_PREFIX):]
        if rest.startswith("rejected/") and rest.endswith(".json"):
            name = rest[len("rejected/"):-len(".json")]
            record = _read_json(store, key) or {}
            rows.setdefault(name, {"version": name, "status": "rejected",
                                   "rejected_at": record.get("rejected_at"),
                                   "reasons": record.get("reasons", [])})
        elif rest.count("/") == 1 and rest.endswith("/" + MANIFEST_FILE):
            name = rest.split("/", 1)[0]
            if champion is not None and champion.get("version") == name:
                status, info = "champion", champion
            elif name in history:
                status, info = "previous", history[name]
            else:
                status, info = "stored", {}
            rows[name] = {"version": name, "status": status,
                          "promoted_at": info.get("promoted_at"),
                          "metrics": info.get("metrics")}
    order = {"champion": 0, "previous": 1, "stored": 2, "rejected": 3}
    return sorted(rows.values(), key=lambda r: (order[r["status"]], r["version"]))


