"""DynamoDB items of the GoHighLevel integration, in the cache table (ARCHITECTURE.md).

* ``webhook#<webhookId or sha256:digest>``: the replay guard, a conditional put with a TTL
  (``expires_at``) longer than the freshness window (leadscore.ghl.delivery).
* ``writeback#<location>#<contact>``: the last write to HighLevel, its order key and the lease
  of a write in flight (``DynamoWritebackState``).
* ``inputs#<location>#<contact>``: the digest of the scoring inputs last scored
  (``DynamoInputDigests``).
* ``ratelimit#<location>``: the location's request budget (``adapters.ghl_budget``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from leadscore.adapters import client, error_code
from leadscore.ghl.delivery import dedupe_ttl_seconds
from leadscore.ghl.digest import DIGEST_TTL_SECONDS, digest_key
from leadscore.ghl.payloads import replay_key
from leadscore.ghl.write_plan import STATE_TTL_SECONDS, ContactState, LastWrite, state_key
from leadscore.settings import DEFAULT_MAX_DELIVERY_AGE_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class _TtlTable:
    """Items of the cache table that expire after `ttl_seconds` (client made on first use)."""

    default_ttl_seconds: int
    fast_client: bool  # ~1 s timeouts: for calls on a request path

    def __init__(
        self,
        table_name: str,
        ddb_client: DynamoDBClient | None = None,
        clock: Callable[[], float] = time.time,
        ttl_seconds: int | None = None,
    ) -> None:
        self.table_name = table_name
        self._client = ddb_client
        self._clock = clock
        self._ttl = self.default_ttl_seconds if ttl_seconds is None else ttl_seconds

    @property
    def ddb(self) -> DynamoDBClient:
        if self._client is None:
            self._client = client("dynamodb", fast=self.fast_client)
        return self._client


class DynamoReplayGuard(_TtlTable):
    """Remembers webhook ids. Errors other than "already seen" propagate to the caller."""

    default_ttl_seconds = dedupe_ttl_seconds(DEFAULT_MAX_DELIVERY_AGE_SECONDS)
    fast_client = True

    def claim(self, webhook_id: str) -> bool:
        """True the first time ``webhook_id`` is seen (within the TTL), False for a replay."""
        now = self._clock()
        try:
            self.ddb.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": replay_key(webhook_id)},
                    "expires_at": {"N": str(int(now + self._ttl))},
                },
                # An expired record that DynamoDB has not yet deleted does not count.
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, webhook_id: str) -> None:
        """Forget a claim (the webhook was answered 429 and HighLevel will send it again)."""
        self.ddb.delete_item(TableName=self.table_name, Key={"pk": {"S": replay_key(webhook_id)}})


class DynamoWritebackState(_TtlTable):
    """The ``writeback#<location>#<contact>`` item: the last write, the order key of the score
    it came from, and a writer's lease. Every change is a conditional write, so an older score
    can never replace a newer one and two writers never write one contact at the same time.

    Attributes: ``predicted_class`` S, ``score`` N, ``model_version`` S, ``received_at`` S,
    ``scored_at`` S, ``write_order`` S (``WritebackMessage.order``), ``written_at`` N,
    ``expires_at`` N, and while a write is in flight ``lease_owner`` S + ``lease_until_ms`` N.
    ``unfinished`` BOOL is set with every lease and removed only by a commit (or a release
    after which nothing was sent): while it is there, the contact may carry part of a write
    the item does not record (``ContactState.unfinished``).
    An expired item (TTL not yet applied by DynamoDB) counts as absent.
    """

    default_ttl_seconds = STATE_TTL_SECONDS
    fast_client = True  # ~1 s timeouts: the write-back runs against its deadline

    _NEWER = "(attribute_not_exists(write_order) OR write_order < :order OR expires_at < :now)"
    _FREE = "(attribute_not_exists(lease_until_ms) OR lease_until_ms < :now_ms)"
    _FINISHED = "attribute_not_exists(unfinished)"

    def _key(self, location_id: str, contact_id: str) -> dict[str, Any]:
        return {"pk": {"S": state_key(location_id, contact_id)}}

    def read(self, location_id: str, contact_id: str) -> ContactState | None:
        answer = self.ddb.get_item(
            TableName=self.table_name, Key=self._key(location_id, contact_id), ConsistentRead=True
        )
        item = answer.get("Item")
        if not item:
            return None
        return self._state(item)

    def _state(self, item: Mapping[str, Any], *, owner_lease: bool = False) -> ContactState:
        """An item as a ContactState (``owner_lease``: the lease is ours, report none)."""
        now = self._clock()
        lease = int(item.get("lease_until_ms", {}).get("N", "0"))
        lease = lease if lease > now * 1000 and not owner_lease else 0
        unfinished = bool(item.get("unfinished", {}).get("BOOL", False))
        if float(item.get("expires_at", {}).get("N", "0")) <= now:
            return ContactState(last=None, order="", lease_until_ms=lease, unfinished=unfinished)
        last: LastWrite | None
        try:
            last = LastWrite(
                predicted_class=item["predicted_class"]["S"], score=int(item["score"]["N"])
            )
        except (KeyError, ValueError):
            last = None
        order = item.get("write_order", {}).get("S", "")
        return ContactState(last=last, order=order, lease_until_ms=lease, unfinished=unfinished)

    def _conditional(self, **kwargs: Any) -> bool:
        try:
            self.ddb.update_item(TableName=self.table_name, **kwargs)
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _refused(self, location_id: str, contact_id: str) -> ContactState:
        """Why a conditional write was refused (what the item holds now)."""
        state = self.read(location_id, contact_id)
        return state if state is not None else ContactState(last=None)

    def claim(
        self, location_id: str, contact_id: str, order: str, owner: str, lease_until_ms: int
    ) -> tuple[bool, ContactState]:
        """Take the contact's lease for a score with key ``order``. ``(True, state under the
        lease)`` when taken (plan against THAT state: the item as it was before this claim, so
        that it says whether an earlier writer left a write unfinished); ``(False, state that
        refused it)`` when a score at least as new was written or another writer's lease is
        live. The claim marks the item ``unfinished`` until the commit."""
        now = self._clock()
        try:
            answer = self.ddb.update_item(
                TableName=self.table_name,
                Key=self._key(location_id, contact_id),
                UpdateExpression="SET lease_owner = :owner, lease_until_ms = :until, "
                "unfinished = :true, expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression=f"{self._NEWER} AND {self._FREE}",
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": {"N": str(lease_until_ms)},
                    ":order": {"S": order},
                    ":now": {"N": str(int(now))},
                    ":now_ms": {"N": str(int(now * 1000))},
                    ":expires": {"N": str(int(now + self._ttl))},
                    ":true": {"BOOL": True},
                },
                ReturnValues="ALL_OLD",
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False, self._refused(location_id, contact_id)
            raise
        return True, self._state(answer.get("Attributes") or {}, owner_lease=True)

    def advance(
        self, location_id: str, contact_id: str, order: str, predicted_class: str, score: int
    ) -> ContactState | None:
        """Move the order key forward without writing (the score rounds to what is written):
        None when done, else the state that refused it (a newer key, another writer's live
        lease, an unfinished write, or a different last write than the one planned against)."""
        now = self._clock()
        ok = self._conditional(
            Key=self._key(location_id, contact_id),
            UpdateExpression="SET write_order = :order",
            ConditionExpression=f"attribute_exists(pk) AND {self._NEWER} AND {self._FREE} "
            f"AND {self._FINISHED} AND predicted_class = :cls AND score = :score",
            ExpressionAttributeValues={
                ":order": {"S": order},
                ":now": {"N": str(int(now))},
                ":now_ms": {"N": str(int(now * 1000))},
                ":cls": {"S": predicted_class},
                ":score": {"N": str(score)},
            },
        )
        return None if ok else self._refused(location_id, contact_id)

    def commit(
        self,
        location_id: str,
        contact_id: str,
        owner: str,
        order: str,
        predicted_class: str,
        score: int,
        model_version: str,
        received_at: str,
        scored_at: str,
    ) -> bool:
        """Record a finished write and release the lease; False when the lease was lost."""
        now = self._clock()
        return self._conditional(
            Key=self._key(location_id, contact_id),
            UpdateExpression="SET predicted_class = :cls, score = :score, model_version = :mv, "
            "received_at = :received, scored_at = :scored, write_order = :order, "
            "written_at = :now, expires_at = :expires "
            "REMOVE lease_owner, lease_until_ms, unfinished",
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues={
                ":cls": {"S": predicted_class},
                ":score": {"N": str(score)},
                ":mv": {"S": model_version},
                ":received": {"S": received_at},
                ":scored": {"S": scored_at},
                ":order": {"S": order},
                ":now": {"N": str(int(now))},
                ":expires": {"N": str(int(now + self._ttl))},
                ":owner": {"S": owner},
            },
        )

    def hold(self, location_id: str, contact_id: str, owner: str, until_ms: int) -> None:
        """Keep the lease until ``until_ms`` after a call whose fate is unknown (no answer, a
        5xx): a request still in flight must land before another writer's newer one."""
        self._conditional(
            Key=self._key(location_id, contact_id),
            UpdateExpression="SET lease_until_ms = :until",
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues={":owner": {"S": owner}, ":until": {"N": str(until_ms)}},
        )

    def release(self, location_id: str, contact_id: str, owner: str, *,
                untouched: bool = False) -> None:
        """Give the lease back after a failed write (no-op when it is not ours any more).
        ``untouched``: nothing was sent under this lease and no earlier write was left
        unfinished, so the item records what the contact carries again."""
        finished = ", unfinished" if untouched else ""
        self._conditional(
            Key=self._key(location_id, contact_id),
            UpdateExpression=f"REMOVE lease_owner, lease_until_ms{finished}",
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues={":owner": {"S": owner}},
        )


class DynamoInputDigests(_TtlTable):
    """``inputs#<location>#<contact>``: the digest of the scoring inputs last scored for a
    contact (``leadscore.ghl.digest``) and ``as_of_ms``, the time those inputs were current.
    The time only moves forward (a conditional put), so a late retry of an older delivery
    cannot make older inputs look current. Errors propagate: the caller scores anyway."""

    default_ttl_seconds = DIGEST_TTL_SECONDS
    fast_client = True

    def seen(self, location_id: str, contact_id: str) -> tuple[str, int] | None:
        """(digest, as_of_ms) remembered for the contact, or None."""
        answer = self.ddb.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": digest_key(location_id, contact_id)}},
            ProjectionExpression="digest, expires_at, as_of_ms",
            ConsistentRead=True,
        )
        item = answer.get("Item")
        if not item or float(item.get("expires_at", {}).get("N", "0")) <= self._clock():
            return None
        return item.get("digest", {}).get("S", ""), int(item.get("as_of_ms", {}).get("N", "0"))

    def unchanged(self, location_id: str, contact_id: str, digest: str) -> bool:
        seen = self.seen(location_id, contact_id)
        return seen is not None and seen[0] == digest

    def remember(self, location_id: str, contact_id: str, digest: str,
                 as_of_ms: int = 0) -> None:
        now = self._clock()
        try:
            self.ddb.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": digest_key(location_id, contact_id)},
                    "digest": {"S": digest},
                    "as_of_ms": {"N": str(int(as_of_ms))},
                    "expires_at": {"N": str(int(now + self._ttl))},
                },
                ConditionExpression="attribute_not_exists(pk) OR attribute_not_exists(as_of_ms)"
                " OR as_of_ms <= :at OR expires_at < :now",
                ExpressionAttributeValues={":at": {"N": str(int(as_of_ms))},
                                           ":now": {"N": str(int(now))}},
            )
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            # newer inputs were remembered meanwhile: they stay
