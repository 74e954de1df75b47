"""Unzipped size of a `sam build` output: every function and layer, and the worst-case
function package (function code + all its layers), which is what Lambda's 250 MB limit
applies to. Stdlib only (runs in the tools venv). Writes a JSON summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MB = 1024 * 1024


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def measure(build_dir: Path) -> dict[str, object]:
    parts = {p.name: tree_bytes(p) for p in sorted(build_dir.iterdir()) if p.is_dir()}
    layers = {k: v for k, v in parts.items() if k.endswith("Layer")}
    functions = {k: v for k, v in parts.items() if k not in layers}
    layer_total = sum(layers.values())
    per_function = {name: size + layer_total for name, size in functions.items()}
    return {
        "build_dir": str(build_dir),
        "parts_mb": {k: round(v / MB, 2) for k, v in parts.items()},
        "total_mb": round(sum(parts.values()) / MB, 2),
        "largest_function_with_layers_mb": round(max(per_function.values(), default=0) / MB, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--limit-mb", type=float, default=150.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.build_dir.is_dir():
        print(f"{args.build_dir} does not exist: run `sam build` first", file=sys.stderr)
        return 2
    result = measure(args.build_dir)
    total_mb = float(result["total_mb"])  # type: ignore[arg-type]
    result["limit_mb"] = args.limit_mb
    result["within_limit"] = total_mb <= args.limit_mb
    parts: dict[str, float] = result["parts_mb"]  # type: ignore[assignment]
    for name, size in parts.items():
        print(f"  {name:<22} {size:>8.2f} MB")
    print(f"unzipped build size: {total_mb} MB (functions + layers; limit "
          f"{args.limit_mb:g} MB; largest function with its layers "
          f"{result['largest_function_with_layers_mb']} MB, Lambda's hard limit 250 MB)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["within_limit"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
