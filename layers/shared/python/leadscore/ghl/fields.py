"""Custom fields by name: which HighLevel field ids this service reads and writes, per location.

HighLevel's contact payloads carry custom fields by **id** only (``{"id", "value"}``), and the
ids differ in every location. `GET /locations/{id}/customFields` lists each field's ``id``,
``name`` and ``fieldKey`` (``contact.list_price``). This module turns that list plus the
operator's configuration into ids (pure; the HTTP calls live in ``adapters/ghl_api.py``):

* the score and class fields: found by ``fieldKey`` (``contact.lead_score``,
  ``contact.lead_class``) or by name (``Lead Score`` / ``Lead Class``, compared normalised);
  when missing they are created (score NUMERICAL, class TEXT);
* the inbound field map ``{<field id | fieldKey | name>: <flat feature name>}``: each key is
  resolved to the field's id; a key that names no field is reported, never guessed;
* the default map: every field whose fieldKey or name normalises to a FEATURES.md flat name
  (``List Price`` / ``contact.list_price`` -> ``list_price``) is read without configuration;
  with a team's schema (`leadscore.columns`), a field whose fieldKey or name normalises to a
  column's name or to the column's own ``field_key`` maps to that column; every other field
  maps to its normalised fieldKey (else name), so a model promoted later with new columns
  finds its fields without another discovery (the webhook matches mapped names to the served
  schema's columns the same way, ``leadscore.ghl.payloads``).

HighLevel's standard contact attributes and the message counters are columns too, under the
names a contact export gives them (``STANDARD_COLUMNS``, ``ENGAGEMENT_COLUMNS``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leadscore.columns.keys import normalise_key
from leadscore.columns.schema import Schema
from leadscore.ghl.payloads import ENGAGEMENT_COLUMNS, FLAT_NAMES, STANDARD_COLUMNS

SCORE_FIELD_NAME = "Lead Score"
CLASS_FIELD_NAME = "Lead Class"
SCORE_FIELD_KEY = "contact.lead_score"
CLASS_FIELD_KEY = "contact.lead_class"
#: HighLevel dataTypes whose values are numbers (write numbers, not text, into them).
NUMERIC_DATA_TYPES = frozenset({"NUMERICAL", "MONETORY", "MONETARY", "FLOAT", "NUMBER"})

@dataclass(frozen=True)
class CustomField:
    id: str
    name: str
    field_key: str
    data_type: str

    @property
    def numeric(self) -> bool:
        return self.data_type.upper() in NUMERIC_DATA_TYPES

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> CustomField | None:
        """One entry of ``customFields``; None for entries without an id."""
        fid = item.get("id")
        if not isinstance(fid, str) or not fid:
            return None
        return cls(id=fid, name=str(item.get("name") or ""),
                   field_key=str(item.get("fieldKey") or ""),
                   data_type=str(item.get("dataType") or ""))


def parse_field_list(answer: Any) -> list[CustomField]:
    """The answer of ``GET /locations/{id}/customFields`` -> fields (malformed entries skipped)."""
    items = answer.get("customFields") if isinstance(answer, Mapping) else None
    if not isinstance(items, list):
        return []
    out = [CustomField.from_api(i) for i in items if isinstance(i, Mapping)]
    return [f for f in out if f is not None]


def find_field(fields: Iterable[CustomField], ref: str) -> CustomField | None:
    """The field ``ref`` names: its id, its fieldKey (with or without ``contact.``), or its name
    (compared normalised). Ids win over keys, keys over names."""
    listed = list(fields)
    for f in listed:
        if f.id == ref:
            return f
    wanted_key = ref if ref.startswith("contact.") else f"contact.{ref}"
    for f in listed:
        if f.field_key and f.field_key == wanted_key:
            return f
    norm = normalise_key(ref)
    for f in listed:
        if normalise_key(f.name) == norm:
            return f
    return None


@dataclass(frozen=True)
class FieldPlan:
    """What discovery decided for one location."""

    score_field: CustomField | None
    class_field: CustomField | None
    #: HighLevel field id -> flat feature name (configured keys resolved, defaults added)
    field_map: dict[str, str] = field(default_factory=dict)
    #: configured keys that name no field of the location (reported to the operator)
    unresolved: list[str] = field(default_factory=list)
    #: the fields to create: (name, fieldKey, dataType)
    to_create: list[tuple[str, str, str]] = field(default_factory=list)
    #: the schema's columns and where each is read from: a field id, ``standard:<payload
    #: key>``, ``engagement``, or "" (no source in this location: scored as missing)
    columns: dict[str, str] = field(default_factory=dict)


def column_lookup(schema: Schema) -> dict[str, str]:
    """normalised name -> column: each column's name and its own HighLevel field_key."""
    out = {normalise_key(c): c for c in schema.column_names}
    for key, column in schema.field_map().items():
        out.setdefault(normalise_key(key), column)
    return out


def _own_name(f: CustomField) -> str:
    return normalise_key(f.field_key) if f.field_key else normalise_key(f.name)


def plan_fields(
    fields: Iterable[CustomField],
    configured_map: Mapping[str, str] | None = None,
    *,
    score_ref: str = SCORE_FIELD_KEY,
    class_ref: str = CLASS_FIELD_KEY,
    schema: Schema | None = None,
) -> FieldPlan:
    """Resolve the score/class fields and the inbound map against a location's fields
    (and the served schema's columns, when it is a team's own)."""
    listed = list(fields)
    score = find_field(listed, score_ref) or find_field(listed, SCORE_FIELD_NAME)
    klass = find_field(listed, class_ref) or find_field(listed, CLASS_FIELD_NAME)
    to_create: list[tuple[str, str, str]] = []
    if score is None:
        to_create.append((SCORE_FIELD_NAME, SCORE_FIELD_KEY, "NUMERICAL"))
    if klass is None:
        to_create.append((CLASS_FIELD_NAME, CLASS_FIELD_KEY, "TEXT"))

    lookup = column_lookup(schema) if schema is not None else {}
    mapping: dict[str, str] = {}
    for f in listed:  # defaults first: a FEATURES.md flat name, a column, else its own name
        names = [normalise_key(c) for c in (f.field_key, f.name) if c]
        flat = next((n for n in names if n in FLAT_NAMES), None)
        column = next((lookup[n] for n in names if n in lookup), None)
        own = column or flat or _own_name(f)
        if own:
            mapping[f.id] = own
    unresolved: list[str] = []
    for ref, flat_name in (configured_map or {}).items():  # configuration wins
        found = find_field(listed, ref)
        if found is None:
            unresolved.append(ref)
        else:
            mapping[found.id] = flat_name
    for mine in (score, klass):  # our own outputs are never inputs
        if mine is not None:
            mapping.pop(mine.id, None)
    return FieldPlan(score_field=score, class_field=klass, field_map=mapping,
                     unresolved=unresolved, to_create=to_create,
                     columns=column_sources(schema, mapping) if schema is not None else {})


def column_sources(schema: Schema, field_map: Mapping[str, str]) -> dict[str, str]:
    """Where each of the schema's columns is read from in a location (see FieldPlan)."""
    lookup = column_lookup(schema)
    by_column: dict[str, str] = {}
    for fid, mapped in field_map.items():
        column = mapped if mapped in schema.column_names else lookup.get(normalise_key(mapped))
        if column is not None:
            by_column.setdefault(column, fid)
    standard = {lookup[normalise_key(col)]: f"standard:{key}"
                for key, col in STANDARD_COLUMNS.items() if normalise_key(col) in lookup}
    engagement = {lookup[c]: "engagement" for c in ENGAGEMENT_COLUMNS if c in lookup}
    return {c: by_column.get(c) or standard.get(c) or engagement.get(c) or ""
            for c in schema.column_names}


def create_body(name: str, data_type: str) -> dict[str, Any]:
    """The ``POST /locations/{id}/customFields`` body for a field this service owns: only
    properties of HighLevel's ``CreateCustomFieldsDTO`` (it refuses others; the fieldKey is
    derived from the name: ``Lead Score`` -> ``contact.lead_score``)."""
    return {"name": name, "dataType": data_type, "model": "contact", "placeholder": name}
