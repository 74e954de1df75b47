"""The repository stands alone and its map is true: no path outside it is referenced, every
relative link in the docs resolves, and ARCHITECTURE.md's module map names every room of
`leadscore` (and nothing that is not there)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "shared" / "python" / "leadscore"
# Built from pieces so that this file does not match itself.
OUTSIDE = ("../" + "shared", "/work/" + "shared")
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    return [ROOT / name for name in listed if name and (ROOT / name).is_file()]


def test_no_tracked_file_refers_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for needle in OUTSIDE:
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []


@pytest.mark.parametrize(
    "document",
    sorted(str(p.relative_to(ROOT)) for p in [ROOT / "README.md", ROOT / "ARCHITECTURE.md",
                                              *(ROOT / "docs").glob("*.md")]),
)
def test_relative_links_resolve(document: str) -> None:
    path = ROOT / document
    broken = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        if not (path.parent / target).exists():
            broken.append(target)
    assert broken == [], f"{document} links to missing files"


def module_map() -> str:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    start = text.index("## Module map")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_the_module_map_names_every_module_of_leadscore() -> None:
    """A new module is a new room: add its line to ARCHITECTURE.md's module map."""
    mapped = module_map()
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(PACKAGE)
        # a row names a module by its path (`ghl/auth.py`), or by its file name in a row
        # that lists several modules of one subpackage (`loop/records.py`, `snapshots.py`)
        if f"`{relative.as_posix()}`" not in mapped and f"`{path.name}`" not in mapped:
            missing.append(relative.as_posix())
    assert missing == [], "add these modules to ARCHITECTURE.md's module map (one line each)"


def test_every_module_the_map_names_exists() -> None:
    invented = []
    for name in re.findall(r"`([\w/]+\.py)`", module_map()):
        if name.startswith("functions/"):
            continue
        candidates = [PACKAGE / name, *PACKAGE.rglob(name)]
        if not any(c.is_file() for c in candidates):
            invented.append(name)
    assert invented == []
