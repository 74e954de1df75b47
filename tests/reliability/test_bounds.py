"""Hostile input stays bounded — no answer, error list or cache entry grows with it.

Each test names the amplification it closes. The bodies are the attacks of the issue (an API
key holder's), sent through `lambda_handler` with API Gateway events; the limits they hit are
settings (`leadscore.settings.ScoreSettings`) and every refusal names its limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leadscore.features import extract_features

from tests.fixtures.scoring import load_event, with_body, with_query

MIB = 1024 * 1024


def seed_request(contact_id: str = "lead_12345") -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load_event("score_request")["body"])
    body["contact_id"] = contact_id
    return body


@pytest.fixture
def served(install: Any, trained_bundle: Path) -> Any:
    return install(f"file://{trained_bundle}")


def post(invoke: Any, path: str, body: Any, **query: str) -> Any:
    event = load_event("score_request")
    event["path"] = event["resource"] = path
    event["requestContext"] = {**event["requestContext"], "resourcePath": path,
                               "path": f"/Prod{path}"}
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    event = with_body(event, text, raw=True)
    if query:
        event = with_query(event, **query)
    return invoke(event)


def answer_bytes(answer: Any) -> int:
    return len((answer.raw.get("body") or "").encode())


# -- lists in a request have documented maxima -----------------------------------------------


def test_300k_empty_comparables_are_one_400_naming_the_limit(served: Any, invoke: Any) -> None:
    # Was: 200 with 27,979,101 bytes (two missing_fields paths per empty comparable).
    request = seed_request()
    request["features"]["market_data"]["comparables"] = [{}] * 300_000
    answer = post(invoke, "/score", request)
    assert answer.status == 400, answer.body
    assert answer_bytes(answer) < 4096
    (error,) = answer.body["errors"]
    assert error["path"] == "market_data.comparables"
    assert "MAX_LIST_ITEMS" in error["message"] and "50" in error["message"]


def test_price_drops_have_the_same_maximum(served: Any, invoke: Any) -> None:
    request = seed_request()
    request["features"]["property_data"]["price_drops"] = [{"percentage": 1}] * 51
    answer = post(invoke, "/score", request)
    assert answer.status == 400
    assert [e["path"] for e in answer.body["errors"]] == ["property_data.price_drops"]


def test_fifty_comparables_are_still_scored(served: Any, invoke: Any) -> None:
    request = seed_request()
    request["features"]["market_data"]["comparables"] = [
        {"sale_price": 790_000 + i * 1000, "days_on_market": 20 + i} for i in range(50)
    ]
    answer = post(invoke, "/score", request)
    assert answer.status == 200, answer.body


def test_the_list_limit_is_a_setting(install: Any, trained_bundle: Path, invoke: Any) -> None:
    install(f"file://{trained_bundle}", max_list_items=3)
    request = seed_request()
    request["features"]["market_data"]["comparables"] *= 2  # 6 > 3
    answer = post(invoke, "/score", request)
    assert answer.status == 400
    assert "at most 3" in answer.body["errors"][0]["message"]


# -- error lists are capped ------------------------------------------------------------------


def test_450k_junk_items_give_a_capped_error_list(served: Any, invoke: Any) -> None:
    # Was: a 400 of 34.5 MB (one error per non-object comparable).
    request = seed_request()
    request["features"]["market_data"]["comparables"] = [0] * 450_000
    answer = post(invoke, "/score", request)
    assert answer.status == 400
    assert answer_bytes(answer) < 64 * 1024


def test_error_list_is_the_first_50_paths_plus_the_total(served: Any, invoke: Any) -> None:
    names = {f"not_a_feature_{i}": 0.5 for i in range(5000)}
    answer = post(invoke, "/score", {"contact_id": "c", "feature_vector": names})
    assert answer.status == 400
    body = answer.body
    assert len(body["errors"]) == 50
    assert body["error_count"] == 5000 + 20  # 5,000 unknown names + 20 required ones missing
    assert body["errors_truncated"] is True
    assert "50" in body["error"]


def test_an_echoed_key_is_shortened(served: Any, invoke: Any) -> None:
    long_name = "k" * 500_000
    answer = post(invoke, "/score", {"contact_id": "c", "feature_vector": {long_name: 0.5}})
    assert answer.status == 400
    assert answer_bytes(answer) < 16 * 1024
    assert all(len(e["path"]) <= 200 for e in answer.body["errors"])


def test_a_batch_error_list_is_capped_per_lead_and_in_total(served: Any, invoke: Any) -> None:
    bad = {"contact_id": 5, "feature_vector": [True] * 20}  # 21 errors per lead
    answer = post(invoke, "/score/batch", {"leads": [bad] * 1000})
    assert answer.status == 200
    assert answer_bytes(answer) < 2 * MIB
    assert len(answer.body["errors"]) == 1000  # every lead accounted for
    assert sum(len(e["errors"]) for e in answer.body["errors"]) <= 5000
    assert all(e["error_count"] == 21 for e in answer.body["errors"])


# -- answers are bounded ---------------------------------------------------------------------


def test_a_batch_of_1000_leads_with_290_empty_comparables_stays_small(
    served: Any, invoke: Any
) -> None:
    # Was: 28 MB in ~1 s (a 502 on Lambda). Minimal leads: the body is under 1 MB.
    lead = {"contact_id": "c", "features": {"market_data": {"comparables": [{}] * 290}}}
    answer = post(invoke, "/score/batch", {"leads": [lead] * 1000})
    assert answer.status in (200, 413), answer.status
    assert answer_bytes(answer) <= 6_000_000


def test_a_full_batch_of_real_leads_fits_in_six_megabytes(served: Any, invoke: Any) -> None:
    leads = [seed_request(f"lead-{i:04d}-" + "x" * 100) for i in range(1000)]
    answer = post(invoke, "/score/batch", {"leads": leads})
    assert answer.status == 200, answer.body
    assert answer_bytes(answer) <= 6_000_000
    assert len(answer.body["results"]) == 1000
    assert all(len(json.dumps(r)) <= 1_000_000 for r in answer.body["results"])


def test_a_batch_whose_answer_would_be_too_large_is_a_413_not_a_502(
    served: Any, invoke: Any
) -> None:
    # 1000 leads within every input limit, each with 50 empty comparables: 100 missing paths
    # per lead make the answer ~7.5 MB, over Lambda's 6 MB: refused with the limit named.
    lead = seed_request("c")
    lead["features"]["market_data"]["comparables"] = [{}] * 50
    answer = post(invoke, "/score/batch", {"leads": [lead] * 1000})
    assert answer_bytes(answer) <= 6_000_000
    if answer.status != 200:
        assert answer.status == 413
        assert answer.body["limit"] == {"name": "MAX_ANSWER_BYTES", "value": 6_000_000}
        assert "fewer leads" in answer.body["error"]


def test_an_answer_over_the_call_limit_is_a_413_naming_it(
    install: Any, trained_bundle: Path, invoke: Any
) -> None:
    install(f"file://{trained_bundle}", max_answer_bytes=20_000)
    leads = [seed_request(f"lead-{i}") for i in range(30)]  # ~3 KB each, explained
    answer = post(invoke, "/score/batch", {"leads": leads})
    assert answer.status == 413
    assert answer.body["limit"] == {"name": "MAX_ANSWER_BYTES", "value": 20_000}
    assert answer_bytes(answer) < 1000


def test_413s_name_their_limit(install: Any, trained_bundle: Path, invoke: Any) -> None:
    install(f"file://{trained_bundle}", max_batch_size=2, max_body_bytes=5000)
    answer = post(invoke, "/score/batch", {"leads": [seed_request()] * 3})
    assert answer.status == 413
    assert answer.body["limit"] == {"name": "MAX_BATCH_SIZE", "value": 2}
    answer = post(invoke, "/score", {**seed_request(), "note": "x" * 6000})
    assert answer.status == 413
    assert answer.body["limit"] == {"name": "MAX_BODY_BYTES", "value": 5000}


# -- oversized numbers name their field ------------------------------------------------------


def test_a_4400_digit_integer_names_its_field(served: Any, invoke: Any) -> None:
    # Was: 400 "body is not valid JSON" at path "".
    text = json.dumps(seed_request()).replace("800000", "9" * 4400, 1)
    answer = post(invoke, "/score", text)
    assert answer.status == 400
    assert [e["path"] for e in answer.body["errors"]] == ["property_data.list_price"]


def test_a_huge_integer_in_a_batch_names_lead_and_field(served: Any, invoke: Any) -> None:
    text = json.dumps({"leads": [seed_request("a"), seed_request("b")]})
    text = text.replace('"message_count": 25', '"message_count": ' + "1" * 5000, 1)
    answer = post(invoke, "/score/batch", text)
    assert answer.status == 200
    (error,) = answer.body["errors"]
    assert error["index"] == 0
    assert [e["path"] for e in error["errors"]] == ["conversation_data.message_count"]


# -- the cache key covers everything that changes the answer --------------------------------


def test_features_after_the_same_vector_is_not_a_cached_vector_answer(
    served: Any, invoke: Any
) -> None:
    # Was: {"features": {}} came back cached: true with missing_fields: [].
    vector = extract_features({}).values.astype(np.float32).tolist()
    first = post(invoke, "/score", {"contact_id": "c-1", "feature_vector": vector})
    assert first.status == 200 and first.body["missing_fields"] == []
    second = post(invoke, "/score", {"contact_id": "c-1", "features": {}})
    assert second.status == 200
    assert second.body["cached"] is False
    assert second.body["missing_fields"] == [
        "property_data", "market_data", "psychology_profile", "conversation_data"]


def _comparable(answer: Any) -> dict[str, Any]:
    body = dict(answer.body)
    body.pop("cached")
    body.pop("prediction_timestamp")
    return body


@pytest.mark.parametrize("explain_first", ["true", "false"])
def test_a_cached_answer_is_byte_identical_to_a_fresh_one(
    install: Any, trained_bundle: Path, invoke: Any, explain_first: str
) -> None:
    explain_second = "false" if explain_first == "true" else "true"
    install(f"file://{trained_bundle}")
    post(invoke, "/score", seed_request(), explain=explain_first)
    cached = post(invoke, "/score", seed_request(), explain=explain_second)
    install(f"file://{trained_bundle}")  # a new container: an empty cache
    fresh = post(invoke, "/score", seed_request(), explain=explain_second)
    assert fresh.body["cached"] is False
    assert json.dumps(_comparable(cached)) == json.dumps(_comparable(fresh))


def test_same_vector_other_raw_values_is_not_served_from_cache(
    served: Any, invoke: Any
) -> None:
    # Every price halved: the same ratios (the same vector), other amounts in the reasons.
    request = seed_request()
    half = seed_request()
    half["features"]["property_data"]["list_price"] = 400_000
    half["features"]["market_data"]["estimated_value"] = 400_000
    for comp in half["features"]["market_data"]["comparables"]:
        comp["sale_price"] //= 2
    first = post(invoke, "/score", request)
    second = post(invoke, "/score", half)
    assert first.body["feature_values"] == second.body["feature_values"]
    assert second.body["cached"] is False
    reasons = json.dumps(second.body["top_positive_factors"] + second.body["top_negative_factors"])
    assert "800,000" not in reasons


# -- the in-memory cache is bounded by bytes -------------------------------------------------


def test_memory_cache_is_bounded_by_bytes_as_well_as_entries() -> None:
    from leadscore.scoring.cache import CachedScore, MemoryLRU

    lru = MemoryLRU(max_size=4096, ttl_seconds=100, max_bytes=1_000_000)
    for i in range(100):
        lru.put(f"k{i}", CachedScore(score={"i": i, "pad": "x" * 100_000}, explained=True))
    assert lru.size_bytes <= 1_000_000
    assert 5 <= len(lru) <= 10
    assert lru.get("k99") is not None and lru.get("k0") is None
    # one entry larger than the whole budget is not kept (and evicts nothing)
    lru.put("huge", CachedScore(score={"pad": "x" * 2_000_000}, explained=True))
    assert lru.get("huge") is None and lru.get("k99") is not None


def test_the_cache_budget_is_a_setting() -> None:
    from leadscore.settings import ScoreSettings

    settings = ScoreSettings.from_env({"MEMORY_CACHE_BYTES": "1234567", "MAX_LIST_ITEMS": "40",
                                       "MAX_ERROR_PATHS": "20", "MAX_ANSWER_BYTES": "5000000",
                                       "MAX_LEAD_ANSWER_BYTES": "500000"})
    assert settings.memory_cache_bytes == 1_234_567
    assert settings.max_list_items == 40
    assert settings.max_error_paths == 20
    assert settings.max_answer_bytes == 5_000_000
    assert settings.max_lead_answer_bytes == 500_000
    defaults = ScoreSettings()
    assert defaults.max_list_items == 50 and defaults.max_error_paths == 50
    assert defaults.max_answer_bytes <= 6_000_000 and defaults.max_lead_answer_bytes <= 1_000_000


# -- the limits are in the OpenAPI document --------------------------------------------------


def test_openapi_documents_every_list_maximum() -> None:
    doc = json.loads((Path(__file__).resolve().parents[2] / "openapi.json").read_text())
    schemas = doc["components"]["schemas"]

    def max_items(model: str, prop: str) -> int | None:
        node = schemas[model]["properties"][prop]
        for option in node.get("anyOf", [node]):
            if option.get("type") == "array":
                return option.get("maxItems")
        return None

    assert max_items("MarketData", "comparables") == 50
    assert max_items("PropertyData", "price_drops") == 50
    assert max_items("BatchRequest", "leads") == 1000
    limits = json.dumps(doc)
    for name in ("MAX_LIST_ITEMS", "MAX_BATCH_SIZE", "MAX_BODY_BYTES", "MAX_ERROR_PATHS",
                 "MAX_ANSWER_BYTES"):
        assert name in limits, name
    for path in ("/score", "/score/batch"):
        assert "413" in doc["paths"][path]["post"]["responses"], path


def test_a_long_feature_vector_is_one_length_error(served: Any, invoke: Any) -> None:
    # Every item of a 190,000-item vector (950 kB) used to be walked and reported.
    answer = post(invoke, "/score", {"contact_id": "c", "feature_vector": [True] * 190_000})
    assert answer.status == 400
    assert answer.body["error_count"] == 21  # the length + the 20 values it would use
    assert answer.body["errors"][0] == {
        "path": "feature_vector", "message": "must have exactly 20 values, got 190000"}
