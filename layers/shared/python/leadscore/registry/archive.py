"""Safe unpacking of a SageMaker ``model.tar.gz`` into a bundle directory."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

from leadscore.bundle import (
    MANIFEST_FILE,
)
from leadscore.registry.store import RegistryError

MAX_ARCHIVE_MEMBERS = 200

# --------------------------------------------------------------------------- archives


def extract_bundle_archive(
    archive: str | os.PathLike[str], dest: str | os.PathLike[str], max_bytes: int
) -> Path:
    """Unpack a SageMaker model.tar.gz safely and return the bundle directory inside it.

    Refuses (RegistryError) links, devices, absolute or '..' paths, more than
    MAX_ARCHIVE_MEMBERS members and more than `max_bytes` unpacked; then extracts with
    tarfile's "data" filter as a second line of defence.
    """
    target = Path(dest)
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = tar.getmembers()
            if len(members) > MAX_ARCHIVE_MEMBERS:
                raise RegistryError(f"model archive holds {len(members)} entries, too many")
            total = 0
            for member in members:
                name = member.name
                parts = PurePosixPath(name).parts
                if name.startswith(("/", "\\")) or ".." in parts or ":" in name:
                    raise RegistryError(f"model archive entry {name!r} escapes the bundle")
                if not (member.isfile() or member.isdir()):
                    raise RegistryError(
                        f"model archive entry {name!r} is not a regular file or directory"
                    )
                total += max(member.size, 0)
                if total > max_bytes:
                    raise RegistryError(f"model archive unpacks to more than {max_bytes} bytes")
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RegistryError(f"model archive cannot be read: {type(exc).__name__}: {exc}") from exc
    if (target / MANIFEST_FILE).is_file():
        return target
    subdirs = [p for p in target.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / MANIFEST_FILE).is_file():
        return subdirs[0]
    return target
