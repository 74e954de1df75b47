"""The layers: the AWS SDK pinned and shipped (with the models of every service the code
calls), and both layers byte-compiled for CPython 3.12 at build time."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_MAKEFILE = (ROOT / "layers" / "runtime" / "Makefile").read_text()
# botocore's service-model directory for a client name, where the two differ.
MODEL_DIR = {"monitoring": "cloudwatch"}


def _pins() -> dict[str, str]:
    text = (ROOT / "requirements" / "runtime.txt").read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)$", text, re.M))


def test_the_sdk_is_pinned_in_the_layer_at_the_version_the_tests_run() -> None:
    pins = _pins()
    for package in ("boto3", "botocore"):
        assert pins.get(package) == importlib.metadata.version(package), package
    removal = " ".join(re.findall(r"rm -rf ([^\n]*)", RUNTIME_MAKEFILE))
    assert "boto" not in removal and "RUNTIME_PROVIDED" not in RUNTIME_MAKEFILE


def test_the_pinned_botocore_has_conditional_put_object() -> None:
    import botocore.session

    members = botocore.session.get_session().get_service_model("s3").operation_model(
        "PutObject").input_shape.members
    assert {"IfMatch", "IfNoneMatch"} <= set(members)


def _services_called() -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.glob("functions/*/*.py"), *ROOT.glob("layers/shared/python/**/*.py")]:
        found |= set(re.findall(r"client\(\s*\"([a-z0-9-]+)\"", path.read_text()))
    return {MODEL_DIR.get(s, s) for s in found}


def test_the_layer_keeps_the_model_of_every_service_the_code_calls() -> None:
    kept = set(re.search(r"BOTOCORE_SERVICES := ((?:[^\n\\]|\\\n)*)", RUNTIME_MAKEFILE)
               .group(1).replace("\\", " ").split())
    called = _services_called()
    assert called and called <= kept, called - kept
    assert "check_layer.py\" $(BOTOCORE_SERVICES)" in RUNTIME_MAKEFILE  # built, then checked


@pytest.fixture(scope="module")
def python312() -> str:
    found = subprocess.run([str(ROOT / "tools" / "find_python312.sh")], capture_output=True,
                           text=True)
    assert found.returncode == 0, found.stderr
    return found.stdout.strip()


@pytest.mark.slow
def test_the_shared_layer_build_ships_unchecked_hash_pyc_for_312(
    python312: str, tmp_path: Path
) -> None:
    subprocess.run(["make", "--no-print-directory", "-C", str(ROOT / "layers" / "shared"),
                    "build-SharedLayer", f"ARTIFACTS_DIR={tmp_path}"],
                   check=True, capture_output=True)
    sources = list((tmp_path / "python" / "leadscore").rglob("*.py"))
    assert len(sources) > 20
    magic = subprocess.run([python312, "-c",
                            "import importlib.util,sys; sys.stdout.buffer.write("
                            "importlib.util.MAGIC_NUMBER)"],
                           capture_output=True, check=True).stdout
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        assert pyc.is_file(), source
        header = pyc.read_bytes()[:8]
        assert header[:4] == magic, source
        flags = int.from_bytes(header[4:8], "little")
        assert flags == 0b01, (source, flags)  # hash-based, never checked against the source
    assert "compileall" in RUNTIME_MAKEFILE and "unchecked-hash" in RUNTIME_MAKEFILE
