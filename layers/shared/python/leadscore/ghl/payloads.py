"""HighLevel webhook payloads: their kinds and the mapping to a scoring request.

The mapping turns either payload (marketplace event or workflow action) into
``{"contact_id", "features": nested}`` through ``leadscore.features.flat.flat_to_nested`` (the
one copy of the flat-name rules). By default a key is read when its (normalised) name is a
flat feature name (docs/FEATURES.md); ``GHL_FIELD_MAP`` maps a deployment's custom field ids or
keys onto flat names and wins over the default.

When the served bundle was trained on a team's own columns (``leadscore.columns``), the same
pairs become ``{"contact_id", "fields": {column: value}}`` instead: a key is read when
``GHL_FIELD_MAP`` maps it to a column, when it is a column's HighLevel ``field_key`` (the
schema's field map), or when it is the column's name (keys compared normalised). The columns
are those of the team's export (the model's and the ones training excluded, never a personal
identifier's): the model reads its own, the loop keeps them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from leadscore import jsonsafe
from leadscore.columns.keys import normalise_key
from leadscore.columns.schema import Schema, reading_schema
from leadscore.errors import InvalidInput
from leadscore.features.flat import FLAT_FIELDS, flat_to_nested

#: Marketplace events that carry a contact worth scoring.
CONTACT_EVENTS = frozenset({"ContactCreate", "ContactUpdate"})

#: The flat keys of docs/FEATURES.md ("Flat names in HighLevel"), from the one copy of the rule.
FLAT_NAMES: frozenset[str] = frozenset(FLAT_FIELDS)

#: HighLevel's standard contact attributes (keys of the ContactCreate / ContactUpdate payload)
#: -> the column a team's schema names them by (the headers of a contact export, normalised).
#: ``type`` is left out: in a marketplace event it holds the event's type, not the contact's.
STANDARD_COLUMNS: dict[str, str] = {"source": "source", "tags": "tags",
                                    "dateAdded": "date_added", "dnd": "dnd"}
#: The message counters (``leadscore.loop.engagement``) as a team's columns.
ENGAGEMENT_COLUMNS = ("message_count", "inbound_messages", "outbound_messages",
                      "avg_response_time_seconds")


class PayloadKind(StrEnum):
    MARKETPLACE = "marketplace"
    WORKFLOW = "workflow"


class WebhookError(ValueError):
    """A verified webhook whose body cannot be used (not JSON, not a contact payload)."""


@dataclass(frozen=True)
class ParsedWebhook:
    """A webhook turned into what scoring needs, plus identifiers safe to log."""

    kind: PayloadKind
    contact_id: str
    location_id: str
    webhook_id: str
    event_type: str
    request: dict[str, Any] = field(default_factory=dict)

    def log_keys(self) -> dict[str, str]:
        """Identifiers only; never names, email, phone or field values."""
        return {
            "kind": self.kind.value,
            "contact_id": self.contact_id,
            "location_id": self.location_id,
            "webhook_id": self.webhook_id,
            "event_type": self.event_type,
        }
# --------------------------------------------------------------------------- payloads


def parse_json_body(body: bytes) -> dict[str, Any]:
    try:
        # a 4,400-digit number is read as inf and named by its field; too deep is an error
        payload = jsonsafe.loads(body.decode("utf-8"))
    except (ValueError, jsonsafe.UntrustedJSONError) as exc:  # not UTF-8, not JSON, too deep
        raise WebhookError("body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookError("body must be a JSON object")
    return payload


def unwrap_event(payload: dict[str, Any]) -> dict[str, Any]:
    """HighLevel's event reference pages put an event's fields flat beside ``type``; the
    integration guide's tutorial nests them under ``data``. Both become the flat form (the
    envelope's keys win over the nested ones)."""
    data = payload.get("data")
    if isinstance(payload.get("type"), str) and isinstance(data, dict):
        return {**data, **{k: v for k, v in payload.items() if k != "data"}}
    return payload


def detect_kind(payload: Mapping[str, Any]) -> PayloadKind:
    """Marketplace events carry ``type`` and ``locationId``; workflow calls ``contact_id``,
    ``location: {id}`` and ``customData``."""
    if isinstance(payload.get("type"), str) and "locationId" in payload:
        return PayloadKind.MARKETPLACE
    if (
        "contact_id" in payload
        or isinstance(payload.get("location"), Mapping)
        or isinstance(payload.get("customData"), Mapping)
    ):
        return PayloadKind.WORKFLOW
    raise WebhookError("not a HighLevel contact webhook")


def is_scorable(payload: Mapping[str, Any], kind: PayloadKind) -> bool:
    """Workflow calls always are; marketplace events only for contact create/update."""
    return kind is PayloadKind.WORKFLOW or payload.get("type") in CONTACT_EVENTS


def _flat_name(key: str, field_map: Mapping[str, str]) -> str | None:
    if key in field_map:
        return field_map[key]
    name = normalise_key(key)
    return name if name in FLAT_NAMES else None


def _is_absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def _column_names(schema: Schema, field_map: Mapping[str, str]) -> Callable[[str], str | None]:
    """key -> schema column: the deployment's map (its names matched to columns as keys
    are), then the standard contact attributes, then field keys, then column names. Every
    column of the team's export is read (`reading_schema`), not only the model's: the loop
    keeps them, so a later candidate can be trained and measured on them."""
    schema = reading_schema(schema)
    columns = set(schema.column_names)
    by_key = {normalise_key(k): c for k, c in schema.field_map().items()}
    by_name = {normalise_key(c): c for c in schema.column_names}

    def resolve(key: str) -> str | None:
        if key in field_map:
            mapped = field_map[key]
            if mapped in columns:
                return mapped
            name = normalise_key(mapped)
            return by_key.get(name) or by_name.get(name)
        if key in columns:
            return key
        if key in STANDARD_COLUMNS:
            standard = normalise_key(STANDARD_COLUMNS[key])
            return by_key.get(standard) or by_name.get(standard)
        name = normalise_key(key)
        return by_key.get(name) or by_name.get(name)

    return resolve


def collect_flat(
    payload: Mapping[str, Any], kind: PayloadKind, field_map: Mapping[str, str],
    resolve: Callable[[str], str | None] | None = None,
) -> dict[str, Any]:
    """The flat CRM pairs of a payload, keyed by docs/FEATURES.md flat names (or by what
    ``resolve`` names a key: a custom schema's columns).

    Sources, later ones only filling what earlier ones left absent:
    marketplace: ``customFields`` (by id) then root keys; workflow: ``customData`` then root
    keys. An empty string is absent.
    """
    sources: list[list[tuple[str, Any]]] = []
    if kind is PayloadKind.MARKETPLACE:
        fields = payload.get("customFields")
        pairs: list[tuple[str, Any]] = []
        if isinstance(fields, list):
            for item in fields:
                if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                    value = item.get("value", item.get("field_value"))
                    pairs.append((item["id"], value))
                    key = item.get("key")
                    if isinstance(key, str):
                        pairs.append((key, value))
        sources.append(pairs)
    else:
        custom = payload.get("customData")
        if isinstance(custom, Mapping):
            sources.append([(str(k), v) for k, v in custom.items()])
    nested = ("customData", "customFields")
    sources.append([(str(k), v) for k, v in payload.items() if k not in nested])

    flat: dict[str, Any] = {}
    for pairs in sources:
        for key, value in pairs:
            name = resolve(key) if resolve is not None else _flat_name(key, field_map)
            if name is None or name in flat or _is_absent(value):
                continue
            if resolve is not None and isinstance(value, list) and key == "tags":
                # a contact export holds the tags as one comma-separated cell
                value = ", ".join(str(t) for t in value if str(t).strip()) or None
                if value is None:
                    continue
            flat[name] = value
    return flat


def location_fields(payload: Mapping[str, Any], field_map: Mapping[str, str]) -> dict[str, Any]:
    """A contact's custom fields by the names the location's own field map gives them (no
    model's schema involved): what a location without a model yet keeps of a contact, so
    its first model can be trained on its own columns. Unmapped keys (names, e-mails, the
    contact's other attributes) are not read."""
    return collect_flat(payload, detect_kind(payload), field_map,
                        lambda key: field_map.get(key))


def parse_webhook(
    payload: Mapping[str, Any], field_map: Mapping[str, str] | None = None,
    schema: Schema | None = None,
) -> ParsedWebhook:
    """A verified payload -> identifiers + the scoring request (a ``fields`` request when
    ``schema``, the served bundle's custom schema, is given).

    Raises WebhookError for a payload that is no contact webhook, and
    ``InvalidInput`` (paths named by flat key) for values that are not numbers / lists.
    Range and category checks happen when the request is scored, as for ``POST /score``.
    """
    mapping = field_map or {}
    kind = detect_kind(payload)
    if kind is PayloadKind.MARKETPLACE:
        contact_id = _text(payload.get("id") or payload.get("contactId"))
        location_id = _text(payload.get("locationId"))
        webhook_id = _text(payload.get("webhookId"))
        event_type = _text(payload.get("type"))
    else:
        contact_id = _text(payload.get("contact_id"))
        location = payload.get("location")
        location_id = _text(location.get("id")) if isinstance(location, Mapping) else ""
        location_id = location_id or _text(payload.get("location_id"))
        webhook_id = ""
        event_type = "WorkflowWebhook"
    parsed = ParsedWebhook(
        kind=kind,
        contact_id=contact_id,
        location_id=location_id,
        webhook_id=webhook_id,
        event_type=event_type,
    )
    if not is_scorable(payload, kind):
        return parsed
    if not contact_id:
        raise WebhookError("webhook carries no contact id")
    request: dict[str, Any]
    if schema is not None:
        fields = collect_flat(payload, kind, mapping, _column_names(schema, mapping))
        request = {"contact_id": contact_id, "fields": fields}
    else:
        flat = collect_flat(payload, kind, mapping)
        nested, errors = flat_to_nested(flat)
        if errors:
            raise InvalidInput(errors)
        request = {"contact_id": contact_id, "features": nested}
    return ParsedWebhook(
        kind=kind,
        contact_id=contact_id,
        location_id=location_id,
        webhook_id=webhook_id,
        event_type=event_type,
        request=request,
    )


def replay_key(webhook_id: str) -> str:
    """The DynamoDB partition key of the replay guard (ARCHITECTURE.md)."""
    return f"webhook#{webhook_id}"


def utc_now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
