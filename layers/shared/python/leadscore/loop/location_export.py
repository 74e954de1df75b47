"""Per-location exports: each location's labelled rows -> its own training upload.

With a model per location (``LOCATION_MODELS``), every location learns from its own leads
only. One run reads the labelled rows once (backfill imports included) and decides per
location:

* **No model of its own yet: the first model.** The location's resolved leads, its backfill
  included (contacts read by the location's own fields, labelled by their won/lost
  opportunities; `ContactStep` records them even while nothing may score the location), are
  exported once they hold `first_model_needs` conversions and as many non-conversions
  (``LOCATION_MIN_CONVERSIONS`` of each class in the part the job trains on). There is no
  schema yet: the rows are a CSV of every non-personal column the leads carried plus the
  outcome column (`registry.locations.FIRST_MODEL_TARGET`), and the training job infers the
  schema with the leak guard on.
* **A model of its own: retraining.** Its rows (its backfill included, read in its
  champion's layout: its schema beside a CSV, or the real-estate JSON Lines) are exported
  when at least ``min_new_outcomes`` point-in-time outcomes (leads it scored before they
  resolved) came since the location's last export, or when drift was confirmed for it (the
  monitor's trigger), whichever comes first.

Either way the newest resolved rows are kept back as the location's own platform-held
evaluation set (``locations/<id>/evaluation/holdout/``), the rest go to
``training-data/locations/<id>/<day>/labelled-<h>.<ext>``: the retrain function trains it, and
the promote function gates the candidate against that location's champion on that location's
rows and promotes it for that location alone (`registry.candidates.registry_of_job`). Each
location's cutoff is its own state (``loop/exports/locations/<id>/state.json``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from leadscore.bundle import MANIFEST_FILE, SCHEMA_FILE
from leadscore.columns.schema import Schema
from leadscore.loop.deletion import without_deleted
from leadscore.loop.export import (
    MIN_TRAINING_ROWS,
    ExportConfig,
    ExportState,
    QueryRunner,
    labelled_rows,
    read_state,
    split_holdout,
    window_for,
    write_export,
)
from leadscore.loop.records import iso_ms
from leadscore.loop.snapshots import team_fields
from leadscore.registry.locations import (
    FIRST_MODEL_NEGATIVE,
    FIRST_MODEL_POSITIVE,
    FIRST_MODEL_TARGET,
    LOCATION_UPLOADS_PREFIX,
    first_model_needs,
    location_store,
    location_upload_prefix,
)
from leadscore.registry.promotion import get_champion
from leadscore.registry.store import ConcurrentUpdate, ObjectNotFound, ObjectStore

STATE_PREFIX = "loop/exports/locations/"

#: the first model's layout: no columns yet (training infers them), the fixed outcome column
FIRST_MODEL_LAYOUT = Schema(columns=(), target=FIRST_MODEL_TARGET,
                            positive=FIRST_MODEL_POSITIVE, negative=FIRST_MODEL_NEGATIVE)


def state_key(location_id: str) -> str:
    """Where a location's export cutoff is kept (ValueError for an id HighLevel never makes)."""
    return f"{STATE_PREFIX}{location_upload_prefix(location_id)[len(LOCATION_UPLOADS_PREFIX):]}" \
        "state.json"


@dataclass(frozen=True)
class LocationExport:
    location_id: str
    #: exported | unchanged | lost_race | not_enough_conversions | not_enough_outcomes |
    #: too_few_rows
    status: str
    kind: str  # first_model | retrain
    rows: int = 0  # written for training
    holdout_rows: int = 0
    converted: int = 0  # conversions among the location's usable rows
    not_converted: int = 0
    needed: int = 0  # conversions (and non-conversions) a first model needs
    new_outcomes: int = 0  # point-in-time outcomes since the location's last export
    drift: bool = False
    key: str = ""
    schema_key: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def champion_schema(view: ObjectStore) -> tuple[bool, Schema | None]:
    """(whether the location has a champion, its schema: None for the real-estate form)."""
    champion = get_champion(view)
    if not champion:
        return False, None
    prefix = str(champion.get("prefix") or "").rstrip("/")
    try:
        manifest = json.loads(view.get_bytes(f"{prefix}/{MANIFEST_FILE}"))
        if SCHEMA_FILE not in (manifest.get("files") or {}):
            return True, None
        return True, Schema.from_dict(json.loads(view.get_bytes(f"{prefix}/{SCHEMA_FILE}")))
    except (ObjectNotFound, FileNotFoundError, ValueError, AttributeError, TypeError):
        return True, None


def _counts(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    converted = sum(int(r["converted"]) for r in rows)
    return converted, len(rows) - converted


def export_location(store: ObjectStore, location_id: str,
                    rows: Sequence[Mapping[str, Any]], config: ExportConfig, *,
                    now_ms: int, min_conversions: int, drift: bool = False) -> LocationExport:
    """One location's decision and, when it is due, its export (see the module docstring).
    ``rows``: the location's labelled rows, backfill imports included."""
    view = location_store(store, location_id)
    has_model, schema = champion_schema(view)
    key_of_state = state_key(location_id)
    state, tag = read_state(store, key_of_state)
    layout: Schema | None
    if not has_model:
        kind, layout = "first_model", FIRST_MODEL_LAYOUT
        usable = [r for r in rows if team_fields(r) is not None]
        converted, not_converted = _counts(usable)
        needed = first_model_needs(min_conversions, config.holdout_fraction)
        base = LocationExport(location_id, "", kind, converted=converted,
                              not_converted=not_converted, needed=needed)
        if min(converted, not_converted) < needed:
            return _with(base, "not_enough_conversions")
    else:
        kind, layout = "retrain", schema
        # Its history (the backfill its first model learned from) stays in: without it a
        # location's retraining would wait months for as many point-in-time rows. The newest
        # resolved rows, held back for the gate, are the point-in-time ones.
        usable = [r for r in rows if (team_fields(r) is not None) == (schema is not None)]
        new = sum(1 for r in usable if bool(r["snapshot_point_in_time"])
                  and int(r["outcome_received_at_ms"]) > state.cutoff_ms)
        converted, not_converted = _counts(usable)
        base = LocationExport(location_id, "", kind, converted=converted,
                              not_converted=not_converted, new_outcomes=new, drift=drift)
        if new < config.min_new_outcomes and not drift:
            return _with(base, "not_enough_outcomes")
    train, held = split_holdout(usable, config)
    if len(train) < MIN_TRAINING_ROWS:
        return _with(base, "too_few_rows", rows=len(train))
    status, key, schema_key = write_export(store, view, location_upload_prefix(location_id),
                                           train, held, layout, now_ms=now_ms)
    new_state = ExportState(cutoff_ms=now_ms, key=key, rows=len(train),
                            exported_at=iso_ms(now_ms))
    try:
        store.replace_if(key_of_state, json.dumps(asdict(new_state)).encode(),
                         "application/json", tag)
    except ConcurrentUpdate:
        status = "lost_race"
    return _with(base, status, rows=len(train), holdout_rows=len(held), key=key,
                 schema_key=schema_key)


def _with(base: LocationExport, status: str, **changes: Any) -> LocationExport:
    return LocationExport(**{**base.as_dict(), "status": status, **changes})


def run_location_exports(runner: QueryRunner, store: ObjectStore, config: ExportConfig, *,
                         now_ms: int, min_conversions: int,
                         locations: Collection[str] | None = None,
                         drift: Collection[str] = ()) -> list[LocationExport]:
    """Every location with labelled rows (or only ``locations``), each decided on its own
    rows; ``drift``: the locations whose drift was confirmed (exported whatever their count
    of new outcomes)."""
    # one query for every location; backfill imports are what a first model learns from
    window = window_for(now_ms, ExportConfig(**{**asdict(config), "include_backfilled": True}))
    everything = without_deleted(labelled_rows(runner, window), store)
    by_location: dict[str, list[dict[str, Any]]] = {}
    for row in everything:
        by_location.setdefault(str(row["location_id"]), []).append(row)
    wanted = sorted(by_location) if locations is None else sorted(locations)
    return [export_location(store, location_id, by_location.get(location_id, []), config,
                            now_ms=now_ms, min_conversions=min_conversions,
                            drift=location_id in drift)
            for location_id in wanted if _is_location(location_id)]


def _is_location(location_id: str) -> bool:
    """A real location id (the records' placeholder for "no location" has no registry)."""
    from leadscore.identifiers import is_safe_id
    from leadscore.loop.records import NO_LOCATION

    return location_id != NO_LOCATION and is_safe_id(location_id)
