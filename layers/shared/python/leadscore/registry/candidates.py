"""A finished training job's candidate, from SageMaker's state-change event to a decision.

Completed: the job's ``model.tar.gz`` is checked (in the artifact bucket, present, within
`max_artifact_bytes`), fetched and unpacked safely, the gate part the retrain function kept
under ``evaluation/<job>/`` (rows the job never saw) and its split record are read, and all of
it goes to `promote` (verify, measure against the champion, copy, switch the pointer).
Failed or Stopped: a rejection record names SageMaker's reason. A repeated delivery of an event
whose job was already promoted or refused changes nothing. A bad bundle is a rejection with its
reasons, never an exception; the store's own errors (throttling, timeouts) do raise.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from leadscore.bundle import (
    CHAMPION_POINTER_KEY,
    REFUSED_SCHEMA_KEY,
    REJECTED_PREFIX,
    SCHEMA_FILE,
    WAITING_HISTORY_KEY,
)
from leadscore.registry import gate, retraining
from leadscore.registry.archive import extract_bundle_archive
from leadscore.registry.locations import location_of_upload, location_store
from leadscore.registry.promotion import get_champion, promote, reject
from leadscore.registry.store import ObjectStore, RegistryError
from leadscore.settings import PromoteSettings

logger = logging.getLogger(__name__)

ENDED = ("Completed", "Failed", "Stopped")


class Artifacts(Protocol):
    """Where SageMaker writes a job's ``model.tar.gz`` (`leadscore.adapters.s3_store`)."""

    def size(self, bucket: str, key: str) -> int | None:
        """The object's size in bytes; None when there is no such object."""

    def download(self, bucket: str, key: str, path: Path) -> None: ...


@dataclass
class Decision:
    """What happened to one event's job (the function counts and answers it)."""

    job: str
    status: str  # ignored | duplicate | rejected | promoted | already-champion
    version: str | None = None
    reasons: list[str] = field(default_factory=list)
    training_status: str | None = None
    training_failed: bool = False  # a Failed or Stopped job (TrainingJobFailedAlarm)
    location_id: str | None = None  # a location's own candidate (decided in its registry)

    def answer(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job": self.job, "status": self.status}
        if self.version is not None:
            out["version"] = self.version
        if self.reasons:
            out["reasons"] = self.reasons
        if self.status == "ignored":
            out["training_status"] = self.training_status
        if self.location_id is not None:
            out["location_id"] = self.location_id
        return out


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise RegistryError(f"model artifact {uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise RegistryError(f"model artifact {uri!r} names no object")
    return bucket, key


def already_handled(store: ObjectStore, job: str) -> bool:
    """A repeated EventBridge delivery: the job was promoted or refused before."""
    if store.exists(f"{REJECTED_PREFIX}{job}.json"):
        return True
    champion = get_champion(store) or {}
    records = [champion, *champion.get("previous", [])]
    return any(
        isinstance(r, dict) and (r.get("source") or {}).get("job_name") == job for r in records
    )


def failure_reason(status: str, detail: Mapping[str, Any]) -> str:
    """SageMaker's reason a job Failed or Stopped (e.g. MaxRuntimeExceeded)."""
    secondary = str(detail.get("SecondaryStatus") or "")
    reason = str(detail.get("FailureReason") or secondary or f"the training job {status.lower()}")
    if secondary and secondary != status and secondary not in reason:
        reason = f"{secondary}: {reason}"
    return reason


def gate_inputs(
    store: ObjectStore, job: str, bundle_dir: Path
) -> tuple[gate.EvalRows | None, gate.ClassCounts | None, str | None]:
    """The gate part the retrain function kept for `job`, and its split record's counts.

    (rows, counts, None), or (None, None, reason) when the job has no gate part: a candidate
    that cannot be measured is not promoted.
    """
    record_key = retraining.split_record_key(job)
    parts = [k for k in store.list(f"{retraining.EVALUATION_PREFIX}{job}/")
             if k != record_key]
    if not parts or not store.exists(record_key):
        return None, None, (f"no gate part under {retraining.EVALUATION_PREFIX}{job}/: the "
                            "candidate cannot be measured on rows it never saw")
    part = parts[0]
    try:
        record = json.loads(store.get_bytes(record_key))
        train = record["train"]
        counts = gate.ClassCounts(int(train["converted"]), int(train["not_converted"]),
                                  f"counted by the retrain function ({record_key})")
        rows, skipped = gate.read_rows_for_bundle(
            store.get_bytes(part), jsonl=part.endswith(".jsonl"), bundle_dir=bundle_dir,
            source=part)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return None, None, f"gate part of {job} cannot be read: {type(exc).__name__}: {exc}"
    if skipped:
        logger.info("gate rows skipped for %s: %d", job, skipped)
    return rows, counts, None


def _rejected(store: ObjectStore, job: str, reasons: list[str],
              details: dict[str, Any], **extra: Any) -> Decision:
    reject(job, reasons, store, details=details)
    return Decision(job, "rejected", reasons=reasons, **extra)


def registry_of_job(store: ObjectStore, job: str) -> tuple[ObjectStore, str | None]:
    """The registry a job's candidate is decided in, and its location: a location's upload
    (``training-data/locations/<id>/``, as the retrain function's split record names it) goes
    to that location's own registry and is gated against its champion and its own held-out
    rows; everything else to the agency's. A job without a readable record is the agency's."""
    try:
        record = json.loads(store.get_bytes(retraining.split_record_key(job)))
        location_id = location_of_upload(str(record.get("source_key") or ""))
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        return store, None
    if location_id is None:
        return store, None
    return location_store(store, location_id), location_id


def _keep_refused_schema(store: ObjectStore, bundle_dir: Path) -> None:
    """A refused team-schema candidate's columns (`bundle.REFUSED_SCHEMA_KEY`), while no
    model serves: what the loop exports in until one does."""
    schema = bundle_dir / SCHEMA_FILE
    if not schema.is_file() or store.exists(CHAMPION_POINTER_KEY):
        return
    try:
        store.put_bytes(REFUSED_SCHEMA_KEY, schema.read_bytes())
    except Exception:  # a courtesy for the loop; the decision stands without it
        logger.warning("the refused candidate's schema was not kept", exc_info=True)


def _keep_waiting_history(store: ObjectStore, job: str) -> None:
    """A stack job that produced no model while none serves (`bundle.WAITING_HISTORY_KEY`):
    it failed (its rows too few to train on, most often too few conversions) or the gate
    refused its candidate. The loop's next export carries the history that job's upload held,
    so the next job learns from the past leads and the outcomes that came since together.
    A refused candidate's history is carried too: refused on its own held-out part, it still
    holds what the team knew before the loop (docs/LOOP.md, "Before a first model", has the
    bank file's figures with and without it)."""
    if store.exists(CHAMPION_POINTER_KEY):
        return
    try:
        store.put_bytes(WAITING_HISTORY_KEY, json.dumps({"job": job}).encode("utf-8"),
                        "application/json")
    except Exception:  # a courtesy for the loop; the decision stands without it
        logger.warning("the history of a job that produced no model was not kept",
                       exc_info=True)


def handle_completed(job: str, artifact_uri: str, store: ObjectStore, artifacts: Artifacts,
                     settings: PromoteSettings, registry: ObjectStore | None = None) -> Decision:
    """``store``: the artifact bucket (the job's gate part); ``registry``: where the candidate
    is decided (the agency's store, or a location's view of it; default ``store``)."""
    details: dict[str, Any] = {"job_name": job, "artifact": artifact_uri}
    gate_store, store = store, (registry if registry is not None else store)
    source = {"source": details}
    try:
        bucket, key = split_s3_uri(artifact_uri)
    except RegistryError as exc:
        return _rejected(store, job, [str(exc)], source)
    if bucket != settings.artifact_bucket:
        return _rejected(store, job,
                         [f"model artifact is outside bucket {settings.artifact_bucket}"], source)
    size = artifacts.size(bucket, key)
    if size is None:
        return _rejected(store, job, [f"model artifact {artifact_uri} does not exist"], source)
    if size > settings.max_artifact_bytes:
        return _rejected(
            store, job, [f"model.tar.gz is {size} bytes, above {settings.max_artifact_bytes}"],
            source)
    with tempfile.TemporaryDirectory(prefix="candidate-") as tmp:
        archive = Path(tmp) / "model.tar.gz"
        artifacts.download(bucket, key, archive)
        try:
            bundle_dir = extract_bundle_archive(
                archive, Path(tmp) / "bundle", settings.max_artifact_bytes,
                max_members=settings.max_archive_members,
                max_member_bytes=settings.max_archive_member_bytes,
            )
        except RegistryError as exc:
            return _rejected(store, job, [str(exc)], source)
        rows, counts, missing = gate_inputs(gate_store, job, bundle_dir)
        if missing:
            return _rejected(store, job, [missing], source)
        # A location's first model beside an agency champion may not be the only answer for
        # its leads (the agency's model scores them when pooling is allowed and its columns
        # fit): MIN_AUC stays its bar rather than chance.
        agency_scores = store is not gate_store and get_champion(gate_store) is not None
        result = promote(bundle_dir, store, settings, fallback_version=job, source=details,
                         rows=rows, counts=counts, otherwise_scored=agency_scores)
        if not result.promoted:
            _keep_refused_schema(store, bundle_dir)
    if not result.promoted:
        return Decision(job, "rejected", version=result.version, reasons=result.reasons)
    status = "already-champion" if result.already_champion else "promoted"
    return Decision(job, status, version=result.version)


def handle_training_event(event: Mapping[str, Any], store: ObjectStore, artifacts: Artifacts,
                          settings: PromoteSettings) -> Decision:
    """One "SageMaker Training Job State Change" event -> its decision."""
    detail = event.get("detail") or {}
    job = str(detail.get("TrainingJobName", ""))
    status = str(detail.get("TrainingJobStatus", ""))
    if not job or status not in ENDED:
        return Decision(job, "ignored", training_status=status)
    bucket_store = store
    store, location_id = registry_of_job(store, job)
    if already_handled(store, job):
        return replace(Decision(job, "duplicate"), location_id=location_id)
    if status in ("Failed", "Stopped"):
        reason = failure_reason(status, detail)
        decision = _rejected(store, job, [f"training job {status.lower()}: {reason}"],
                             {"source": {"job_name": job}, "failure_reason": reason,
                              "training_status": status}, training_failed=True)
    else:
        artifact = str((detail.get("ModelArtifacts") or {}).get("S3ModelArtifacts", ""))
        decision = handle_completed(job, artifact, bucket_store, artifacts, settings,
                                    registry=store)
    if decision.status == "rejected" and location_id is None:
        _keep_waiting_history(store, job)
    return replace(decision, location_id=location_id)
