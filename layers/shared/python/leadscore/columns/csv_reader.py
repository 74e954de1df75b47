"""The one CSV reader: CRM exports as they come, streamed record by record.

Training (``training/train_data.py``, ``training/schema_infer.py``) and the retrain split
(``leadscore.registry.split``) read CSV only through here, so a file the split cuts into whole
records is the file training reads. Standard library only (the retrain function runs in
Lambda with numpy and no pandas) and streaming: one record in memory at a time.

What it accepts, sniffed from the first ``SNIFF_BYTES``:

- separators ``,``, ``;`` and tab (the one that gives the header and the first records the
  same number of fields; ties go to the most fields);
- UTF-8 with or without a byte-order mark, else Windows-1252 / Latin-1 (spreadsheets on
  Windows save those); a line that is not UTF-8 in a UTF-8 file is read as Windows-1252;
- CRLF or LF line ends, blank lines (skipped);
- quoted fields holding separators, doubled quotes and line breaks (a "Notes" column): a
  record ends only where its quotes are balanced, so it stays one record;
- trailing empty columns (``a;b;c;`` with an empty last header): dropped;
- comma decimals (``1234,56``, ``1.234,56``) in a ``;`` or tab file whose numbers do not use
  decimal points: converted to ``1234.56`` in the cells handed out (the raw bytes of a record
  are never changed);

and what it refuses (``CsvRefused``, one line with the line number and what to do next): a
UTF-16 file, a quote that never closes, a record longer than ``MAX_RECORD_LINES`` lines or
``MAX_RECORD_BYTES``, a record with more or fewer fields than the header, a column without a
name in the middle of the header.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SNIFF_BYTES = 64 * 1024
SNIFF_RECORDS = 50
MAX_RECORD_LINES = 2_000  # a Notes field of thousands of lines is a quote that never closed
MAX_RECORD_BYTES = 1024 * 1024
DELIMITERS = (",", ";", "\t")
_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_BOM = codecs.BOM_UTF8
_COMMA_DECIMAL = re.compile(r"[+-]?(\d+|\d{1,3}(\.\d{3})+),\d+")
_DOT_DECIMAL = re.compile(r"[+-]?\d*\.\d+")
WIDTH_HINT = "a value holding the separator must be quoted"
SAVE_AS = "save it again as CSV UTF-8 (comma or semicolon separated) from your spreadsheet"


class CsvRefused(ValueError):
    """The file cannot be read as CSV; the message names the line and what to do next."""


class EmptyCsv(CsvRefused):
    """Not even a header line."""


@dataclass(frozen=True)
class Dialect:
    """How a file is written: sniffed once from its head."""

    delimiter: str = ","
    encoding: str = "utf-8"  # "utf-8" (a BOM is dropped) or "cp1252"
    decimal_comma: bool = False

    def describe(self) -> str:
        parts = [f"{_NAMES.get(self.delimiter, repr(self.delimiter))}-separated",
                 "UTF-8" if self.encoding == "utf-8" else "Windows-1252/Latin-1"]
        if self.decimal_comma:
            parts.append("comma decimals")
        return ", ".join(parts)


@dataclass(frozen=True)
class Record:
    """One CSV record: its first physical line (1-based), its bytes as read (without the
    final line end) and its cells as text."""

    line: int
    raw: bytes
    cells: list[str] = field(default_factory=list)


def _decode(data: bytes, encoding: str) -> str:
    if encoding == "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _physical_records(lines: Iterable[bytes], encoding: str,
                      name: str) -> Iterator[tuple[int, bytes, str]]:
    """(first line, raw bytes, text) per record: physical lines joined while a quote is open.

    RFC 4180 doubles a quote inside a quoted field, so a record is complete exactly when it
    holds an even number of quote characters."""
    start = 0
    parts: list[bytes] = []
    texts: list[str] = []
    quotes = 0
    size = 0
    for lineno, line in enumerate(lines, start=1):
        if lineno == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if not parts:
            start = lineno
        text = _decode(line, encoding)
        parts.append(line)
        texts.append(text)
        quotes += text.count('"')
        size += len(line)
        if quotes % 2 == 0:
            raw = b"".join(parts).rstrip(b"\r\n")
            yield start, raw, "".join(texts).rstrip("\r\n")
            parts, texts, quotes, size = [], [], 0, 0
        elif len(parts) > MAX_RECORD_LINES or size > MAX_RECORD_BYTES:
            raise CsvRefused(
                f"{name}: line {start}: a quoted field opened there runs over "
                f"{len(parts) - 1} lines; a quote (\") is probably missing or stray on that "
                f"line: fix it, or {SAVE_AS}")
    if parts:
        raise CsvRefused(
            f"{name}: line {start}: a quoted field opened there never closes (the file ends "
            f"inside it); fix the quote (\") on that line, or {SAVE_AS}")


def _cells(text: str, delimiter: str) -> list[str]:
    if '"' not in text:  # most records: no quoting to undo, a plain split is the same answer
        return text.split(delimiter)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    return next(reader, [])


def _encoding_of(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvRefused(f"the file is UTF-16 (\"Unicode text\"); {SAVE_AS}")
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=False)  # a character cut at the end of the head is fine
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def sniff(head: bytes, name: str = "the file") -> Dialect:
    """The dialect of a file from its first bytes (``SNIFF_BYTES`` are plenty)."""
    encoding = _encoding_of(head)
    lines = head.splitlines(keepends=True)
    if len(head) >= SNIFF_BYTES and lines and not lines[-1].endswith(b"\n"):
        lines = lines[:-1]  # the head cut a line in two
    texts: list[str] = []
    try:
        for _, _, text in _physical_records(lines, encoding, name):
            if text.strip():
                texts.append(text)
            if len(texts) > SNIFF_RECORDS:
                break
    except CsvRefused:
        pass  # a long quoted field cut by the head: judge on the records before it
    if not texts:
        return Dialect(encoding=encoding)
    best: tuple[int, int, str] | None = None
    for delimiter in DELIMITERS:
        try:
            counts = [len(_cells(t, delimiter)) for t in texts]
        except csv.Error:
            continue
        width = counts[0]
        if width < 2:
            continue
        agree = sum(c == width for c in counts[1:])
        consistent = int(agree >= 0.9 * (len(counts) - 1))
        candidate = (consistent, width, delimiter)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    delimiter = best[2] if best is not None else ","
    decimal_comma = False
    if delimiter != ",":
        comma = dot = 0
        for text in texts[1:]:
            try:
                cells = _cells(text, delimiter)
            except csv.Error:
                continue
            for cell in cells:
                c = cell.strip()
                if _COMMA_DECIMAL.fullmatch(c):
                    comma += 1
                elif _DOT_DECIMAL.fullmatch(c):
                    dot += 1
        decimal_comma = comma > 0 and comma >= dot
    return Dialect(delimiter=delimiter, encoding=encoding, decimal_comma=decimal_comma)


def _decimal(cell: str) -> str:
    c = cell.strip()
    if _COMMA_DECIMAL.fullmatch(c):
        return c.replace(".", "").replace(",", ".")
    return cell


class CsvReader:
    """A CSV stream: ``dialect``, ``header`` (stripped names) and ``records()``.

    ``lines`` is any iterable of byte lines (an open binary file, S3's ``iter_lines``); the
    reader buffers ``SNIFF_BYTES`` of it to sniff the dialect, then streams.
    """

    def __init__(self, lines: Iterable[bytes], name: str = "the file",
                 dialect: Dialect | None = None) -> None:
        self.name = name
        it = iter(lines)
        head: list[bytes] = []
        size = 0
        for line in it:
            head.append(line)
            size += len(line)
            if size >= SNIFF_BYTES:
                break
        self.dialect = dialect or sniff(b"".join(head), name)
        self._records = self._parse(_physical_records(_chain(head, it), self.dialect.encoding,
                                                      name))
        first = next(self._records, None)
        if first is None:
            raise EmptyCsv(f"{name} is empty: export the leads again with a header line")
        self.header_record = first
        names = [h.strip() for h in first.cells]
        while names and not names[-1]:
            names.pop()  # "a;b;c;": spreadsheets leave a trailing empty column
        blank = [str(i + 1) for i, n in enumerate(names) if not n]
        if blank:
            raise CsvRefused(
                f"{name}: line {first.line}: column {', '.join(blank)} of the header has no "
                "name; give it a name in the first line or delete that column")
        if len(names) < 2:
            raise CsvRefused(
                f"{name}: the header has {len(names)} column ({first.cells[:1]!r}) with "
                "comma, semicolon and tab alike; check that the first line names the columns, "
                f"or {SAVE_AS}")
        self.header = names
        self.width = len(names)

    def _parse(self, physical: Iterator[tuple[int, bytes, str]]) -> Iterator[Record]:
        delimiter = self.dialect.delimiter
        for line, raw, text in physical:
            if not text.strip():
                continue
            try:
                cells = _cells(text, delimiter)
            except csv.Error as exc:
                raise CsvRefused(
                    f"{self.name}: line {line}: not readable as CSV ({exc}); a quote (\") "
                    f"inside a value must be doubled and the value quoted: fix that line, or "
                    f"{SAVE_AS}") from exc
            yield Record(line, raw, cells)

    def records(self, *, check_width: bool = True) -> Iterator[Record]:
        """Data records (blank ones skipped), comma decimals converted, empty cells past the
        header's width dropped. Raises CsvRefused at the first record of another width
        (``check_width=False``: handed out as they are, for a caller that lists them all)."""
        width = self.width
        decimal = self.dialect.decimal_comma
        sep = _NAMES[self.dialect.delimiter]
        for record in self._records:
            cells = record.cells
            if len(cells) > width and not any(c.strip() for c in cells[width:]):
                cells = cells[:width]
            if check_width and len(cells) != width:
                raise CsvRefused(
                    f"{self.name}: line {record.line} has {len(cells)} fields where the "
                    f"header has {width} ({sep}-separated); a value holding the separator "
                    f"must be quoted: fix that line, or {SAVE_AS}")
            if decimal:
                cells = [_decimal(c) for c in cells]
            yield Record(record.line, record.raw, cells)

    def raw_records(self) -> Iterator[Record]:
        """Records as read (cells unconverted, any width): the split hashes their bytes."""
        return self._records


def _chain(head: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from head
    yield from rest


def header_names(first_line: str) -> list[str]:
    """The column names of a header line, separator sniffed as the reader does (the retrain
    function's head check sees only the first line)."""
    reader = CsvReader([first_line.encode("utf-8")], "the upload")
    return reader.header


def read_bytes(data: bytes, name: str = "the file") -> tuple[list[str], list[list[str]]]:
    """Header and every data record's cells of an in-memory CSV (the gate's part, an
    --eval file); records of another width are handed out as they are (the caller counts
    them as unreadable rows). An empty file has no header and no rows."""
    try:
        reader = CsvReader(data.splitlines(keepends=True), name)
    except EmptyCsv:
        return [], []
    return reader.header, [r.cells for r in reader.records(check_width=False)]


def read_all(path: Path, *, check_width: bool = True) -> tuple[list[str], list[Record]]:
    """Header and every data record of a file (training reads whole files)."""
    with Path(path).open("rb") as handle:
        reader = CsvReader(handle, Path(path).name)
        return reader.header, list(reader.records(check_width=check_width))
