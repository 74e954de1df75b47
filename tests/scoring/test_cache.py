"""The score cache: LRU, TTL, the DynamoDB adapter (moto), and a failing DynamoDB."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.stub import Stubber
from leadscore.adapters.dynamodb import DynamoScoreCache
from leadscore.scoring.cache import CachedScore, MemoryLRU, TieredCache, cache_key

from tests.fixtures.fakes import FakeClock
from tests.fixtures.scoring import load_event


def entry(n: int, explained: bool = True) -> CachedScore:
    return CachedScore(score={"n": n}, explained=explained)


def test_cache_key_format() -> None:
    x = np.linspace(0, 1, 20).astype(np.float32)
    key = cache_key("c#1", x, "lsm-abc")
    prefix, digest, version = key.rsplit("#", 2)
    assert prefix == "score#c#1" and version == "lsm-abc" and len(digest) == 64
    assert cache_key("c#1", x.astype(np.float64), "lsm-abc") == key  # hashed as float32
    y = x.copy()
    y[3] = np.nextafter(y[3], np.float32(2))
    assert cache_key("c#1", y, "lsm-abc") != key
    assert cache_key("c#2", x, "lsm-abc") != key
    assert cache_key("c#1", x, "lsm-abd") != key


def test_memory_lru_is_bounded_and_keeps_recent_entries() -> None:
    lru = MemoryLRU(max_size=3, ttl_seconds=100)
    for i in range(3):
        lru.put(f"k{i}", entry(i))
    assert lru.get("k0") is not None  # k0 becomes most recent
    lru.put("k3", entry(3))
    assert len(lru) == 3
    assert lru.get("k1") is None  # the least recently used went
    assert [lru.get(k) is not None for k in ("k0", "k2", "k3")] == [True, True, True]


def test_memory_lru_expires_entries() -> None:
    clock = FakeClock()
    lru = MemoryLRU(max_size=10, ttl_seconds=60, clock=clock)
    lru.put("k", entry(1))
    clock.advance(59)
    assert lru.get("k") is not None
    clock.advance(2)
    assert lru.get("k") is None and len(lru) == 0


class FlakyRemote:
    def __init__(self) -> None:
        self.items: dict[str, tuple[CachedScore, float]] = {}
        self.fail = False

    def get(self, key: str) -> tuple[CachedScore, float] | None:
        if self.fail:
            raise TimeoutError("remote down")
        return self.items.get(key)

    def put(self, key: str, value: CachedScore, expires_at: float) -> None:
        if self.fail:
            raise TimeoutError("remote down")
        self.items[key] = (value, expires_at)


def test_tiered_cache_reads_through_and_bypasses_failures() -> None:
    clock = FakeClock()
    remote = FlakyRemote()
    cache = TieredCache(MemoryLRU(10, 60, clock=clock), remote, clock=clock)
    cache.put("a", entry(1))
    assert remote.items["a"][1] == clock.now + 60
    cache.memory.clear()
    assert cache.get("a") == entry(1)  # from the remote, then kept in memory
    remote.fail = True
    assert cache.get("a") == entry(1)
    assert cache.get("b") is None
    cache.put("c", entry(3))  # no exception
    # The failed read opened the circuit: the next calls skip the remote tier (no waiting).
    assert cache.remote_errors == 1 and cache.breaker.skipped == 1
    assert cache.get("c") == entry(3)  # memory still works


def test_tiered_cache_ignores_expired_remote_items() -> None:
    clock = FakeClock()
    remote = FlakyRemote()
    remote.items["a"] = (entry(1), clock.now - 1)
    cache = TieredCache(MemoryLRU(10, 60, clock=clock), remote, clock=clock)
    assert cache.get("a") is None


def test_dynamodb_cache_round_trip(cache_table: tuple[Any, str]) -> None:
    ddb, table = cache_table
    clock = FakeClock(start=time.time())
    remote = DynamoScoreCache(table, ddb_client=ddb, clock=clock)
    value = CachedScore(score={"predicted_score": 0.5, "contact_id": "c"}, explained=False)
    remote.put("score#c#abc#v1", value, clock.now + 3600)
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "score#c#abc#v1"}})["Item"]
    assert int(item["expires_at"]["N"]) == int(clock.now + 3600)
    got = remote.get("score#c#abc#v1")
    assert got is not None and got[0] == value
    assert remote.get("score#other") is None
    clock.advance(3601)
    assert remote.get("score#c#abc#v1") is None  # DynamoDB TTL deletion is lazy


def test_handler_uses_dynamodb_across_containers(
    install: Any, invoke: Any, trained_bundle: Path, cache_table: tuple[Any, str]
) -> None:
    ddb, table = cache_table
    install(f"file://{trained_bundle}", remote_cache=DynamoScoreCache(table, ddb_client=ddb))
    first = invoke(load_event("score_request")).body
    assert first["cached"] is False
    # a new container (empty memory) finds the answer in DynamoDB
    install(f"file://{trained_bundle}", remote_cache=DynamoScoreCache(table, ddb_client=ddb))
    second = invoke(load_event("score_request")).body
    assert second["cached"] is True
    assert second["feature_contributions"] == first["feature_contributions"]


def test_throttled_dynamodb_still_answers_correctly(
    install: Any, invoke: Any, trained_bundle: Path, cache_table: tuple[Any, str]
) -> None:
    ddb, table = cache_table
    install(f"file://{trained_bundle}")
    reference = invoke(load_event("score_request")).body

    stubber = Stubber(ddb)
    for _ in range(4):
        stubber.add_client_error("get_item", "ProvisionedThroughputExceededException",
                                 http_status_code=400)
        stubber.add_client_error("put_item", "ProvisionedThroughputExceededException",
                                 http_status_code=400)
    with stubber:
        container = install(
            f"file://{trained_bundle}", remote_cache=DynamoScoreCache(table, ddb_client=ddb)
        )
        answer = invoke(load_event("score_request"))
    assert answer.status == 200
    assert answer.body["cached"] is False
    assert answer.body["predicted_score"] == reference["predicted_score"]
    assert answer.body["feature_contributions"] == reference["feature_contributions"]
    # The read failed and was bypassed; the breaker then skipped the write.
    assert container.cache.remote_errors == 1 and container.cache.breaker.skipped == 1


@pytest.mark.parametrize("explained", [True, False])
def test_cached_score_json_round_trip(explained: bool) -> None:
    value = CachedScore(score={"a": [1.0, 2.0]}, explained=explained)
    assert CachedScore.from_json_obj(value.to_json_obj()) == value
    assert CachedScore.from_json_obj({"score": 1, "explained": True}) is None
    assert CachedScore.from_json_obj([]) is None


class _Recorded:
    """The checked-in real-estate bundle as a model provider (no training)."""

    def __init__(self) -> None:
        from leadscore.bundle import load_model

        self.model = load_model(Path(__file__).resolve().parent / "default_contract" / "bundle")

    def current(self) -> Any:
        return self.model


def test_an_unexplained_answer_is_keyed_by_its_numbers_not_the_raw_lead(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from leadscore.scoring import cache as cache_module
    from leadscore.scoring.service import ScoringService

    service = ScoringService(_Recorded(), TieredCache(MemoryLRU()))  # type: ignore[arg-type]
    request = json.loads(load_event("score_request")["body"])
    # the same lead written differently: the same numbers, other JSON text
    respelled = json.loads(json.dumps(request))
    respelled["features"]["property_data"]["list_price"] = 800000.0
    respelled["features"]["property_data"]["unknown_note"] = "ignored by the contract"

    def no_serialising(value: Any) -> bytes | None:
        raise AssertionError("an unexplained answer serialised the raw lead for its key")

    with monkeypatch.context() as patched:
        patched.setattr(cache_module, "canonical_json", no_serialising)
        first = service.score(request, explain=False)
        again = service.score(respelled, explain=False)
    assert first["cached"] is False and again["cached"] is True
    assert {**again, "cached": False} == first  # the very answer, timestamp included
    # an explained answer quotes the raw lead in its reasons: each spelling has its own entry
    assert service.score(request, explain=True)["cached"] is False
    assert service.score(respelled, explain=True)["cached"] is False
    assert service.score(request, explain=True)["cached"] is True
