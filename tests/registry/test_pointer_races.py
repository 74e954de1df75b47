"""Two writers of models/champion.json at once: neither overwrites the other.

Each store's conditional write is exercised for real (a file lock + content tag locally,
PutObject If-Match / If-None-Match on moto's S3); the race is forced by letting a rival
promotion land between our read of the pointer and our write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from leadscore import registry
from leadscore.adapters.s3_store import S3ObjectStore
from leadscore.registry import ConcurrentUpdate, EvalRows, LocalObjectStore, ObjectStore
from leadscore.settings import PromoteSettings
from moto import mock_aws

from .conftest import BundleFactory

SETTINGS = PromoteSettings(min_auc=0.70, max_auc_drop=0.02, max_brier=0.20)
BUCKET = "race-bucket"


class RivalFirst:
    """Delegates to a store, but lets `rival()` run right before the first pointer write."""

    def __init__(self, inner: Any, rival: Any) -> None:
        self.inner = inner
        self.rival = rival
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def replace_if(self, key: str, data: bytes, content_type: str, tag: str | None) -> None:
        if self.rival is not None:
            rival, self.rival = self.rival, None
            rival()
        try:
            self.inner.replace_if(key, data, content_type, tag)
        except ConcurrentUpdate:
            self.lost += 1
            raise


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "store")
        return
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield S3ObjectStore(BUCKET, s3_client=boto3.client("s3", region_name="us-east-1"))


def _version(result: registry.PromotionResult) -> str:
    assert result.promoted, result.reasons
    return result.version


def test_conditional_write_refuses_a_stale_tag(store: ObjectStore) -> None:
    store.replace_if("models/champion.json", b"{}", "application/json", None)
    with pytest.raises(ConcurrentUpdate):
        store.replace_if("models/champion.json", b"{}", "application/json", None)
    _, tag = store.get_tagged("models/champion.json")
    store.replace_if("models/champion.json", b'{"a": 1}', "application/json", tag)
    with pytest.raises(ConcurrentUpdate):
        store.replace_if("models/champion.json", b'{"a": 2}', "application/json", tag)
    assert store.get_bytes("models/champion.json") == b'{"a": 1}'


def test_a_promotion_racing_another_keeps_both_in_the_history(
    store: ObjectStore, make_bundle: BundleFactory
) -> None:
    first = _version(registry.promote(make_bundle(seed=1), store, SETTINGS))
    rival_bundle = make_bundle(seed=2)
    rival_versions: list[str] = []
    racing = RivalFirst(
        store,
        lambda: rival_versions.append(
            _version(registry.promote(rival_bundle, store, SETTINGS))
        ),
    )
    ours = _version(registry.promote(make_bundle(seed=3), racing, SETTINGS))

    assert racing.lost == 1  # our first write lost to the rival, the retry won
    champion = registry.get_champion(store)
    assert champion is not None and champion["version"] == ours
    assert [p["version"] for p in champion["previous"]] == [rival_versions[0], first]


def test_a_promotion_that_loses_to_a_better_champion_is_gated_again(
    store: ObjectStore, make_bundle: BundleFactory, gate_rows: EvalRows
) -> None:
    # AUC decides here: the race is the point (600 rows put only 60 leads in the top 10 %)
    lenient = replace(SETTINGS, min_auc=0.6, max_brier_loss=1.0, max_ece_loss=1.0,
                      max_top_precision_loss=1.0)

    def promote(directory: Path, target: ObjectStore) -> registry.PromotionResult:
        return registry.promote(directory, target, lenient, rows=gate_rows)

    assert promote(make_bundle(seed=1, keep=2), store).promoted  # a weak champion (AUC ~0.75)
    better = make_bundle(seed=2)  # all 20 features (AUC ~0.83)
    racing = RivalFirst(store, lambda: _version(promote(better, store)))
    # (AUC ~0.79): better than the champion it read first, clearly worse than the one that won
    result = promote(make_bundle(seed=3, keep=5), racing)
    assert not result.promoted
    assert any(reason.startswith("champion_") for reason in result.reasons), result.reasons
    champion = registry.get_champion(store)
    assert champion is not None and champion["metrics"]["auc"] > 0.8  # the rival's


def test_a_rollback_racing_a_promotion_does_not_erase_it(
    store: ObjectStore, make_bundle: BundleFactory
) -> None:
    first = _version(registry.promote(make_bundle(seed=1), store, SETTINGS))
    second = _version(registry.promote(make_bundle(seed=2), store, SETTINGS))
    newcomer = make_bundle(seed=3)
    racing = RivalFirst(store, lambda: registry.promote(newcomer, store, SETTINGS))
    restored = registry.rollback(racing)
    # The rollback was re-made against the newcomer: it restores `second`, not `first`.
    assert racing.lost == 1
    assert restored["version"] == second
    assert [p["version"] for p in restored["previous"]] == [first]
