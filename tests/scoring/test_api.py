"""The score Lambda driven by API Gateway events from events/ (code tests)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leadscore.features import FEATURE_NAMES, extract_features
from leadscore.scoring.cache import answer_key

from tests.fixtures.scoring import Answer, bundle_version, load_event, with_body, with_query

FIELD_TYPES: dict[str, Any] = {
    "contact_id": str,
    "predicted_score": float,
    "confidence_interval": list,
    "predicted_class": str,
    "model_agreement": float,
    "feature_contributions": dict,
    "prediction_timestamp": str,
    "model_version": str,
    "cached": bool,
    "base_scores": dict,
    "baseline_score": float,
    "top_positive_factors": list,
    "top_negative_factors": list,
    "missing_fields": list,
    "composite_score": float,
    "ml_score": float,
    "should_prioritize": bool,
    "feature_values": dict,
    "source": str,
    "explained": bool,
}


def seed_request() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load_event("score_request")["body"])
    return body


@pytest.fixture
def served(install: Any, trained_bundle: Path) -> Any:
    return install(f"file://{trained_bundle}")


def test_score_answers_every_field_typed(served: Any, invoke: Any, trained_bundle: Path) -> None:
    answer = invoke(load_event("score_request"))
    assert answer.status == 200
    body = answer.body
    for name, kind in FIELD_TYPES.items():
        assert name in body, name
        assert isinstance(body[name], kind), (name, body[name])
    assert body["contact_id"] == "lead_12345"
    assert body["source"] == "ensemble" and body["cached"] is False and body["explained"] is True
    assert body["model_version"] == bundle_version(trained_bundle)
    assert 0.0 <= body["predicted_score"] <= 1.0
    lo, hi = body["confidence_interval"]
    assert 0.0 <= lo <= hi <= 1.0
    assert body["predicted_class"] in ("hot", "warm", "lukewarm", "cold")
    assert body["should_prioritize"] == (body["predicted_class"] in ("hot", "warm"))
    assert body["ml_score"] == round(100 * body["predicted_score"], 1)
    assert 0.0 <= body["model_agreement"] <= 1.0
    base = body["base_scores"]
    assert set(base) == {"xgboost", "lightgbm", "neural_network"}
    expected_agreement = min(1.0, max(0.0, 1 - float(np.std(list(base.values()))) / 0.5))
    assert body["model_agreement"] == pytest.approx(expected_agreement, abs=1e-5)
    assert 0.0 <= body["composite_score"] <= 100.0
    assert list(body["feature_values"]) == list(FEATURE_NAMES)
    assert list(body["feature_contributions"]) == list(FEATURE_NAMES)
    raw = json.loads(load_event("score_request")["body"])["features"]
    expected = extract_features(raw)
    assert np.allclose(list(body["feature_values"].values()), expected.values, atol=1e-6)
    assert body["missing_fields"] == expected.missing_fields
    assert body["prediction_timestamp"].endswith("Z")


def test_contributions_add_up_to_score_minus_baseline(served: Any, invoke: Any) -> None:
    body = invoke(load_event("score_request")).body
    total = sum(body["feature_contributions"].values())
    assert total == pytest.approx(body["predicted_score"] - body["baseline_score"], abs=1e-4)


def test_top_factors_are_the_largest_signed_contributions(served: Any, invoke: Any) -> None:
    body = invoke(load_event("score_request")).body
    contrib = body["feature_contributions"]
    positives = sorted((v for v in contrib.values() if v > 0), reverse=True)[:5]
    negatives = sorted(v for v in contrib.values() if v < 0)[:5]
    assert [f["contribution"] for f in body["top_positive_factors"]] == positives
    assert [f["contribution"] for f in body["top_negative_factors"]] == negatives
    for factor in body["top_positive_factors"] + body["top_negative_factors"]:
        assert factor["feature"] in FEATURE_NAMES
        assert isinstance(factor["reason"], str) and factor["reason"]
        assert factor["value"] == body["feature_values"][factor["feature"]]


def test_second_call_is_cached_under_a_key_with_the_model_version(
    served: Any, invoke: Any, trained_bundle: Path
) -> None:
    first = invoke(load_event("score_request")).body
    second = invoke(load_event("score_request")).body
    assert first["cached"] is False and second["cached"] is True
    assert second["predicted_score"] == first["predicted_score"]
    assert second["feature_contributions"] == first["feature_contributions"]
    raw = seed_request()["features"]
    extracted = extract_features(raw)
    x32 = extracted.values.astype(np.float32)
    version = bundle_version(trained_bundle)

    def key(model_version: str) -> str | None:
        return answer_key("lead_12345", x32, model_version, form="features", raw=raw,
                          missing=extracted.missing_fields, explain=True,
                          values=extracted.values)

    found = key(version)
    assert found is not None
    assert found.endswith("#" + version) and found.startswith("score#lead_12345#")
    assert served.cache.get(found) is not None
    assert served.cache.get(str(key("lsm-0000000000000000"))) is None
    # a feature_vector request with the same values is another answer (no raw fields for the
    # reasons, no missing fields): it has its own entry
    vector = {"contact_id": "lead_12345", "feature_vector": x32.astype(float).tolist()}
    assert invoke(with_body(load_event("score_request_vector"), vector)).body["cached"] is False


def test_explain_false_skips_contributions_but_not_the_score(served: Any, invoke: Any) -> None:
    full = invoke(load_event("score_request")).body
    served.cache.memory.clear()
    quick = invoke(load_event("score_request_noexplain")).body
    assert quick["explained"] is False and quick["cached"] is False
    assert quick["feature_contributions"] == {}
    assert quick["top_positive_factors"] == [] and quick["top_negative_factors"] == []
    assert quick["predicted_score"] == full["predicted_score"]
    # an unexplained entry does not serve an explained request...
    again = invoke(load_event("score_request")).body
    assert again["cached"] is False and again["explained"] is True
    # ...but an explained entry serves an unexplained request
    assert invoke(load_event("score_request_noexplain")).body["cached"] is True


def test_bad_explain_flag_is_a_400(served: Any, invoke: Any) -> None:
    answer = invoke(with_query(load_event("score_request"), explain="maybe"))
    assert answer.status == 400
    assert [e["path"] for e in answer.body["errors"]] == ["explain"]


def test_feature_vector_request(served: Any, invoke: Any) -> None:
    answer = invoke(load_event("score_request_vector"))
    assert answer.status == 200
    assert answer.body["missing_fields"] == []
    named = dict(zip(FEATURE_NAMES, json.loads(load_event("score_request_vector")["body"])
                     ["feature_vector"], strict=True))
    by_name = invoke(with_body(load_event("score_request_vector"),
                               {"contact_id": "x", "feature_vector": named}))
    assert by_name.status == 200
    assert by_name.body["predicted_score"] == answer.body["predicted_score"]


def paths(answer: Answer) -> list[str]:
    assert answer.status == 400, answer.body
    assert answer.body["error"]
    return [e["path"] for e in answer.body["errors"]]


def test_nineteen_number_vector_is_a_400(served: Any, invoke: Any) -> None:
    body = {"contact_id": "c1", "feature_vector": [0.5] * 19}
    assert paths(invoke(with_body(load_event("score_request_vector"), body))) == [
        "feature_vector"
    ]


@pytest.mark.parametrize(
    ("section", "field", "value", "path"),
    [
        ("property_data", "list_price", "800000", "property_data.list_price"),  # text
        ("property_data", "list_price", -5, "property_data.list_price"),  # negative price
        ("property_data", "sqft", float("nan"), "property_data.sqft"),  # NaN
        ("market_data", "inventory_level", float("inf"), "market_data.inventory_level"),
        ("property_data", "beds", True, "property_data.beds"),  # a boolean is not a number
    ],
)
def test_malformed_values_name_their_path(
    served: Any, invoke: Any, section: str, field: str, value: Any, path: str
) -> None:
    body = seed_request()
    body["features"][section][field] = value
    # json.dumps writes NaN / Infinity literals, which Python's parser accepts: the extractor
    # must still refuse them
    assert path in paths(invoke(with_body(load_event("score_request"), body)))


def test_section_that_is_not_an_object_is_a_400(served: Any, invoke: Any) -> None:
    body = seed_request()
    body["features"]["market_data"] = [1, 2]
    assert "market_data" in paths(invoke(with_body(load_event("score_request"), body)))


def test_every_offending_path_is_listed(served: Any, invoke: Any) -> None:
    found = paths(invoke(load_event("score_invalid")))
    for expected in ("property_data.list_price", "property_data.days_on_market",
                     "property_data.location.school_rating",
                     "market_data.comparables[1].sale_price"):
        assert expected in found


@pytest.mark.parametrize(
    ("contact_id", "message_part"),
    [(None, "required"), ("", "empty"), ("   ", "empty"), (42, "string"), ("x" * 129, "128")],
)
def test_contact_id_rules(served: Any, invoke: Any, contact_id: Any, message_part: str) -> None:
    body = seed_request()
    if contact_id is None:
        del body["contact_id"]
    else:
        body["contact_id"] = contact_id
    answer = invoke(with_body(load_event("score_request"), body))
    assert paths(answer) == ["contact_id"]
    assert message_part in answer.body["errors"][0]["message"]


def test_contact_id_and_feature_errors_are_reported_together(served: Any, invoke: Any) -> None:
    body = seed_request()
    body["contact_id"] = ""
    body["features"]["property_data"]["list_price"] = "a lot"
    assert set(paths(invoke(with_body(load_event("score_request"), body)))) == {
        "contact_id", "property_data.list_price"}


def test_request_shape_errors(served: Any, invoke: Any) -> None:
    event = load_event("score_request")
    assert paths(invoke(with_body(event, {"contact_id": "c"}))) == ["features"]
    both = {"contact_id": "c", "features": {}, "feature_vector": [0.5] * 20}
    assert paths(invoke(with_body(event, both))) == ["feature_vector"]
    assert paths(invoke(with_body(event, {"contact_id": "c", "features": "x"}))) == ["features"]
    assert paths(invoke(with_body(event, [1, 2, 3]))) == [""]
    # unknown top-level keys are ignored (documented in leadscore.scoring)
    extra = {**seed_request(), "location_id": "loc-1"}
    assert invoke(with_body(event, extra)).status == 200


@pytest.mark.parametrize("raw", ["{not json", "", "null", "[1,"])
def test_non_json_body_is_a_400(served: Any, invoke: Any, raw: str) -> None:
    answer = invoke(with_body(load_event("score_request"), raw, raw=True))
    assert answer.status == 400
    assert answer.body["errors"]


def test_base64_body_is_decoded(served: Any, invoke: Any) -> None:
    import base64

    event = load_event("score_request")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    assert invoke(event).status == 200


def test_body_over_the_limit_is_a_413(install: Any, trained_bundle: Path, invoke: Any) -> None:
    install(f"file://{trained_bundle}", max_body_bytes=200)
    answer = invoke(load_event("score_request"))
    assert answer.status == 413


def test_batch_scores_good_leads_and_reports_bad_ones(
    served: Any, invoke: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    model = served.store.current()
    real_predict = model.predict

    def counting_predict(x: np.ndarray) -> Any:
        calls.append(len(x))
        return real_predict(x)

    monkeypatch.setattr(model, "predict", counting_predict)
    leads: list[Any] = [dict(seed_request(), contact_id=f"lead-{i}") for i in range(6)]
    leads[3]["features"]["property_data"]["list_price"] = "n/a"
    leads.insert(5, "not an object")
    answer = invoke(with_body(load_event("score_batch"), {"leads": leads}))
    assert answer.status == 200
    assert [r["contact_id"] for r in answer.body["results"]] == [
        "lead-0", "lead-1", "lead-2", "lead-4", "lead-5"]
    errors = answer.body["errors"]
    assert [e["index"] for e in errors] == [3, 5]
    assert errors[0]["errors"][0]["path"] == "property_data.list_price"
    assert calls == [5]  # one model call for every valid lead
    single = invoke(with_body(load_event("score_request"), leads[0])).body
    assert single["cached"] is True
    assert single["predicted_score"] == answer.body["results"][0]["predicted_score"]


def test_batch_event_from_events_dir(served: Any, invoke: Any) -> None:
    answer = invoke(load_event("score_batch"))
    assert answer.status == 200
    assert answer.body["results"] and answer.body["errors"] == []


def test_batch_of_1001_is_a_413(served: Any, invoke: Any) -> None:
    lead = {"contact_id": "c", "feature_vector": [0.5] * 20}
    answer = invoke(with_body(load_event("score_batch"), {"leads": [lead] * 1001}))
    assert answer.status == 413


def test_batch_needs_a_list_of_leads(served: Any, invoke: Any) -> None:
    assert paths(invoke(with_body(load_event("score_batch"), {"lead": []}))) == ["leads"]


def test_health_and_model(served: Any, invoke: Any, trained_bundle: Path) -> None:
    health = invoke(load_event("health_get"))
    assert health.status == 200
    assert health.body == {"loaded": True, "model_version": bundle_version(trained_bundle)}
    model = invoke(load_event("model_get"))
    assert model.status == 200
    assert model.body["manifest"]["model_version"] == bundle_version(trained_bundle)
    assert "ensemble_auc_roc" in model.body["ensemble_metrics"]
    assert model.body["feature_importance"]


def test_unknown_route_is_a_json_404(served: Any, invoke: Any) -> None:
    event = load_event("health_get")
    event["path"] = event["resource"] = "/nope"
    answer = invoke(event)
    assert answer.status == 404
    assert answer.body == {"error": "not found"}


def test_unexpected_error_is_a_500_without_details(
    served: Any, invoke: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("/var/task/secret/path.py exploded")

    monkeypatch.setattr(served.service, "score", boom)
    answer = invoke(load_event("score_request"))
    assert answer.status == 500
    event = load_event("score_request")
    assert answer.body == {"error": "internal error",
                           "request_id": event["requestContext"]["requestId"]}


def test_class_thresholds_from_settings_override_the_bundle(
    install: Any, trained_bundle: Path, invoke: Any
) -> None:
    install(f"file://{trained_bundle}",
            class_thresholds={"hot": 1.0, "warm": 1.0, "lukewarm": 0.0})
    body = invoke(load_event("score_request")).body
    assert body["predicted_class"] == "lukewarm" and body["should_prioritize"] is False


def test_outputs_are_plain_finite_floats(served: Any, invoke: Any) -> None:
    body = invoke(load_event("score_request")).body

    def walk(value: Any) -> None:
        if isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(body)


def test_a_model_answering_nan_is_never_served(
    install: Any, invoke: Any, tmp_path: Path
) -> None:
    """A NaN-output graph (that somehow got installed) answers from the rules, as valid JSON."""
    from tests.fixtures.bad_models import constant_bundle

    install(f"file://{constant_bundle(tmp_path / 'nan-bundle', math.nan)}")

    def strict(text: str) -> Any:
        def refuse(name: str) -> Any:
            raise AssertionError(f"{name} in a response body")

        return json.loads(text, parse_constant=refuse)

    one = invoke(load_event("score_request"))
    assert one.status == 200
    body = strict(one.raw["body"])
    assert body["source"] == "rules" and body["model_version"] == "rules"
    assert 0.0 <= body["predicted_score"] <= 1.0 and body["confidence_interval"] is None
    batch = invoke(load_event("score_batch"))
    assert batch.status == 200
    results = strict(batch.raw["body"])["results"]
    assert results and all(r["source"] == "rules" for r in results)
