"""Paths from S3 keys and archive members stay in their folder; archive limits hold
while streaming; a training upload of any shape is refused with a written reason, never a crash.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from leadscore import registry
from leadscore.scoring.model_store import ModelStore, ModelUnavailable
from leadscore.settings import RetrainSettings

# -- S3 keys -> local files ------------------------------------------------------------------


class KeysOnlyS3:
    """An S3Store stand-in that lists the given keys and 'downloads' each as a small file."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.written: list[Path] = []

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        return [k for k in self.keys if k.startswith(prefix)]

    def download(self, bucket: str, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        self.written.append(path)

    def get(self, bucket: str, key: str) -> Any:
        raise KeyError(key)


@pytest.mark.parametrize(
    "tail",
    ["/{outside}/evil.txt", "//{outside}/evil.txt", "sub/../../{rel}/evil.txt",
     "./../{rel}/evil.txt", "a//..//..//{rel}/evil.txt", "sub\\..\\..\\evil.txt"],
    ids=["absolute", "double-slash", "dotdot", "dot-dotdot", "mixed", "backslash"],
)
def test_an_s3_key_cannot_write_outside_the_model_cache(tmp_path: Path, tail: str) -> None:
    cache = tmp_path / "cache"
    outside = tmp_path / "outside"
    outside.mkdir()
    key = "models/lsm-0123456789abcdef/" + tail.format(outside=str(outside).lstrip("/"),
                                                        rel="outside")
    s3 = KeysOnlyS3(["models/lsm-0123456789abcdef/manifest.json", key])
    store = ModelStore("s3://bucket/models/lsm-0123456789abcdef/", s3=s3,  # type: ignore[arg-type]
                       cache_dir=cache)
    with pytest.raises(ModelUnavailable):
        store._fetch_s3_bundle("bucket", "models/lsm-0123456789abcdef/", "lsm-0123456789abcdef")
    assert not (outside / "evil.txt").exists()
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    for path in s3.written:
        assert path.resolve().is_relative_to(cache.resolve())


def test_confine_refuses_every_escape_and_symlinks(tmp_path: Path) -> None:
    from leadscore.paths import UnsafePath, confine

    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    assert confine(root, "a/b.txt") == root.resolve() / "a" / "b.txt"
    assert confine(root, "a//b.txt") == root.resolve() / "a" / "b.txt"
    for bad in ["", ".", "/etc/passwd", "//etc/passwd", "../x", "a/../../x", "a\\..\\x",
                "link/escape.txt", "c:/x", "a/\x00b"]:
        with pytest.raises(UnsafePath):
            confine(root, bad)


# -- archives: limits while streaming --------------------------------------------------------


def _gzip_members(*chunks: tuple[bytes, int]) -> bytes:
    """A gzip file made of concatenated members (each chunk repeated n times): cheap to build
    even when it unpacks to gigabytes."""
    out = io.BytesIO()
    for data, times in chunks:
        member = gzip.compress(data, compresslevel=9)
        out.write(member * times)
    return out.getvalue()


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _count_unpacked_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The decompressed bytes the unpacker takes from its stream, call by call."""
    from leadscore.registry import archive

    delivered: list[int] = []
    readinto = archive._BoundedReader.readinto

    def counted(self: Any, buffer: Any) -> int:
        got = readinto(self, buffer)
        delivered.append(got)
        return got

    monkeypatch.setattr(archive._BoundedReader, "readinto", counted)
    return delivered


def test_an_archive_of_a_million_members_is_refused_before_reading_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: 474 MiB and 16.8 s before the "too many entries" refusal.
    archive = tmp_path / "model.tar.gz"
    block = b"".join(_header(f"e{i}.txt", 0) for i in range(2048))
    archive.write_bytes(_gzip_members((block, 500)))  # 1,024,000 members
    delivered = _count_unpacked_bytes(monkeypatch)
    tracemalloc.start()
    with pytest.raises(registry.RegistryError, match="entries"):
        registry.extract_bundle_archive(archive, tmp_path / "out", 10_000_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # work, not wall-clock time: of the 500 MiB of headers, what tar's buffers took (~1 MiB)
    assert sum(delivered) < 4 * 1024 * 1024, sum(delivered)
    assert peak < 20 * 1024 * 1024, peak


def test_an_archive_member_over_the_limit_is_refused_before_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: one 4 GiB member of zeros took 13.6 s (the data was decompressed to be skipped).
    archive = tmp_path / "model.tar.gz"
    mib = 1024 * 1024
    archive.write_bytes(_gzip_members((_header("model.onnx", 4096 * mib), 1),
                                      (b"\0" * mib, 4096), (b"\0" * 1024, 1)))
    delivered = _count_unpacked_bytes(monkeypatch)
    with pytest.raises(registry.RegistryError, match="more than"):
        registry.extract_bundle_archive(archive, tmp_path / "out", 256 * mib)
    assert sum(delivered) < 4 * mib, sum(delivered)  # of the member's 4 GiB
    assert not (tmp_path / "out" / "model.onnx").exists()


@pytest.mark.parametrize(
    "name", ["//etc/evil.txt", "./../evil.txt", "a/./../../evil.txt", "a\\..\\..\\evil.txt"]
)
def test_archive_member_names_are_confined_after_normalisation(
    tmp_path: Path, name: str
) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(registry.RegistryError):
        registry.extract_bundle_archive(archive, tmp_path / "out", 10_000)
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


# -- training uploads: any shape gives a reason, never an exception --------------------------

HOSTILE_HEADS: dict[str, tuple[str, bytes]] = {
    "deep-jsonl": ("training-data/deep.jsonl", b"[" * 5000 + b"\n"),
    "deep-object-jsonl": ("training-data/deep.jsonl",
                          b'{"converted": 1, "features": ' + b'{"a":' * 5000 + b"1"
                          + b"}" * 5001 + b"\n"),
    "deep-inside-lead": ("training-data/deep.jsonl",
                         b'{"converted": 1, "property_data": {"x": ' + b"[" * 900 + b"]" * 900
                         + b"}}\n"),
    "huge-int": ("training-data/big.jsonl",
                 b'{"converted": 1, "property_data": {"list_price": ' + b"9" * 5000 + b"}}\n"),
    "huge-int-target": ("training-data/big.jsonl", b'{"converted": ' + b"1" * 5000 + b"}\n"),
    "nul-csv": ("training-data/nul.csv", b"converted,\x00\x00\x00\n1,2\n"),
    "binary-csv": ("training-data/bin.csv", bytes(range(256)) * 10),
    "utf16-csv": ("training-data/u16.csv", "converted,a\n".encode("utf-16")),
    "latin1-jsonl": ("training-data/l1.jsonl", '{"converted": 1, "x": "é"}\n'.encode("latin-1")),
    "gzip-as-csv": ("training-data/z.csv", gzip.compress(b"converted\n1\n" * 100)),
    "only-newlines": ("training-data/n.csv", b"\n\n\n\n"),
    "bom-only": ("training-data/b.csv", b"\xef\xbb\xbf"),
    "surrogate-escape": ("training-data/s.jsonl", b'{"converted": 1, "x": "\\ud800"}\n'),
    "nan-target": ("training-data/n.jsonl", b'{"converted": NaN}\n'),
    "csv-huge-field": ("training-data/f.csv", b'"' + b"a" * 200_000 + b'"\n'),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADS))
def test_a_hostile_upload_head_gives_reasons_never_an_exception(case: str) -> None:
    from leadscore.registry import retraining

    key, head = HOSTILE_HEADS[case]
    reasons = retraining.check_training_head(key, head, complete=True)
    assert reasons and all(isinstance(r, str) and r for r in reasons), reasons
    assert all(len(r) < 2000 for r in reasons), "a reason must not echo the upload"


def test_an_upload_over_the_size_limit_is_refused() -> None:
    from leadscore.registry import retraining

    settings = RetrainSettings(max_upload_bytes=1000)
    assert retraining.check_upload_size(1001, settings)
    assert "TRAINING_MAX_UPLOAD_BYTES" in str(retraining.check_upload_size(1001, settings))
    assert retraining.check_upload_size(1000, settings) is None


@pytest.mark.parametrize(
    ("line", "jsonl", "fragment"),
    [
        (b"[" * 5000, True, "nested"),
        (b'{"a": 1}', True, None),
        (b"[1, 2]", True, "object"),
        (b"\xff\xfe", False, "UTF-8"),
        (b"a,b\x00", False, "NUL"),
        (b"x" * 70_000, False, "longer"),
        (b"0.5,0.5,1", False, None),
    ],
)
def test_row_problem_names_what_is_wrong_with_a_row(
    line: bytes, jsonl: bool, fragment: str | None
) -> None:
    from leadscore.registry import retraining

    problem = retraining.row_problem(line, jsonl=jsonl,
                                     settings=RetrainSettings(max_line_bytes=65_536))
    if fragment is None:
        assert problem is None
    else:
        assert problem is not None and fragment in problem


def test_the_local_store_refuses_keys_that_leave_its_root(tmp_path: Path) -> None:
    from leadscore.registry import LocalObjectStore

    root = tmp_path / "store"
    (root / "models").mkdir(parents=True)
    (root / "models" / "out").symlink_to(tmp_path)
    store = LocalObjectStore(root)
    for key in ["models/out/evil.json", "/etc/evil.json", "models/../../evil.json",
                "models//evil.json", "models\\..\\evil.json"]:
        with pytest.raises(ValueError, match="invalid store key"):
            store.put_bytes(key, b"{}")
    assert not (tmp_path / "evil.json").exists()
    store.put_bytes("models/ok.json", b"{}")
    assert store.get_bytes("models/ok.json") == b"{}"
