"""Snapshot records: what was scored, as it was scored, without personal data.

A snapshot keeps the scoring inputs *after* field mapping, reduced to the docs/FEATURES.md paths
(an allow-list built from ``leadscore.features.FLAT_FIELDS``, the one copy of those paths):
any other key a caller or a CRM put into the request (names, e-mails, phones, notes, message
bodies) is dropped, at any depth. It also keeps the 20 feature values, the model version,
the score and class, the time, the location and the contact id. See ARCHITECTURE.md
("Closing the loop") for the record shape.

A lead scored on a team's own columns (a ``fields`` request) keeps the raw value of every
column it carried (the webhook reads every column of the team's export, not only the model's),
as ``inputs = {"fields": {column: value}}``, so each later consumer (export, drift, a candidate
with other columns) reads them through its own schema; ``features`` is null (a vector is only
meaningful for one model). Personal identifiers are never kept, whatever the schema calls them
(`leadscore.columns.personal`: by column name and by value shape); an e-mail address is kept
as its domain only, under ``<column>_domain``. Text shaped like an e-mail, a phone number or a
street address is dropped from the real-estate inputs too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from leadscore.columns.personal import derived_values, is_personal_value
from leadscore.features.contract import FEATURE_NAMES
from leadscore.features.flat import FLAT_FIELDS, FLAT_LIST_KEYS
from leadscore.loop.records import (
    NO_LOCATION,
    SCHEMA_VERSION,
    SNAPSHOT,
    day,
    iso_ms,
    record_id,
)

#: Where a score came from (the ``source`` field of a snapshot).
SOURCES = ("api", "batch", "webhook", "writeback", "backfill")

# section -> {key -> None (a scalar) | tuple of item keys (a list of objects) | dict (nested)}
_Allowed = dict[str, Any]


def _allow_list() -> dict[str, _Allowed]:
    allowed: dict[str, _Allowed] = {}
    list_items = {FLAT_FIELDS[k][-1]: v for k, v in FLAT_LIST_KEYS.items()}
    for path in FLAT_FIELDS.values():
        node = allowed.setdefault(path[0], {})
        for part in path[1:-1]:
            node = node.setdefault(part, {})
        leaf = path[-1]
        node[leaf] = tuple(list_items[leaf]) if leaf in list_items else None
    return allowed


ALLOWED_INPUTS: dict[str, _Allowed] = _allow_list()


def _scalar(value: Any) -> Any:
    """Numbers, text and booleans as given (the extractor judged them); anything else drops."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(float(value)) else None
    if isinstance(value, str):
        if is_personal_value(value):
            return None
        return value[:64]  # a category or numeric text; never free text of any length
    return None


#: the longest text kept of a team's column (what `Schema` reads of a category)
MAX_FIELD_TEXT = 200


def sanitize_fields(fields: Any) -> dict[str, Any] | None:
    """A team's ``fields`` object reduced to what may be kept: scalars only (text cut to
    ``MAX_FIELD_TEXT``), no personal identifier by name or by shape, an e-mail as its domain.
    None when it is not an object."""
    if not isinstance(fields, Mapping):
        return None
    kept: dict[str, Any] = {}
    for column, value in fields.items():
        if isinstance(value, bool) or value is None or isinstance(value, int | float):
            scalar = _scalar(value)
        elif isinstance(value, str):
            scalar = value[:MAX_FIELD_TEXT]
        else:
            continue
        for name, kept_value in derived_values(str(column), scalar).items():
            kept.setdefault(name, kept_value)
    return kept


def _keep(value: Any, allowed: Any) -> Any:
    if allowed is None:
        return _scalar(value)
    if isinstance(allowed, tuple):
        if not isinstance(value, list):
            return None
        items = []
        for item in value[:100]:
            if isinstance(item, Mapping):
                items.append({k: _scalar(item[k]) for k in allowed if k in item})
        return items
    if not isinstance(value, Mapping):
        return None
    return {k: _keep(value[k], sub) for k, sub in allowed.items() if k in value}


def sanitize_inputs(features: Any) -> dict[str, Any] | None:
    """The nested raw lead reduced to docs/FEATURES.md paths; None when it is not an object."""
    if not isinstance(features, Mapping):
        return None
    return {
        section: _keep(features[section], allowed)
        for section, allowed in ALLOWED_INPUTS.items()
        if section in features
    }


def _vector(result: Mapping[str, Any]) -> list[float]:
    values = result.get("feature_values")
    if isinstance(values, Mapping):
        return [float(values[name]) for name in FEATURE_NAMES]
    if isinstance(values, list | tuple) and len(values) == len(FEATURE_NAMES):
        return [float(v) for v in values]
    raise ValueError("a lead score without feature_values cannot be snapshotted")


def build_snapshot(
    request: Mapping[str, Any],
    result: Mapping[str, Any],
    *,
    location_id: str,
    source: str,
    scored_at_ms: int,
    point_in_time: bool = True,
) -> dict[str, Any]:
    """One snapshot record from a scoring request and the lead score it got."""
    if source not in SOURCES:
        raise ValueError(f"unknown snapshot source {source!r}")
    location = location_id or NO_LOCATION
    contact = str(result.get("contact_id") or request.get("contact_id") or "")
    team = request.get("fields") is not None and request.get("features") is None
    features = None if team else _vector(result)
    inputs: dict[str, Any] | None
    if team:
        fields = sanitize_fields(request.get("fields"))
        inputs = None if fields is None else {"fields": fields}
    else:
        inputs = sanitize_inputs(request.get("features"))
    model_version = str(result.get("model_version") or "")
    # None: a lead kept before any model served it (a team's lead before the stack's first
    # model; with a model per location, a closed contact of a location no model may score
    # yet, ``"scored": false``): its inputs are still training data
    score = None if result.get("predicted_score") is None else float(result["predicted_score"])
    return {
        "schema": SCHEMA_VERSION,
        "record_type": SNAPSHOT,
        # Deterministic: a batch Firehose re-sends carries the same ids (the SQL picks one).
        "snapshot_id": record_id(SNAPSHOT, location, contact, scored_at_ms, model_version, source),
        "location_id": location,
        "contact_id": contact,
        "scored_at": iso_ms(scored_at_ms),
        "scored_at_ms": scored_at_ms,
        "dt": day(scored_at_ms),
        "source": source,
        "point_in_time": point_in_time,
        "model_version": model_version,
        "predicted_score": score,
        "predicted_class": str(result.get("predicted_class") or ""),
        "features": features,
        "inputs": None if inputs is None else json.dumps(inputs, separators=(",", ":")),
        **_experiment_fields(result),
    }


def _experiment_fields(result: Mapping[str, Any]) -> dict[str, Any]:
    """Which experiment arm answered (and the shadow's score), for experiment results."""
    shadow = result.get("shadow") if isinstance(result.get("shadow"), Mapping) else {}
    shadow_score = shadow.get("predicted_score") if shadow else None
    return {
        "experiment": result.get("experiment"),
        "variant": result.get("variant"),
        "shadow_version": shadow.get("model_version") if shadow else None,
        "shadow_score": float(shadow_score) if shadow_score is not None else None,
    }


def team_fields(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The raw column values a snapshot (or a labelled row) kept of a lead scored on a team's
    columns; None for the real-estate form (or inputs that cannot be read)."""
    try:
        inputs = json.loads(row["inputs"])
    except (TypeError, ValueError, KeyError):
        return None
    fields = inputs.get("fields") if isinstance(inputs, Mapping) else None
    return dict(fields) if isinstance(fields, Mapping) else None
