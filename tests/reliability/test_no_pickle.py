"""Code test: no pickle anywhere in the tree (a bundle must be safe to load from a bucket).

Greps every file git knows about (tracked or untracked, not ignored) for pickle-family
imports and loaders and for pickle-format files. A bundle in S3 is executed by the scoring
Lambda; one pickle loader anywhere is one arbitrary-code-execution path. This file is the
only one allowed to spell the patterns out.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve()

# Built from pieces so the patterns themselves never look like usage to other scanners.
_P = "pick" + "le"
USAGE = re.compile(
    "|".join(
        [
            rf"^\s*(import|from)\s+(c?{_P}|_{_P}|cloud{_P}|dill|joblib|shelve)\b",
            rf"^\s*import\s+[\w.,\s]*\b(c?{_P}|cloud{_P}|dill|joblib|shelve)\b",
            rf"__import__\(\s*['\"](c?{_P}|cloud{_P}|dill|joblib|shelve)['\"]",
            rf"import_module\(\s*['\"](c?{_P}|cloud{_P}|dill|joblib|shelve)['\"]",
            rf"allow_{_P}\s*=\s*True",
            r"\btorch\.load\s*\(",
            rf"\b(read|to)_{_P}\s*\(",
            rf"\b{_P}\.(loads?|dumps?|Unpickler|Pickler)\b",
            r"\bjoblib\.(load|dump)\s*\(",
        ]
    ),
    re.MULTILINE,
)
PICKLE_SUFFIXES = {".pkl", f".{_P}", ".joblib", ".dill", ".pt", ".pth", ".ckpt", ".sav"}
TEXT_SUFFIXES = {".py", ".pyi", ".cfg", ".toml", ".ini", ".txt", ".md", ".yaml", ".yml",
                 ".json", ".sh", ".mk", ""}


def tree_files(root: Path) -> list[Path]:
    """Every file of the working tree that git tracks or would track (ignored ones excluded)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
            check=True, capture_output=True,
        ).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk it
        skip = {".git", ".venv", ".venv-tools", ".venv-scan", "__pycache__", ".aws-sam",
                ".build", ".hypothesis", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
        names = [str(p.relative_to(root)) for p in root.rglob("*")
                 if p.is_file() and not skip.intersection(p.relative_to(root).parts)]
    return [root / n for n in names if (root / n).is_file()]


def find_pickle(files: list[Path], root: Path, *, exclude: Path | None = None) -> list[str]:
    """'path:line: text' for every pickle usage, 'path: pickle file' for every pickle file."""
    hits: list[str] = []
    for path in files:
        if exclude is not None and path.resolve() == exclude:
            continue
        rel = path.relative_to(root)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            hits.append(f"{rel}: pickle-format file name")
            continue
        if path.suffix.lower() not in TEXT_SUFFIXES and path.name != "Makefile":
            with path.open("rb") as fh:
                head = fh.read(2)
            if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
                hits.append(f"{rel}: starts like a pickle stream")
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in USAGE.finditer(text):
            line_no = text.count("\n", 0, match.start()) + 1
            line = text.splitlines()[line_no - 1].strip()
            hits.append(f"{rel}:{line_no}: {line}")
    return hits


def test_the_tree_has_no_pickle() -> None:
    files = tree_files(ROOT)
    assert len(files) > 50, "the scan found too few files to be a real scan"
    hits = find_pickle(files, ROOT, exclude=THIS)
    assert not hits, "pickle usage found (the project never pickles):\n" + "\n".join(hits)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.py", "import " + _P + "\n"),
        ("b.py", "from joblib import load\n"),
        ("c.py", "import os, cloud" + _P + "\n"),
        ("d.py", "x = np.load(p, allow_" + _P + "=True)\n"),
        ("e.py", "m = torch.load('m')\n"),
        ("f.py", "df = pd.read_" + _P + "('x')\n"),
        ("g.py", "mod = __import__('" + _P + "')\n"),
        ("h.py", "obj = " + _P + ".loads(raw)\n"),
        ("model.pkl", "anything"),
        ("model.joblib", "anything"),
        ("blob.bin", "\x80\x04stream"),
    ],
)
def test_the_scanner_catches_each_pattern(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("latin-1"))
    assert find_pickle([path], tmp_path), f"{name} was not caught"


@pytest.mark.parametrize(
    "content",
    [
        "with np.load(path, allow_" + _P + "=False) as data:\n",
        'FORBIDDEN = {"' + _P + '", "joblib"}\n',
        "# the original " + _P + "d everything; we never do\n",
    ],
)
def test_the_scanner_lets_safe_text_through(tmp_path: Path, content: str) -> None:
    path = tmp_path / "ok.py"
    path.write_text(content)
    assert find_pickle([path], tmp_path) == []
