"""S3 access for the model store: list a prefix, read small objects, download files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from leadscore.adapters import client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class S3Object:
    body: bytes
    etag: str


class LazyS3:
    """An S3 adapter's client: the one given, else the container's, made on first use (so
    building the adapter calls nothing)."""

    def __init__(self, s3_client: S3Client | None = None) -> None:
        self._client = s3_client

    @property
    def s3(self) -> S3Client:
        if self._client is None:
            self._client = client("s3")
        return self._client


class S3Store(LazyS3):
    """The few S3 calls the model store makes. ``s3_client`` defaults to the container's."""

    def get(self, bucket: str, key: str) -> S3Object:
        answer = self.s3.get_object(Bucket=bucket, Key=key)
        return S3Object(body=answer["Body"].read(), etag=str(answer.get("ETag", "")))

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(str(item["Key"]) for item in page.get("Contents", []))
        return keys

    def download(self, bucket: str, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(bucket, key, str(path))
