"""Powertools' JSON log lines, written with less work per line.

`LambdaPowertoolsFormatter` spends most of a `/score` request's log line on work a plain
message never needs: it copies the record, tries to decode every message as JSON (raising and
catching an error for "scored"), formats the timestamp with `time.strftime` each time and
looks for exceptions and stack traces. `LeanFormatter` writes the same line, key for key and
byte for byte (tests/scoring/test_log_format.py compares the two), with the constant part of
the timestamp kept for the second it belongs to. Anything out of the ordinary (an exception,
%-arguments, a message that could be JSON, thread-local keys, a custom date format) goes
through Powertools' own code.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aws_lambda_powertools.logging.formatter import (
    RESERVED_LOG_ATTRS,
    LambdaPowertoolsFormatter,
    _get_context,
)

_RESERVED = frozenset(RESERVED_LOG_ATTRS)
# A message starting with one of these could decode as JSON (a number, a literal, NaN,
# Infinity, a string, an object ...), which Powertools would log decoded: left to it.
_MAYBE_JSON = frozenset("tfnNI")


class LeanFormatter(LambdaPowertoolsFormatter):
    """`LambdaPowertoolsFormatter` with a fast path for plain text messages."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kwargs.get("json_serializer") is None:
            # json.dumps with these options builds a new encoder for every line: one, built
            # once, writes the same text
            self.json_serializer = json.JSONEncoder(
                ensure_ascii=False, separators=(",", ":"), indent=self.json_indent,
                default=self.json_default,
            ).encode
        # (second, text before the milliseconds, text after): one tuple, so a thread never
        # reads one second's text with another's
        self._stamp: tuple[int, str, str] = (-1, "", "")

    def _plain(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        return (
            isinstance(msg, str) and msg[:1].isalpha() and msg[0] not in _MAYBE_JSON
            and not record.args and not record.exc_info and not record.stack_info
            and not _get_context().get()
        )

    def _default_time(self) -> bool:
        return not (self.use_rfc3339_iso8601 or self.datefmt or self.use_datetime_directive)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None or not self._default_time():
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, head, tail = self._stamp
        if second != cached:
            # "%Y-%m-%d %H:%M:%S,%F%z" around the milliseconds (%F): the same for a whole
            # second, whatever the milliseconds
            before, after = self.default_time_format.split(self.custom_ms_time_directive)
            stamp = self.converter(record.created)
            head, tail = time.strftime(before, stamp), time.strftime(after, stamp)
            self._stamp = (second, head, tail)
        return f"{head}{int(record.msecs):03d}{tail}"

    def format(self, record: logging.LogRecord) -> str:
        if not self._plain(record):
            return super().format(record)
        fields = record.__dict__
        fields["asctime"] = self.formatTime(record)
        line: dict[str, Any] = {}
        for key, value in self.log_format.items():
            if value and key in _RESERVED:
                if not isinstance(value, str):
                    return super().format(record)  # Powertools' own error
                line[key] = value % fields
            else:
                line[key] = value
        for key, value in fields.items():
            if key not in _RESERVED:
                line[key] = value
        line["message"] = record.msg
        for key in ("exception", "exception_name", "exception_notes"):
            line.setdefault(key, None)
        if self.serialize_stacktrace:
            line["stack_trace"] = None
        line["xray_trace_id"] = self._get_latest_trace_id()
        return self.serialize(log={k: v for k, v in line.items() if v is not None})
