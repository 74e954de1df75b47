"""The registry's storage: a tiny object-store protocol and its local-directory implementation.

`LocalObjectStore` is what `make demo` and `tools/modelctl.py` use;
`leadscore.adapters.s3_store.S3ObjectStore` is the same protocol on the artifact bucket.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from leadscore.paths import UnsafePath, confine


class RegistryError(Exception):
    """An operation the registry refuses (no champion, nothing to roll back, bad name...)."""


class ObjectNotFound(KeyError):
    """The store holds no object under that key."""


class ConcurrentUpdate(Exception):
    """The object changed between our read and our conditional write (another writer won)."""


class ObjectStore(Protocol):
    """Keys are '/'-separated, relative to the store root (e.g. 'models/champion.json')."""

    def get_bytes(self, key: str) -> bytes: ...

    def get_tagged(self, key: str) -> tuple[bytes, str]:
        """The object and a tag that changes whenever the object does (S3: its ETag)."""
        ...

    def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> None: ...

    def replace_if(
        self, key: str, data: bytes, content_type: str, expected_tag: str | None
    ) -> None:
        """Write only if the object still has `expected_tag` (None: only if it is absent);
        otherwise raise ConcurrentUpdate."""
        ...

    def list(self, prefix: str) -> list[str]: ...

    def copy(self, source_key: str, dest_key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


class LocalObjectStore:
    """A directory that behaves like the bucket. Every put is atomic (temp file + os.replace)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        # A store key is exact ("a//b" is not "a/b" in S3), so empty and "." parts are refused
        # here; everything else that could leave the root is `confine`'s one rule.
        if any(part in ("", ".") for part in key.split("/")):
            raise ValueError(f"invalid store key {key!r}")
        try:
            return confine(self.root, key)
        except UnsafePath:
            raise ValueError(f"invalid store key {key!r}") from None

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_tagged(self, key: str) -> tuple[bytes, str]:
        data = self.get_bytes(key)
        return data, hashlib.sha256(data).hexdigest()

    def replace_if(
        self, key: str, data: bytes, content_type: str, expected_tag: str | None
    ) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{path.name}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = hashlib.sha256(path.read_bytes()).hexdigest()
            except FileNotFoundError:
                current = None
            if current != expected_tag:
                raise ConcurrentUpdate(key)
            self.put_bytes(key, data, content_type)

    def list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys: list[str] = []
        for path in self.root.rglob("*"):
            if not path.is_file() or path.name.startswith("."):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                keys.append(key)
        return sorted(keys)

    def copy(self, source_key: str, dest_key: str) -> None:
        self.put_bytes(dest_key, self.get_bytes(source_key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


