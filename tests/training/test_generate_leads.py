"""The synthetic lead generator: schema, realism, rate and its documented latent model."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from generate_leads import (
    CSV_COLUMNS,
    generate_leads,
    latent_logit,
    main,
    request_part,
    true_probability,
)
from leadscore.features import FEATURE_NAMES, extract_features

SECTIONS = ("property_data", "market_data", "psychology_profile", "conversation_data")


def test_conversion_rate_between_10_and_30_percent() -> None:
    leads = generate_leads(4000, seed=123)
    rate = sum(lead["converted"] for lead in leads) / len(leads)
    assert 0.10 <= rate <= 0.30


def test_labels_follow_true_probability(generated_leads: list[dict[str, Any]]) -> None:
    p = np.array([lead["true_probability"] for lead in generated_leads])
    y = np.array([lead["converted"] for lead in generated_leads])
    assert set(np.unique(y)) == {0, 1}
    # Bernoulli(p): the observed count is within 4 standard deviations of its expectation
    sd = math.sqrt(float(np.sum(p * (1 - p))))
    assert abs(float(y.sum() - p.sum())) < 4 * sd
    # and converted leads have clearly higher true probabilities
    assert p[y == 1].mean() > p[y == 0].mean() + 0.15


def test_true_probability_is_the_documented_sigmoid_of_the_latent_logit(
    generated_leads: list[dict[str, Any]],
) -> None:
    for lead in generated_leads[:200]:
        z = latent_logit(lead)
        assert lead["true_probability"] == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-6)
        assert true_probability(lead) == pytest.approx(lead["true_probability"], abs=1e-6)


def test_latent_model_direction_commitment_raises_probability(
    generated_leads: list[dict[str, Any]],
) -> None:
    lead = json.loads(json.dumps(generated_leads[0]))
    lead["psychology_profile"] = {"psychological_commitment_score": 20.0,
                                  "urgency_level": "high", "negotiation_flexibility": 0.5}
    low = true_probability(lead)
    lead["psychology_profile"]["psychological_commitment_score"] = 90.0
    assert true_probability(lead) > low


def test_same_seed_same_leads_other_seed_other_leads() -> None:
    assert generate_leads(50, seed=5) == generate_leads(50, seed=5)
    assert generate_leads(50, seed=5) != generate_leads(50, seed=6)


def test_schema_and_realistic_ranges(generated_leads: list[dict[str, Any]]) -> None:
    ids = [lead["contact_id"] for lead in generated_leads]
    assert len(set(ids)) == len(ids)
    spreads = []
    for lead in generated_leads:
        assert set(lead) <= {*SECTIONS, "contact_id", "converted", "true_probability"}
        prop, market = lead["property_data"], lead["market_data"]
        assert 150_000 <= prop["list_price"] <= 2_000_000
        assert prop["days_on_market"] >= 0
        assert 0 <= market["current_month"] <= 11
        assert 0.0 < lead["true_probability"] < 1.0
        sales = [c["sale_price"] for c in market["comparables"]]
        if len(sales) >= 3:
            spreads.append(abs(statistics.median(sales) / prop["list_price"] - 1))
    # comparables sit around the list price, with a realistic spread
    assert 0.02 < statistics.median(spreads) < 0.20


def test_missing_sections_and_fields_at_a_realistic_rate(
    generated_leads: list[dict[str, Any]],
) -> None:
    n = len(generated_leads)
    no_psych = sum("psychology_profile" not in lead for lead in generated_leads) / n
    no_conv = sum("conversation_data" not in lead for lead in generated_leads) / n
    no_comps = sum(not lead["market_data"]["comparables"] for lead in generated_leads) / n
    assert 0.01 < no_psych < 0.10
    assert 0.02 < no_conv < 0.12
    assert 0.01 < no_comps < 0.10
    missing = [extract_features(request_part(lead)).missing_fields for lead in generated_leads]
    assert 0.1 < sum(bool(m) for m in missing) / n < 0.6


def test_every_lead_is_a_valid_scoring_request(generated_leads: list[dict[str, Any]]) -> None:
    for lead in generated_leads:
        values = extract_features(request_part(lead)).values
        assert values.shape == (20,)
        assert np.all((values >= 0) & (values <= 1))


def test_cli_csv(tmp_path: Path) -> None:
    out = tmp_path / "leads.csv"
    assert main(["--rows", "120", "--seed", "3", "--format", "csv", "--output", str(out)]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 120
    assert tuple(rows[0]) == CSV_COLUMNS
    assert list(CSV_COLUMNS[:20]) == list(FEATURE_NAMES)
    assert {r["converted"] for r in rows} <= {"0", "1"}
    leads = generate_leads(120, seed=3)
    first = extract_features(request_part(leads[0])).values
    assert [float(rows[0][f]) for f in FEATURE_NAMES] == pytest.approx(first.tolist(), abs=0)


def test_cli_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "leads.jsonl"
    assert main(["--rows", "30", "--seed", "3", "--format", "jsonl", "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == generate_leads(30, seed=3)
