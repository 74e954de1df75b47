"""Package sizes: our built functions + layers (unzipped) vs the original's runtime stack."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

MB = 1024 * 1024

# The original system's runtime stack: distribution names as pip knows them.
NATIVE_DISTRIBUTIONS: tuple[str, ...] = (
    "numpy",
    "scipy",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "pandas",
)


def tree_bytes(path: Path) -> int:
    """Total size of the regular files under `path` (or of `path` itself), symlinks not followed."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def distribution_roots(name: str) -> list[Path]:
    """Every top-level directory/file a distribution installed into site-packages.

    That is its package dirs, its vendored `<name>.libs` and its `.dist-info`, as listed in
    its RECORD; the whole directories are measured (so byte-compiled caches count too).
    """
    dist = metadata.distribution(name)
    files = dist.files or []
    site = Path(str(dist.locate_file("")))
    tops: set[str] = set()
    for file in files:
        parts = Path(str(file)).parts
        if parts and parts[0] not in ("..", "/"):
            tops.add(parts[0])
    return sorted(site / top for top in tops if (site / top).exists())


def installed_mb(names: Iterable[str] = NATIVE_DISTRIBUTIONS) -> float:
    """Installed size, in MiB, of the given distributions."""
    seen: set[Path] = set()
    total = 0
    for name in names:
        for root in distribution_roots(name):
            if root not in seen:
                seen.add(root)
                total += tree_bytes(root)
    return total / MB


def built_mb(repo: Path) -> tuple[float, str]:
    """Our unzipped functions + layers: `.build/size.json` from `make build` when present,
    else the same measure taken on `.aws-sam/build`. Returns (MiB, where it came from)."""
    size_json = repo / ".build" / "size.json"
    if size_json.exists():
        data = json.loads(size_json.read_text())
        value = _size_from_json(data)
        if value is not None:
            return value, str(size_json.relative_to(repo))
    build = repo / ".aws-sam" / "build"
    if build.is_dir():
        return tree_bytes(build) / MB, ".aws-sam/build (measured by the benchmark)"
    raise FileNotFoundError("no .build/size.json and no .aws-sam/build: run `make build`")


def _size_from_json(data: object) -> float | None:
    """Read the total from .build/size.json, tolerating the obvious spellings."""
    if not isinstance(data, dict):
        return None
    for key in ("total_mb", "unzipped_mb", "total_unzipped_mb", "mb"):
        value = data.get(key)
        if isinstance(value, int | float):
            return float(value)
    for key in ("total_bytes", "unzipped_bytes", "bytes"):
        value = data.get(key)
        if isinstance(value, int | float):
            return float(value) / MB
    total = data.get("total")
    if isinstance(total, dict):
        return _size_from_json(total)
    return None


def runtime_closure(requirements_file: Path) -> list[str]:
    """The distributions of a requirements file plus everything they require, as installed."""
    from packaging.requirements import Requirement

    todo = []
    for line in requirements_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            todo.append(Requirement(line).name)
    seen: dict[str, str] = {}
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[key] = dist.metadata["Name"]
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return sorted(seen.values())


def source_mb(repo: Path) -> float:
    """Fallback when `make build` cannot run: our runtime requirements as installed in this
    venv (with their dependencies) + the functions' and the shared layer's source."""
    names = runtime_closure(repo / "requirements" / "runtime.txt")
    code = tree_bytes(repo / "functions") + tree_bytes(repo / "layers" / "shared" / "python")
    return installed_mb(names) + code / MB
