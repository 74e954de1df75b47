"""S3ObjectStore: the registry's store on a bucket (moto), and S3's 403-for-missing answer."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from leadscore.adapters.s3_store import S3ObjectStore, open_store
from leadscore.registry import LocalObjectStore, ObjectNotFound

from .conftest import BUCKET


def test_round_trip_under_a_root_prefix(aws: Any) -> None:
    store = S3ObjectStore(BUCKET, "team-a/")
    store.put_bytes("models/x/manifest.json", b"{}", "application/json")
    store.copy("models/x/manifest.json", "models/y/manifest.json")
    assert store.list("models/") == ["models/x/manifest.json", "models/y/manifest.json"]
    assert store.get_bytes("models/y/manifest.json") == b"{}"
    assert store.exists("models/x/manifest.json") and not store.exists("models/z.json")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("models/z.json")
    head = aws.head_object(Bucket=BUCKET, Key="team-a/models/x/manifest.json")
    assert head["ContentType"] == "application/json"


class _Forbidding:
    """A client whose GET/HEAD answer 403, as S3 does for a missing key without ListBucket."""

    def __init__(self, listed: list[str]) -> None:
        self.listed = listed

    def _deny(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "GetObject")

    get_object = _deny
    head_object = _deny

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        return {"Contents": [{"Key": k} for k in self.listed if k.startswith(kwargs["Prefix"])]}


def test_a_403_for_a_key_that_is_not_listed_means_missing() -> None:
    store = S3ObjectStore("b", s3_client=_Forbidding([]))
    assert not store.exists("models/champion.json")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("models/champion.json")


def test_a_403_for_a_listed_key_is_a_real_denial() -> None:
    store = S3ObjectStore("b", s3_client=_Forbidding(["models/champion.json"]))
    with pytest.raises(ClientError):
        store.get_bytes("models/champion.json")
    with pytest.raises(ClientError):
        store.exists("models/champion.json")


def test_open_store_by_location(tmp_path: Any) -> None:
    s3 = open_store("s3://bucket/some/root")
    assert isinstance(s3, S3ObjectStore) and (s3.bucket, s3.root) == ("bucket", "some/root/")
    local = open_store(f"file://{tmp_path}")
    assert isinstance(local, LocalObjectStore) and local.root == tmp_path.resolve()
    assert isinstance(open_store(str(tmp_path)), LocalObjectStore)
