"""The model registry's `ObjectStore` on an S3 bucket (optionally under a key prefix).

A PutObject replaces an object atomically, which is what champion.json relies on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from leadscore.adapters import client, error_code
from leadscore.adapters.s3 import LazyS3
from leadscore.registry.store import ConcurrentUpdate, ObjectNotFound

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"NoSuchKey", "404", "NotFound"}
# Without an unconditional s3:ListBucket, S3 answers 403 (not 404) for a missing key; the
# functions' policies grant ListBucket only for some prefixes, so a 403 is double-checked.
_FORBIDDEN = {"AccessDenied", "403", "Forbidden"}
# A conditional PutObject that lost: the ETag moved (412) or a concurrent write is running (409).
_LOST_RACE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class S3ObjectStore:
    def __init__(self, bucket: str, root: str = "", s3_client: S3Client | None = None) -> None:
        if not bucket:
            raise ValueError("an S3 object store needs a bucket name")
        self.bucket = bucket
        self.root = root.strip("/") + "/" if root.strip("/") else ""
        self._client = s3_client

    def __repr__(self) -> str:
        return f"S3ObjectStore('s3://{self.bucket}/{self.root}')"

    @property
    def s3(self) -> S3Client:
        if self._client is None:
            self._client = client("s3")
        return self._client

    def _key(self, key: str) -> str:
        return self.root + key

    def get_bytes(self, key: str) -> bytes:
        return self.get_tagged(key)[0]

    def get_tagged(self, key: str) -> tuple[bytes, str]:
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            code = error_code(exc)
            if code in _MISSING or (code in _FORBIDDEN and not self._listed(key)):
                raise ObjectNotFound(key) from exc
            raise
        return bytes(answer["Body"].read()), str(answer.get("ETag", ""))

    def replace_if(
        self, key: str, data: bytes, content_type: str, expected_tag: str | None
    ) -> None:
        target = self._key(key)
        try:
            if expected_tag:  # only if it is still the object we read
                self.s3.put_object(Bucket=self.bucket, Key=target, Body=data,
                                   ContentType=content_type, IfMatch=expected_tag)
            else:  # only if there is still no object
                self.s3.put_object(Bucket=self.bucket, Key=target, Body=data,
                                   ContentType=content_type, IfNoneMatch="*")
        except Exception as exc:
            if error_code(exc) in _LOST_RACE:
                raise ConcurrentUpdate(key) from exc
            raise

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        self.s3.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
        )

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys.extend(str(item["Key"])[len(self.root):] for item in page.get("Contents", []))
        return sorted(keys)

    def copy(self, source_key: str, dest_key: str) -> None:
        self.s3.copy_object(
            Bucket=self.bucket,
            Key=self._key(dest_key),
            CopySource={"Bucket": self.bucket, "Key": self._key(source_key)},
        )

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            code = error_code(exc)
            if code in _MISSING or (code in _FORBIDDEN and not self._listed(key)):
                return False
            raise
        return True

    def _listed(self, key: str) -> bool:
        """Whether a listing shows exactly `key` (used to tell 'missing' from 'forbidden')."""
        full = self._key(key)
        answer = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=full, MaxKeys=1)
        return any(item.get("Key") == full for item in answer.get("Contents", []))


def open_store(location: str) -> Any:
    """`s3://bucket[/prefix]` -> S3ObjectStore; `file:///dir` or a path -> LocalObjectStore."""
    from leadscore.registry.store import LocalObjectStore

    if location.startswith("s3://"):
        bucket, _, root = location[len("s3://"):].partition("/")
        return S3ObjectStore(bucket, root)
    if location.startswith("file://"):
        location = location[len("file://"):]
    return LocalObjectStore(location)


class S3Artifacts(LazyS3):
    """The training jobs' ``model.tar.gz`` objects (`leadscore.registry.candidates.Artifacts`)."""

    def size(self, bucket: str, key: str) -> int | None:
        if not S3ObjectStore(bucket, s3_client=self.s3).exists(key):
            return None
        return int(self.s3.head_object(Bucket=bucket, Key=key)["ContentLength"])

    def download(self, bucket: str, key: str, path: Path) -> None:
        self.s3.download_file(bucket, key, str(path))


class S3Uploads(LazyS3):
    """Training uploads in the artifact bucket (`leadscore.registry.uploads.UploadObjects`):
    a ranged read of a version's head, its lines streamed, the parts and records written."""

    @staticmethod
    def _version(bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        return args

    def head(self, bucket: str, key: str, version_id: str | None,
             length: int) -> tuple[bytes, bool, int | None]:
        answer = self.s3.get_object(**self._version(bucket, key, version_id),
                                    Range=f"bytes=0-{length - 1}")
        head = bytes(answer["Body"].read(length))
        content_range = str(answer.get("ContentRange", ""))
        total = content_range.rpartition("/")[2] if content_range else ""
        complete = (total.isdigit() and int(total) <= len(head)) or (
            not content_range and len(head) < length
        )
        size = int(total) if total.isdigit() else (len(head) if complete else None)
        return head, complete, size

    def lines(self, bucket: str, key: str, version_id: str | None) -> Iterator[bytes]:
        body = self.s3.get_object(**self._version(bucket, key, version_id))["Body"]
        return iter(body.iter_lines(keepends=True))

    def upload(self, handle: IO[bytes], bucket: str, key: str) -> None:
        self.s3.upload_fileobj(handle, bucket, key)

    def put_json(self, bucket: str, key: str, value: Any) -> None:
        self.put_bytes(bucket, key, json.dumps(value, indent=2).encode("utf-8"))

    def put_bytes(self, bucket: str, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    def read(self, bucket: str, key: str) -> bytes | None:
        try:
            return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception as exc:
            # Without s3:ListBucket S3 answers a missing key with 403; the role may read every
            # training-data/*.json, so a refusal there means "no such object" too.
            if error_code(exc) in ("NoSuchKey", "404", "NotFound", "AccessDenied", "403"):
                return None
            raise
