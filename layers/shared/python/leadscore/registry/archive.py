"""Safe unpacking of a SageMaker ``model.tar.gz`` into a bundle directory.

Streaming: the archive is read header by header and every limit is checked when
its header is met, before the member's bytes are read or unpacked — a million empty entries
or one 4 GiB member of zeros is refused after a few hundred headers, not after reading all.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import zlib
from pathlib import Path
from typing import Any

from leadscore.bundle import MANIFEST_FILE
from leadscore.paths import UnsafePath, confine
from leadscore.registry.store import RegistryError

MAX_ARCHIVE_MEMBERS = 200


class _BoundedReader(io.RawIOBase):
    """A read-only stream that refuses to deliver more than `limit` bytes in all.

    Every read asks the source for at most the remaining budget, so no tar header (a pax or
    GNU long-name record declares its own size and is read whole) can make tarfile decompress
    or buffer more than the archive is allowed to hold.
    """

    def __init__(self, source: Any, limit: int) -> None:
        self._source = source
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self._left <= 0:
            if self._source.read(1):
                raise RegistryError("model archive unpacks to more than its size limit")
            return 0
        data = self._source.read(min(len(view), self._left))
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)


def extract_bundle_archive(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    max_bytes: int,
    *,
    max_members: int = MAX_ARCHIVE_MEMBERS,
    max_member_bytes: int | None = None,
) -> Path:
    """Unpack a SageMaker model.tar.gz (gzip or plain tar) safely; the bundle directory inside.

    Streams: each header is checked as it is met, *before* its bytes are read — more than
    `max_members` entries, a member over `max_member_bytes` (default `max_bytes`), more than
    `max_bytes` in all, links, devices, and names that leave the folder after normalisation
    (`leadscore.paths.confine`: absolute, ``//``, ``..``, backslashes) are refused
    (RegistryError) at once. The decompressed stream itself is capped, so no header can make
    the reader buffer more. Duplicate names are refused (one verified file, one content).
    """
    target = Path(dest)
    target.mkdir(parents=True, exist_ok=True)
    member_limit = max_bytes if max_member_bytes is None else min(max_bytes, max_member_bytes)
    # headers: at most 3 blocks each (pax/long name + header + padding) beyond the data
    stream_limit = max_bytes + (max_members + 2) * 3 * tarfile.BLOCKSIZE + 64 * 1024
    seen: set[str] = set()
    count = total = 0
    try:
        with open(archive, "rb") as raw:
            source: Any = raw
            if raw.read(2) == b"\x1f\x8b":
                raw.seek(0)
                source = gzip.GzipFile(fileobj=raw, mode="rb")
            else:
                raw.seek(0)
            bounded = io.BufferedReader(_BoundedReader(source, stream_limit), 1024 * 1024)
            with tarfile.open(fileobj=bounded, mode="r|") as tar:
                for member in tar:
                    count += 1
                    if count > max_members:
                        raise RegistryError(
                            f"model archive holds more than {max_members} entries"
                        )
                    name = member.name
                    if member.isdir() and not [p for p in name.split("/") if p not in ("", ".")]:
                        continue  # the archive's own root, "./"
                    try:
                        local = confine(target, name)
                    except UnsafePath as exc:
                        raise RegistryError(
                            f"model archive entry {name[:100]!r} escapes the bundle ({exc})"
                        ) from None
                    if not (member.isfile() or member.isdir()):
                        raise RegistryError(
                            f"model archive entry {name[:100]!r} is not a regular file or "
                            "directory"
                        )
                    relative = local.relative_to(target.resolve()).as_posix()
                    if relative in seen and not member.isdir():
                        raise RegistryError(f"model archive holds {relative!r} twice")
                    seen.add(relative)
                    if member.size > member_limit:
                        raise RegistryError(
                            f"model archive entry {relative!r} is {member.size} bytes, "
                            f"more than {member_limit} bytes"
                        )
                    total += member.size
                    if total > max_bytes:
                        raise RegistryError(
                            f"model archive unpacks to more than {max_bytes} bytes"
                        )
                    if member.isdir():
                        local.mkdir(parents=True, exist_ok=True)
                        continue
                    local.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    if src is None:
                        raise RegistryError(f"model archive entry {relative!r} has no data")
                    with src, open(local, "wb") as out:
                        shutil.copyfileobj(src, out, 1024 * 1024)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise RegistryError(
            f"model archive cannot be read: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    if (target / MANIFEST_FILE).is_file():
        return target
    subdirs = [p for p in target.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / MANIFEST_FILE).is_file():
        return subdirs[0]
    return target
