"""Resolve ``MODEL_URI`` to a verified, loaded model bundle and keep it fresh.

Accepted URIs (ARCHITECTURE.md "Model store"):

- ``file:///abs/bundle_dir``                 a bundle directory
- ``file:///abs/store/models/champion.json`` a local champion pointer
- ``s3://bucket/models/<version>/``          a bundle under an S3 prefix
- ``s3://bucket/models/champion.json``       the champion pointer in S3

A bundle is always verified by ``bundle.load_model`` (every sha256) before it serves. S3
bundles are downloaded to ``cache_dir/<model_version>/`` once per container and reused.

With a pointer, the store re-reads it (one small GET) at most once per ``refresh_seconds`` and,
when it names a new version, loads the new bundle *first* and swaps only once it verified; a
broken new bundle is logged and the current one keeps serving.

Where a request is waiting (the score function), a due refresh runs on a background thread:
the request that finds it due waits at most ``refresh_wait_seconds`` for it (an unchanged
pointer is read within that), then is served by the current model while the refresh goes on;
an S3 that does not answer costs no request more than that wait. Without a model yet, the
request waits at most ``first_load_wait_seconds`` and then gets the rules fallback while the
load goes on. ``None`` (tools, the default) refreshes inline. With no model at all (missing or
corrupt bundle), the store reports ``loaded=False`` with a reason (``/health`` answers 503,
scoring falls back to rules) and retries at most once per ``refresh_seconds``.

Reasons never carry local file paths or stack traces: they reach HTTP responses.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlparse

from leadscore.background import BackgroundRefresh
from leadscore.bundle import pointed_prefix, pointer_root
from leadscore.paths import UnsafePath, confine

if TYPE_CHECKING:
    from leadscore.bundle import LoadedModel

logger = logging.getLogger(__name__)

INFO_FILES = ("ensemble_metrics.json", "feature_importance.json")
_PATH_RE = re.compile(r"(?:file://)?(?:/[\w.\-]+)+/?")


def scrub(message: str) -> str:
    """Replace absolute paths in a message by their last component."""
    return _PATH_RE.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], message)[:300]


class StoredObject(Protocol):
    @property
    def body(self) -> bytes: ...
    @property
    def etag(self) -> str: ...


class BundleObjects(Protocol):
    """The S3 reads a store makes (`leadscore.adapters.s3.S3Store`; the composition room
    gives it: `leadscore.wiring.scoring.model_store`)."""

    def get(self, bucket: str, key: str) -> StoredObject: ...
    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...
    def download(self, bucket: str, key: str, path: Path) -> None: ...


class ModelUnavailable(Exception):
    """The bundle could not be used; ``str(exc)`` is a safe, path-free reason."""


@dataclass(frozen=True)
class ModelStatus:
    loaded: bool
    model_version: str | None
    reason: str | None


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "file" | "s3"
    pointer: bool
    bucket: str  # s3 only
    path: str  # file path, or S3 key / prefix


def parse_model_uri(uri: str) -> ModelSource:
    uri = uri.strip()
    if not uri:
        raise ModelUnavailable("MODEL_URI is not set")
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ModelUnavailable("MODEL_URI has no bucket")
        key = parsed.path.lstrip("/")
        if key.endswith(".json"):
            return ModelSource("s3", True, parsed.netloc, key)
        if key and not key.endswith("/"):
            key += "/"
        return ModelSource("s3", False, parsed.netloc, key)
    if parsed.scheme in ("file", ""):
        path = unquote(parsed.path if parsed.scheme == "file" else uri)
        if not path:
            raise ModelUnavailable("MODEL_URI has no path")
        return ModelSource("file", path.endswith(".json"), "", path)
    raise ModelUnavailable(f"MODEL_URI scheme {parsed.scheme!r} is not supported")


class ModelProvider(Protocol):
    """What scoring and the API need from a model source."""

    def current(self) -> LoadedModel | None: ...

    def status(self) -> ModelStatus: ...

    def info(self) -> dict[str, Any] | None: ...


Loader = Callable[[Path], "LoadedModel"]


def _default_loader(path: Path) -> LoadedModel:
    from leadscore.bundle import load_model

    return load_model(path)


@dataclass
class _Active:
    model: LoadedModel
    version: str
    bundle_dir: Path
    pointer_etag: str | None = None
    info: dict[str, Any] | None = None


class ModelStore:
    """A `ModelProvider` over ``MODEL_URI``. Clock (monotonic seconds) is injectable."""

    def __init__(
        self,
        uri: str,
        *,
        s3: BundleObjects | None = None,
        cache_dir: Path = Path("/tmp/leadscore-models"),  # noqa: S108 - Lambda's only writable dir  # nosec B108
        refresh_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        loader: Loader = _default_loader,
        keep_versions: int = 3,
        refresh_wait_seconds: float | None = None,
        first_load_wait_seconds: float | None = None,
    ) -> None:
        self.uri = uri
        self._s3 = s3
        self.cache_dir = cache_dir
        self.refresh_seconds = float(refresh_seconds)
        self._clock = clock
        self._loader = loader
        self._keep_versions = keep_versions
        self._active: _Active | None = None
        self._reason: str | None = None
        self._logged_failure: str | None = None  # the last refresh failure logged at ERROR
        self._next_check = float("-inf")
        self._lock = threading.Lock()
        self._pointer_etag: str | None = None
        self.refresh_wait_seconds = refresh_wait_seconds
        self.first_load_wait_seconds = first_load_wait_seconds
        self._refresher = BackgroundRefresh(self._maybe_refresh, name="model-refresh")
        try:
            self._source: ModelSource | None = parse_model_uri(uri)
        except ModelUnavailable as exc:
            self._source = None
            self._reason = str(exc)

    # -- the provider interface ---------------------------------------------------------------

    def current(self) -> LoadedModel | None:
        """The serving model, refreshing first when a check is due (never raises)."""
        if self._clock() >= self._next_check:
            self._refresh_due()
        active = self._active
        return None if active is None else active.model

    def status(self) -> ModelStatus:
        model = self.current()
        if model is None:
            return ModelStatus(False, None, self._reason or "model not loaded")
        assert self._active is not None
        return ModelStatus(True, self._active.version, None)

    def info(self) -> dict[str, Any] | None:
        """Manifest, metrics and feature importance of the serving bundle (for GET /model)."""
        if self.current() is None:
            return None
        active = self._active
        assert active is not None
        if active.info is None:
            info: dict[str, Any] = {"manifest": active.model.manifest}
            for name in INFO_FILES:
                key = name.removesuffix(".json")
                try:
                    info[key] = json.loads((active.bundle_dir / name).read_text())
                except (OSError, ValueError):
                    info[key] = None
            active.info = info
        return active.info

    def release(self) -> None:
        """Forget the serving model (a cache dropping this store): its memory goes now rather
        than at the interpreter's next cycle collection (the store and its background refresh
        refer to each other, so the store itself waits for one)."""
        self._active = None

    # -- refresh ------------------------------------------------------------------------------

    def _refresh_due(self) -> None:
        wait = (self.first_load_wait_seconds if self._active is None
                else self.refresh_wait_seconds)
        self._refresher.run(wait)

    @property
    def background_refreshes(self) -> int:
        """Refreshes started on a background thread so far (benchmarks, tests)."""
        return self._refresher.started

    def wait_for_refresh(self, timeout: float | None = None) -> None:
        """Block until a background refresh (if any) has finished (tests, benchmarks)."""
        self._refresher.join(timeout)

    def _maybe_refresh(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is refreshing; serve what we have
        try:
            if self._clock() < self._next_check:
                return
            self._next_check = self._clock() + self.refresh_seconds
            if self._source is None:
                return
            if self._active is not None and not self._source.pointer:
                self._next_check = float("inf")  # a fixed bundle never changes
                return
            try:
                self._refresh(self._source)
            except ModelUnavailable as exc:
                self._fail(str(exc))
            except Exception as exc:  # never let a refresh fail a request
                self._fail(f"model load failed: {type(exc).__name__}: {scrub(str(exc))}")
        finally:
            self._lock.release()

    def _fail(self, reason: str) -> None:
        # Once per reason: a stack without a model (or with a refused candidate) would
        # otherwise log the same ERROR every refresh, burying the one that matters.
        level = logging.DEBUG if reason == self._logged_failure else logging.ERROR
        self._logged_failure = reason
        if self._active is None:
            self._reason = reason
            logger.log(level, "model unavailable", extra={"reason": reason})
        else:
            logger.log(
                level,
                "new model rejected; still serving the current one",
                extra={"reason": reason, "model_version": self._active.version},
            )

    def _refresh(self, source: ModelSource) -> None:
        if source.kind == "file":
            if source.pointer:
                self._refresh_file_pointer(Path(source.path))
            else:
                self._swap(self._load_dir(Path(source.path)), Path(source.path))
        elif source.pointer:
            self._refresh_s3_pointer(source.bucket, source.path)
        else:
            model, directory = self._fetch_s3_bundle(source.bucket, source.path, None)
            self._swap(model, directory)

    def _swap(
        self, model: LoadedModel, bundle_dir: Path, pointer_etag: str | None = None
    ) -> None:
        previous = self._active
        self._active = _Active(model, str(model.version), bundle_dir, pointer_etag)
        self._reason = self._logged_failure = None
        if previous is None or previous.version != model.version:
            logger.info(
                "model loaded",
                extra={
                    "model_version": model.version,
                    "previous_version": None if previous is None else previous.version,
                },
            )
        self._prune()

    def _load_dir(self, directory: Path) -> LoadedModel:
        if not directory.is_dir():
            raise ModelUnavailable("model bundle not found")
        try:
            return self._loader(directory)
        except Exception as exc:
            raise ModelUnavailable(
                f"model bundle failed verification: {scrub(str(exc)) or type(exc).__name__}"
            ) from exc

    @staticmethod
    def _check_pointer(model: LoadedModel, pointer: dict[str, Any]) -> None:
        version = pointer.get("version")
        if version and version != model.version:
            raise ModelUnavailable(
                f"champion pointer names {version} but the bundle is {model.version}"
            )
        sha = pointer.get("sha256")
        if sha and sha != model.manifest.get("sha256"):
            raise ModelUnavailable("champion pointer sha256 does not match the bundle")

    @staticmethod
    def _parse_pointer(raw: bytes) -> dict[str, Any]:
        try:
            pointer = json.loads(raw)
        except ValueError as exc:
            raise ModelUnavailable("champion pointer is not valid JSON") from exc
        if not isinstance(pointer, dict) or not isinstance(pointer.get("version"), str):
            raise ModelUnavailable("champion pointer has no version")
        return pointer

    def _refresh_file_pointer(self, pointer_path: Path) -> None:
        try:
            raw = pointer_path.read_bytes()
        except OSError as exc:
            raise ModelUnavailable("champion pointer not found") from exc
        pointer = self._parse_pointer(raw)
        if self._active is not None and pointer["version"] == self._active.version:
            return
        # store layout: <store>/models/champion.json; a relative prefix is relative to <store>
        store_root = pointer_path.parent.parent
        prefix = pointed_prefix(pointer)
        if prefix.startswith("file://"):
            directory = Path(unquote(urlparse(prefix).path))
        elif prefix.startswith("/"):
            directory = Path(prefix)
        else:
            directory = store_root / prefix
        model = self._load_dir(directory)
        self._check_pointer(model, pointer)
        self._swap(model, directory)

    def _s3_store(self) -> BundleObjects:
        if self._s3 is None:  # a store built without S3 access was given an s3:// MODEL_URI
            raise ModelUnavailable("this model store was built without S3 access")
        return self._s3

    def _refresh_s3_pointer(self, bucket: str, key: str) -> None:
        s3 = self._s3_store()
        try:
            obj = s3.get(bucket, key)
        except Exception as exc:
            raise ModelUnavailable(
                f"champion pointer s3://{bucket}/{key} could not be read: {type(exc).__name__}"
            ) from exc
        if self._active is not None and obj.etag and obj.etag == self._active.pointer_etag:
            return
        pointer = self._parse_pointer(obj.body)
        if self._active is not None and pointer["version"] == self._active.version:
            self._active.pointer_etag = obj.etag
            return
        prefix = pointed_prefix(pointer)
        if prefix.startswith("s3://"):
            parsed = urlparse(prefix)
            bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
        elif root := pointer_root(key):
            # relative to the store's root, as promotion wrote it (a store kept under a
            # prefix of its bucket, e.g. s3://bucket/team/models/champion.json)
            prefix = f"{root}/{prefix}"
        if not prefix.endswith("/"):
            prefix += "/"
        model, directory = self._fetch_s3_bundle(bucket, prefix, pointer["version"])
        self._check_pointer(model, pointer)
        self._swap(model, directory, pointer_etag=obj.etag)

    def _fetch_s3_bundle(
        self, bucket: str, prefix: str, version: str | None
    ) -> tuple[LoadedModel, Path]:
        s3 = self._s3_store()
        if version is None:
            try:
                manifest = json.loads(s3.get(bucket, prefix + "manifest.json").body)
                version = str(manifest["model_version"])
            except Exception as exc:
                raise ModelUnavailable(
                    f"no readable manifest.json under s3://{bucket}/{prefix}"
                ) from exc
        if not re.fullmatch(r"[\w.\-]+", version):
            raise ModelUnavailable("model version is not a safe name")
        target = self.cache_dir / version
        if target.is_dir():
            try:
                return self._loader(target), target
            except Exception:
                shutil.rmtree(target, ignore_errors=True)  # a bad earlier download; fetch again
        keys = [k for k in s3.list_keys(bucket, prefix) if not k.endswith("/")]
        if not keys:
            raise ModelUnavailable(f"no model bundle under s3://{bucket}/{prefix}")
        staging = self.cache_dir / f".staging-{uuid.uuid4().hex}"
        try:
            staging.mkdir(parents=True)
            for key in keys:
                try:
                    local = confine(staging, key[len(prefix) :])
                except UnsafePath as exc:
                    # a key that would write outside the folder: the bundle is not used at all
                    raise ModelUnavailable(
                        f"bundle under s3://{bucket}/{prefix} has an unsafe key: {exc}"
                    ) from None
                s3.download(bucket, key, local)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        try:
            model = self._load_dir(target)
            if model.version != version:
                raise ModelUnavailable(
                    f"bundle under s3://{bucket}/{prefix} is {model.version}, expected {version}"
                )
        except ModelUnavailable:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return model, target

    def _prune(self) -> None:
        """Keep the newest few downloaded versions in /tmp (Lambda's /tmp is small)."""
        if not self.cache_dir.is_dir():
            return
        active = self._active.bundle_dir if self._active else None
        dirs = sorted(
            (d for d in self.cache_dir.iterdir() if d.is_dir() and not d.name.startswith(".")),
            key=lambda d: d.stat().st_mtime,
            reverse=True,
        )
        for old in dirs[self._keep_versions :]:
            if old != active:
                shutil.rmtree(old, ignore_errors=True)
