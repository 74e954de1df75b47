"""A team's columns outside the model: which are personal, which the loop reads and keeps,
what a retraining starts from, and the digest that decides whether a contact is re-scored."""

from __future__ import annotations

import hashlib

import pytest
from leadscore.columns.personal import derived_values, is_personal_column, is_personal_value
from leadscore.columns.schema import Schema, reading_schema
from leadscore.ghl.digest import inputs_digest

SCHEMA = Schema.from_dict({
    "target": "status", "positive": ["won"],
    "exclude": {"email": "identifier (by its name)", "notes": "free text (90 distinct)",
                "duration": "leak: alone reaches AUC 0.95", "tenant": "constant",
                "Phone Number": "excluded by the schema", "contact_id": "identifier"},
    "columns": [
        {"name": "source", "kind": "categorical", "categories": ["Referral"],
         "field_key": "contact.lead_source", "missing_indicator": True},
        {"name": "days", "kind": "numeric", "direction": -1, "fill": 3.0},
        {"name": "created", "kind": "date", "as_of": "2026-06-01"}]})


@pytest.mark.parametrize(("name", "personal"), [
    ("name", True), ("First Name", True), ("last_name", True), ("contact.email", True),
    ("E-mail", True), ("Phone", True), ("mobile_number", True), ("address1", True),
    ("Street Address", True), ("contact_name", True),
    ("email_domain", False), ("stage_name", False), ("campaign_name", False),
    ("source", False), ("hotel", False), ("budget", False),
])
def test_personal_columns_by_name(name: str, personal: bool) -> None:
    assert is_personal_column(name) is personal


@pytest.mark.parametrize(("value", "personal"), [
    ("jordan@example.com", True), ("+15555550123", True), ("555-555-0123", True),
    ("(555) 555 0123", True), ("1 Main St", True), ("12 Oak Avenue", True),
    ("2026-05-20", False), ("425000", False), ("1770285600000", False), ("1,250,000", False),
    ("Referral", False), ("3.5", False), (5555550123, False), (None, False),
])
def test_personal_values_by_shape(value: object, personal: bool) -> None:
    assert is_personal_value(value) is personal


def test_an_email_is_kept_as_its_domain_only() -> None:
    assert derived_values("Email", "Jo@Gmail.com") == {"email_domain": "gmail.com"}
    assert derived_values("owner", "jo@example.com") == {"owner_domain": "example.com"}
    assert derived_values("phone", "800") == {}
    assert derived_values("budget", "555-555-0123") == {}
    assert derived_values("budget", 425000) == {"budget": 425000}


def test_the_loop_reads_the_export_columns_never_identifiers_or_notes() -> None:
    assert SCHEMA.export_columns() == ["source", "days", "created", "duration", "tenant"]
    reading = reading_schema(SCHEMA)
    assert reading.column_names == ["source", "days", "created", "duration", "tenant"]
    assert reading.field_map() == {"contact.lead_source": "source"}
    # a running experiment's candidate brings its new columns (and their field keys)
    other = Schema.from_dict({"columns": [
        {"name": "days", "kind": "numeric"},
        {"name": "zip_prefix", "kind": "categorical", "field_key": "contact.zip3"}]})
    merged = reading_schema(SCHEMA, [other])
    assert merged.column_names[-1] == "zip_prefix"
    assert merged.field_map()["contact.zip3"] == "zip_prefix"
    assert reading_schema(Schema.from_dict({"columns": [{"name": "a", "kind": "numeric"}]})) \
        .column_names == ["a"]


def test_a_retraining_starts_from_the_schema_as_written() -> None:
    written = SCHEMA.unfitted()
    assert written.target == "status" and written.positive == ("won",)
    assert written.exclude == SCHEMA.exclude
    assert [c.direction for c in written.columns] == [0, -1, 0]
    assert [c.field_key for c in written.columns] == ["contact.lead_source", "", ""]
    assert all(not c.categories and c.fill is None and not c.missing_indicator and not c.as_of
               for c in written.columns)
    assert Schema.from_dict(written.to_dict()) == written


@pytest.mark.parametrize(("positive", "negative"), [
    (["won"], []), (["won"], ["lost"]), ([], []), (["0"], []), (["yes", "no"], ["maybe"])])
def test_the_target_is_spelled_so_the_label_rule_reads_it_back(
    positive: list[str], negative: list[str]
) -> None:
    schema = Schema.from_dict({"target": "y", "positive": positive, "negative": negative,
                               "columns": [{"name": "a", "kind": "numeric"}]})
    rule = schema.label_rule()
    assert rule.label(schema.target_text(True)) == 1
    assert rule.label(schema.target_text(False)) == 0


def test_the_digest_differs_by_team_fields_and_by_form() -> None:
    one = inputs_digest({"contact_id": "c", "fields": {"budget": "1"}})
    assert one != inputs_digest({"contact_id": "c", "fields": {"budget": "2"}})
    assert one != inputs_digest({"contact_id": "c", "fields": {"budget": "1", "stage": "New"}})
    assert one != inputs_digest({"contact_id": "c", "features": {"budget": "1"}})
    # the real-estate form's digest is what it always was (stored digests stay valid)
    assert inputs_digest({"features": {"a": 1}}, "v1") == \
        hashlib.sha256(b'v1\n{"a":1}').hexdigest()
