"""The checkout installs into .venv (editable, `make venv`) instead of scripts editing
`sys.path`: every training module is part of the install, and no module outside a Lambda
entry point puts a directory on the path by hand."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Where a path edit is the point: each runs code the way the Lambda runtime does (the
# function's code root and the layer's directory first), not the way the checkout installs.
LAMBDA_RUNTIME_EMULATIONS = {
    "bench/coldstart.py",  # cold start of a fresh interpreter with a function's code root
    "bench/coldstart_pyc.py",  # the same with the layer's compiled .pyc under /opt/python
    "tests/deploy/test_events.py",  # each function's handler loaded from its CodeUri
}
PATH_EDIT = re.compile(r"sys\.path\s*(\.insert|\.append|\[[^\]]*\]\s*=|\s*=|\s*\+=)")


def _tracked_python() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "*.py"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    return [name for name in listed if name]


def test_every_training_module_is_in_the_editable_install() -> None:
    """A new training/*.py is listed in pyproject.toml's py-modules (then `make venv`)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = sorted(p.stem for p in (ROOT / "training").glob("*.py"))
    assert sorted(config["py-modules"]) == on_disk


@pytest.mark.slow
def test_the_installed_packages_are_the_checkout() -> None:
    """Imported from outside the repository, the packages resolve to this checkout."""
    code = ("import leadscore, lead_ensemble, train, schema_infer; "
            "print(leadscore.__file__); print(lead_ensemble.__file__); print(train.__file__)")
    answer = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True,
                            text=True, timeout=120, check=True)
    files = [Path(line) for line in answer.stdout.split()]
    assert [f.relative_to(ROOT).as_posix() for f in files] == [
        "layers/shared/python/leadscore/__init__.py",
        "training/lead_ensemble/__init__.py",
        "training/train.py",
    ]


def test_no_module_edits_sys_path_outside_lambda_entry_points() -> None:
    found = []
    for name in _tracked_python():
        if name in LAMBDA_RUNTIME_EMULATIONS:
            continue
        text = (ROOT / name).read_text(encoding="utf-8")
        found += [f"{name}: {line.strip()}" for line in text.splitlines()
                  if PATH_EDIT.search(line) and "PATH_EDIT" not in line]
    assert found == []


def test_no_import_waits_for_a_path_edit() -> None:
    """The E402 exemption marked imports that ran after a path edit; none is left."""
    marker = "noqa: " + "E402"  # in two pieces, so that this file does not match itself
    found = [name for name in _tracked_python() if marker in (ROOT / name).read_text("utf-8")]
    assert found == []


@pytest.mark.slow
def test_no_import_climbs_a_floor() -> None:
    """pyproject.toml's import-linter contracts (what `make lint` runs) hold."""
    lint = Path(sys.executable).parent / "lint-imports"
    answer = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert answer.returncode == 0, answer.stdout[-3000:]
    assert "0 broken" in answer.stdout
