"""The one check for names from outside (S3 keys, archive members, store keys) that become
local file paths: the result stays inside its folder.

`confine(root, relative)` normalises first and then decides, so none of these get out:
an absolute name (``/etc/x``, ``//etc/x``), ``..`` anywhere (``a/../../x``, ``./../x``),
backslashes (``a\\..\\x``: refused, never reinterpreted), a drive (``c:/x``), NUL, an empty
name, and a symlink already inside the folder that points out of it (checked on the resolved
path). Empty and ``.`` parts (``a//b``, ``./a``) are dropped.
"""

from __future__ import annotations

import os
from pathlib import Path


class UnsafePath(ValueError):
    """A name that would leave its folder; ``str(exc)`` says why (no local path in it)."""


def safe_parts(relative: str) -> list[str]:
    """The normalised parts of a relative name, or `UnsafePath`."""
    if not isinstance(relative, str) or not relative:
        raise UnsafePath("empty name")
    if "\x00" in relative or "\\" in relative:
        raise UnsafePath("name contains a NUL or a backslash")
    if relative.startswith("/"):
        raise UnsafePath("absolute name")
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafePath("empty name")
    if ".." in parts:
        raise UnsafePath("name climbs out with '..'")
    if ":" in parts[0]:
        raise UnsafePath("name with a drive or scheme")
    return parts


def confine(root: str | os.PathLike[str], relative: str) -> Path:
    """``root/relative`` after normalisation, guaranteed inside `root` (symlinks resolved)."""
    parts = safe_parts(relative)
    base = Path(root).resolve()
    candidate = base.joinpath(*parts)
    if not candidate.resolve().is_relative_to(base):
        raise UnsafePath("name leads out of its folder through a link")
    return candidate
