"""Installations table + OAuth tokens: encryption, refresh ahead of expiry and on a 401, and
the refresh race between containers (moto DynamoDB + KMS, the fake HighLevel)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from leadscore.adapters.ghl_api import GhlOAuthClient, InvalidGrantError
from leadscore.adapters.installations import (
    DynamoInstallations,
    KmsCipher,
    company_key,
    location_key,
)
from leadscore.ghl.installations import (
    Installation,
    InvalidGrant,
    OAuthTokens,
    TokenUnavailable,
)

from tests.fixtures import aws as template_aws
from tests.fixtures.fake_highlevel import CLIENT_ID, CLIENT_SECRET, FakeHighLevel

REGION = "us-east-1"


@dataclass
class World:
    fake: FakeHighLevel
    table: str
    key_id: str
    ddb: Any

    def installs(self, **kw: Any) -> DynamoInstallations:
        """One container's view (its own caches), like a second Lambda container."""
        oauth = GhlOAuthClient(self.fake.base_url, lambda: (CLIENT_ID, CLIENT_SECRET))

        def refresh(old: OAuthTokens) -> dict[str, Any]:
            try:
                return dict(oauth.refresh(old.refresh_token, user_type=old.user_type))
            except InvalidGrantError as exc:
                raise InvalidGrant(str(exc)) from exc

        return DynamoInstallations(
            self.table, KmsCipher(self.key_id),
            refresh_call=refresh,
            location_token_call=lambda tok, company, loc: dict(
                oauth.location_token(tok, company, loc)),
            clock=self.fake.now, **kw)


@pytest.fixture
def world(aws_env: None, fake_highlevel: FakeHighLevel) -> Iterator[World]:
    ddb = boto3.client("dynamodb", region_name=REGION)
    table = template_aws.installations_table(ddb)
    key_id = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["KeyId"]
    template_aws.declare("TokenKey", key_id)  # this key IS the stack's TokenKey (IAM check)
    yield World(fake_highlevel, table, key_id, ddb)


def oauth_location(world: World) -> tuple[str, DynamoInstallations, dict[str, Any]]:
    loc = world.fake.add_location()
    installs = world.installs()
    installs.save(Installation(location_id=loc.id, company_id=loc.company_id))
    granted = world.fake.issue_tokens(user_type="Location", location_id=loc.id,
                                      company_id=loc.company_id)
    installs.install_tokens(location_key(loc.id), OAuthTokens.from_grant(granted, world.fake.now()))
    return loc.id, installs, granted


def test_tokens_are_stored_encrypted(world: World) -> None:
    loc, _, granted = oauth_location(world)
    item = world.ddb.get_item(TableName=world.table, Key={"pk": {"S": location_key(loc)}})["Item"]
    raw = bytes(item["tokens"]["B"])
    assert granted["access_token"].encode() not in raw
    assert granted["refresh_token"].encode() not in raw
    assert "access_token" not in item and "refresh_token" not in item


def test_fresh_token_is_used_without_refresh(world: World) -> None:
    loc, installs, granted = oauth_location(world)
    assert installs.access_token(loc) == granted["access_token"]
    assert world.fake.refresh_grants == 0


def test_expired_token_is_refreshed_and_the_rotated_one_stored(world: World) -> None:
    loc, installs, granted = oauth_location(world)
    world.fake.advance(86400)
    token = installs.access_token(loc)
    assert token != granted["access_token"] and world.fake.refresh_grants == 1
    # stored: another container reads the rotated pair, and it works at HighLevel
    other = world.installs()
    assert other.access_token(loc) == token
    stored = other.read_tokens(location_key(loc)).tokens
    assert stored is not None and stored.refresh_token != granted["refresh_token"]
    world.fake.advance(86400)
    assert other.access_token(loc) not in (token, granted["access_token"])


def test_refresh_ahead_of_expiry(world: World) -> None:
    loc, installs, granted = oauth_location(world)
    world.fake.advance(86399 - 120)  # two minutes left: refreshed ahead, not at the 401
    assert installs.access_token(loc) != granted["access_token"]


def test_401_forces_a_refresh(world: World) -> None:
    loc, installs, granted = oauth_location(world)
    assert installs.access_token(loc) == granted["access_token"]
    assert installs.access_token(loc, refresh=True) != granted["access_token"]
    assert world.fake.refresh_grants == 1


@pytest.mark.parametrize("containers", [2, 4])
def test_refresh_race_never_loses_the_rotated_token(world: World, containers: int) -> None:
    """Several containers find the token expired at the same moment: exactly one refresh
    grant reaches HighLevel, all get a working token, and the stored refresh token is the one
    HighLevel currently accepts."""
    loc, _, _ = oauth_location(world)
    world.fake.advance(86400)
    views = [world.installs() for _ in range(containers)]
    barrier = threading.Barrier(containers)
    results: list[str] = []
    errors: list[BaseException] = []

    def run(view: DynamoInstallations) -> None:
        barrier.wait()
        try:
            results.append(view.access_token(loc))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(v,)) for v in views]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(set(results)) == 1 and world.fake.refresh_grants == 1
    # the stored refresh token still works (it was not rotated away by a lost write)
    world.fake.advance(86400)
    assert world.installs().access_token(loc) != results[0]
    assert world.fake.refresh_grants == 2


def test_race_loser_with_a_dead_refresh_token_rereads(world: World) -> None:
    """A container that refreshed with a refresh token another container had already rotated
    gets invalid_grant from HighLevel: it re-reads the record and uses the new token."""
    loc, first, granted = oauth_location(world)
    world.fake.advance(86400)
    stale = OAuthTokens.from_grant(granted, 0)  # what the slow container read before
    winner = first.access_token(loc)  # rotates R1 -> R2
    slow = world.installs()
    # the slow container's grant call uses R1 (dead now); the store's version moved on
    record = slow.read_tokens(location_key(loc))
    with pytest.raises(InvalidGrant):
        slow._grant(stale)
    assert record.tokens is not None and record.tokens.access_token == winner
    assert slow.access_token(loc) == winner


def test_uninstalled_location_has_no_token(world: World) -> None:
    loc, installs, _ = oauth_location(world)
    installs.disable(loc, "uninstalled")
    with pytest.raises(TokenUnavailable):
        installs.access_token(loc)
    item = world.ddb.get_item(TableName=world.table, Key={"pk": {"S": location_key(loc)}})["Item"]
    assert "tokens" not in item and item["enabled"]["BOOL"] is False


def test_agency_location_token_is_renewed_from_the_company_token(world: World) -> None:
    company, locs = world.fake.add_agency(2)
    installs = world.installs()
    agency = world.fake.issue_tokens(user_type="Company", company_id=company)
    installs.install_tokens(company_key(company), OAuthTokens.from_grant(agency, world.fake.now()))
    loc = locs[0].id
    installs.save(Installation(location_id=loc, company_id=company))
    # a location token without a refresh token (what /oauth/locationToken documents)
    installs.install_tokens(location_key(loc), OAuthTokens("old", "", world.fake.now() - 1,
                                                           "Location"))
    token = installs.access_token(loc)
    assert token != "old"
    assert world.fake.calls("POST", "/oauth/locationToken")


def test_pit_location_reads_its_secret(world: World) -> None:
    loc = world.fake.add_location()
    pit = world.fake.add_pit(loc.id)
    reads: list[tuple[str, bool]] = []

    def reader(arn: str, force: bool) -> str:
        reads.append((arn, force))
        return pit

    installs = world.installs(secret_reader=reader)
    installs.save(Installation(location_id=loc.id, token_source="pit", pit_secret_arn="arn:x"))
    assert installs.access_token(loc.id) == pit
    installs.access_token(loc.id, refresh=True)
    assert reads == [("arn:x", False), ("arn:x", True)]


def test_a_container_keeps_a_record_for_its_own_elapsed_time_not_the_business_clock(
    world: World,
) -> None:
    """The record cache ages by the container's elapsed time: a jump of the injected clock
    (a simulation's weeks, a test's token expiry) neither keeps a record forever nor makes
    every call read the table; 30 s of the container's own time does expire it."""
    loc = world.fake.add_location()
    elapsed = [0.0]
    reader = world.installs(cache_clock=lambda: elapsed[0])
    world.installs().save(Installation(location_id=loc.id, score_field_id="before"))
    assert reader.installation(loc.id).score_field_id == "before"  # type: ignore[union-attr]
    world.installs().save(Installation(location_id=loc.id, score_field_id="after"))
    world.fake.advance(7 * 24 * 3600)
    assert reader.installation(loc.id).score_field_id == "before"  # type: ignore[union-attr]
    elapsed[0] += 31.0
    assert reader.installation(loc.id).score_field_id == "after"  # type: ignore[union-attr]
