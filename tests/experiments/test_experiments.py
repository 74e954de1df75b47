"""Experiments: the one record check, stable assignment, the store, and the results maths."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from leadscore.errors import InvalidInput
from leadscore.experiments import definition, results, store
from leadscore.registry import LocalObjectStore, RegistryError

VERSION = "lsm-0123456789abcdef"


def _experiment(**overrides: object) -> definition.Experiment:
    record = {"name": "rules-vs-model", "variants": ["rules", "champion"],
              "allocation": [50, 50], "status": "running", "created_at": "2026-11-30T00:00:00Z"}
    return definition.parse_experiment(record | overrides)


def test_every_problem_of_a_record_is_named_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        definition.parse_experiment({"name": "bad name!", "variants": ["rules", "gpt"],
                                     "allocation": [60, 60], "shadow": "champion",
                                     "created_at": "x"})
    paths = {e.path for e in caught.value.errors}
    assert paths == {"name", "variants[1]", "allocation", "shadow"}


@pytest.mark.parametrize("variants, allocation", [
    (["rules"], [100]), (["rules", "rules"], [50, 50]), (["rules", "champion"], [50]),
    (["rules", "champion"], [True, 99]), (["rules", "champion"], [50.0, 50.0]),
])
def test_invalid_splits_are_refused(variants: list[object], allocation: list[object]) -> None:
    with pytest.raises(InvalidInput):
        _experiment(variants=variants, allocation=allocation)


@given(st.text(min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_assignment_is_a_function_of_experiment_and_contact(contact_id: str) -> None:
    experiment = _experiment()
    first = definition.assign(experiment, contact_id)
    assert first in experiment.variants
    assert definition.assign(_experiment(), contact_id) == first


def test_allocation_is_respected_and_experiments_split_independently() -> None:
    contacts = [f"contact-{i}" for i in range(20_000)]
    skewed = _experiment(allocation=[20, 80])
    counts = Counter(definition.assign(skewed, c) for c in contacts)
    assert abs(counts["rules"] / len(contacts) - 0.20) < 0.015
    other = _experiment(name="another-test")
    same = sum(definition.assign(_experiment(), c) == definition.assign(other, c)
               for c in contacts)
    assert abs(same / len(contacts) - 0.5) < 0.02  # independent halves agree half the time


def test_a_zero_share_variant_gets_no_traffic() -> None:
    experiment = _experiment(allocation=[0, 100])
    assert {definition.assign(experiment, f"c{i}") for i in range(2000)} == {"champion"}


def test_store_create_run_stop_and_history(tmp_path: Path) -> None:
    local = LocalObjectStore(tmp_path)
    assert store.running(local) is None
    created = store.create(local, "exp-1", ["rules", "champion"], [50, 50])
    assert store.running(local) == created
    with pytest.raises(RegistryError, match="is running"):
        store.create(local, "exp-2", ["rules", "champion"], [50, 50])
    stopped = store.stop(local, "exp-1", winner="champion")
    assert stopped.status == "stopped" and stopped.winner == "champion"
    assert store.running(local) is None
    with pytest.raises(RegistryError, match="already exists"):
        store.create(local, "exp-1", ["rules", "champion"], [50, 50])
    store.create(local, "exp-2", ["rules", "champion"], [30, 70])
    assert [e.name for e in store.history(local)] == ["exp-1", "exp-2"]
    record = json.loads((tmp_path / "models" / "experiment.json").read_text())
    assert record["name"] == "exp-2" and record["allocation"] == [30, 70]


def test_a_variant_or_shadow_version_must_be_stored(tmp_path: Path) -> None:
    local = LocalObjectStore(tmp_path)
    with pytest.raises(RegistryError, match=VERSION):
        store.create(local, "exp", ["champion", VERSION], [50, 50])
    with pytest.raises(RegistryError, match=VERSION):
        store.create(local, "exp", ["rules", "champion"], [50, 50], shadow=VERSION)
    local.put_bytes(f"models/{VERSION}/manifest.json", b"{}")
    assert store.create(local, "exp", ["rules", "champion"], [50, 50],
                        shadow=VERSION).model_versions() == [VERSION]


def _arm(variant: str, n: int, strength: float, rng: np.random.Generator
         ) -> list[results.ResolvedLead]:
    p = rng.beta(2, 6, size=n)
    y = rng.random(n) < p
    score = 1 / (1 + np.exp(-(strength * (np.log(p / (1 - p))) + rng.normal(size=n))))
    return [results.ResolvedLead(variant, float(s), "hot" if s >= 0.8 else "cold", bool(c))
            for s, c in zip(score, y, strict=True)]


def test_a_better_ranker_wins_with_a_significant_p_value() -> None:
    rng = np.random.default_rng(1)
    rows = _arm("rules", 3000, 0.3, rng) + _arm("champion", 3000, 3.0, rng)
    summary = results.summarise("exp", ["rules", "champion"], rows, metric="auc")
    assert summary.winner == "champion" and summary.metric == "auc"
    assert summary.p_value is not None and summary.p_value < 1e-6
    by_name = {v.variant: v for v in summary.variants}
    assert by_name["champion"].auc > by_name["rules"].auc
    assert by_name["champion"].leads == 3000 and not by_name["champion"].warnings
    json.dumps(summary.to_record(), allow_nan=False)


def test_equal_rankers_have_no_winner_and_small_arms_are_warned() -> None:
    rng = np.random.default_rng(2)
    rows = _arm("rules", 3000, 1.0, rng) + _arm("champion", 3000, 1.0, rng)
    for metric in ("auc", "brier"):
        assert results.summarise("exp", ["rules", "champion"], rows, metric=metric).winner is None
    small = _arm("rules", 50, 1.0, rng) + _arm("champion", 50, 3.0, rng)
    summary = results.summarise("exp", ["rules", "champion"], small)
    assert all(v.warnings for v in summary.variants)
    assert "small" in summary.statement


def _calibrated_and_doubled(n: int, rng: np.random.Generator) -> list[results.ResolvedLead]:
    """Two arms that rank alike (the same noisy view of each lead's chance); the rules arm
    answers twice the probability, as a 0-100 points score read as a percentage does."""
    rows = []
    for variant, scale in (("rules", 2.0), ("champion", 1.0)):
        p = rng.beta(2, 6, size=n)
        y = rng.random(n) < p
        seen = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + rng.normal(scale=0.5, size=n))))
        score = np.clip(seen * scale, 0.0, 1.0)
        rows += [results.ResolvedLead(variant, float(s), "hot" if s >= 0.8 else "cold", bool(c))
                 for s, c in zip(score, y, strict=True)]
    return rows


def test_the_declared_metric_decides_and_the_other_is_reported() -> None:
    """Equal ranking, one arm's probabilities twice too high: on Brier (the default) the
    calibrated arm wins with a tiny p; on AUC there is no winner; both p-values are shown."""
    rows = _calibrated_and_doubled(2000, np.random.default_rng(5))
    on_brier = results.summarise("exp", ["rules", "champion"], rows)
    assert on_brier.metric == "brier" and on_brier.winner == "champion"
    assert on_brier.p_value is not None and on_brier.p_value < 1e-6
    champion = {v.variant: v for v in on_brier.variants}["champion"]
    assert champion.auc_vs_baseline_p_value is not None
    assert champion.auc_vs_baseline_p_value > 0.05  # the ranking is the same
    assert "Brier" in on_brier.statement and "AUC" in on_brier.statement
    on_auc = results.summarise("exp", ["rules", "champion"], rows, metric="auc")
    assert on_auc.winner is None
    record = on_brier.to_record()
    assert record["metric"] == "brier"
    assert record["variants"]["champion"]["brier_vs_baseline_p_value"] < 1e-6


def test_the_metric_is_declared_at_creation_and_checked() -> None:
    record = {"name": "m", "variants": ["rules", "champion"], "allocation": [50, 50],
              "created_at": "2026-11-30T00:00:00Z"}
    assert definition.parse_experiment(record).metric == "brier"
    assert definition.parse_experiment(record | {"metric": "auc"}).metric == "auc"
    assert definition.parse_experiment(record | {"metric": "auc"}).to_record()["metric"] == "auc"
    with pytest.raises(InvalidInput) as refused:
        definition.parse_experiment(record | {"metric": "conversions"})
    assert [e.path for e in refused.value.errors] == ["metric"]
