"""Per-location credentials, identifiers and parked-body redaction (pure logic)."""

from __future__ import annotations

import json

import pytest
from leadscore.ghl import credentials
from leadscore.ghl.auth import AuthConfig, authenticate
from leadscore.ghl.parking import without_secrets
from leadscore.identifiers import has_lone_surrogate, is_safe_id
from leadscore.throttle import LocationBuckets


def test_a_credential_names_its_location_and_only_its_digest_is_kept() -> None:
    text, stored = credentials.new_credential(credentials.WORKFLOW, "loc-1")
    parsed = credentials.parse(text)
    assert parsed is not None and parsed.location_id == "loc-1"
    assert text not in stored and len(stored) == 64
    assert credentials.matches(parsed, stored)
    # the same random part under another location's name is another credential
    forged = credentials.parse(text.replace("loc-1", "loc-2"))
    assert forged is not None and not credentials.matches(forged, stored)
    # a workflow secret never passes as an API key (the digest is keyed by the kind)
    as_key = credentials.Credential(credentials.API_KEY, "loc-1", text)
    assert not credentials.matches(as_key, stored)
    assert credentials.parse("the-old-shared-secret") is None
    assert credentials.parse("lsw1.loc#1." + "a" * 43) is None
    with pytest.raises(ValueError):
        credentials.new_credential(credentials.WORKFLOW, "loc/../x")


def test_authenticate_binds_a_secret_to_its_location() -> None:
    text, stored = credentials.new_credential(credentials.WORKFLOW, "loc-1")
    reads: list[tuple[str, bool]] = []

    def lookup(location_id: str, fresh: bool) -> str:
        reads.append((location_id, fresh))
        return stored if location_id == "loc-1" else ""

    config = AuthConfig(webhook_secret="shared", location_secret=lookup,
                        shared_secret_location="loc-9")
    verdict = authenticate({"x-leadscore-secret": text}, b"{}", config)
    assert verdict.ok and verdict.location_id == "loc-1" and reads == [("loc-1", False)]
    wrong = text[:-1] + ("A" if text[-1] != "A" else "B")
    verdict = authenticate({"x-leadscore-secret": wrong}, b"{}", config)
    assert not verdict.ok and reads[-1] == ("loc-1", True)  # re-read once: a rotation
    shared = authenticate({"x-leadscore-secret": "shared"}, b"{}", config)
    assert shared.ok and shared.location_id == "loc-9"
    retired = authenticate({"x-leadscore-secret": "shared"}, b"{}",
                           AuthConfig(webhook_secret="shared", location_secret=lookup,
                                      shared_secret_location=""))
    assert not retired.ok
    unbound = authenticate({"x-leadscore-secret": "shared"}, b"{}",
                           AuthConfig(webhook_secret="shared"))
    assert unbound.ok and unbound.location_id == ""  # local runs: nothing installed


@pytest.mark.parametrize(("value", "safe"), [
    ("ve9EPM428h8vShlRW1KT", True), ("loc-1", True), ("a_b", True), ("x" * 128, True),
    ("", False), ("x" * 129, False), ("c#1", False), ("a/b", False), ("a.b", False),
    ("\ud800", False), ("é", False), (12, False), (None, False),
])
def test_ids_are_what_highlevel_makes(value: object, safe: bool) -> None:
    assert is_safe_id(value) is safe


def test_lone_surrogates_are_found() -> None:
    assert has_lone_surrogate("c-\ud800") and not has_lone_surrogate("Zoë 😀")


def test_parked_bodies_lose_every_copy_of_the_secret() -> None:
    secret = "lsw1.loc-1." + "s" * 43
    body = json.dumps({"customData": {"leadscore_secret": secret, "list_price": "x"},
                       "note": f"pasted {secret}"}).encode()
    kept = without_secrets(body, secret)
    assert secret.encode() not in kept
    assert json.loads(kept)["customData"] == {"leadscore_secret": "[redacted]",
                                              "list_price": "x"}
    assert without_secrets(b"not json " + secret.encode(), secret) == b"not json [redacted]"


def test_each_location_has_its_own_bucket() -> None:
    now = [0.0]
    buckets = LocationBuckets(rate_per_second=1.0, burst=2, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 1.0]
    assert buckets.take("b") == 0.0  # a's burst is a's alone
    now[0] = 1.0
    assert buckets.take("a") == 0.0
