"""The score function's log lines: `LeanFormatter` writes what Powertools' formatter writes."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from leadscore.adapters.log_format import LeanFormatter

CONTEXT_KEYS: dict[str, Any] = {
    "service": "score", "sampling_rate": None, "cold_start": False,
    "function_name": "ScoreFunction", "function_memory_size": 1024,
    "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:ScoreFunction",
    "function_request_id": "req-1", "correlation_id": "3f1c2a90", "contact_id": "lead_1",
}


def _record(msg: Any, *args: Any, level: int = logging.INFO, exc_info: Any = None,
            extra: dict[str, Any] | None = None) -> logging.LogRecord:
    source = logging.getLogger("leadscore-test-log-format")
    return source.makeRecord(source.name, level, __file__, 42, msg, args, exc_info,
                             func="score", extra=extra)


def _both(record: logging.LogRecord, **keys: Any) -> tuple[str, str]:
    powertools, lean = LambdaPowertoolsFormatter(), LeanFormatter()
    for formatter in (powertools, lean):
        formatter.append_keys(**{**CONTEXT_KEYS, **keys})
    twin = logging.makeLogRecord(dict(record.__dict__))
    return powertools.format(record), lean.format(twin)


def _exc_info() -> Any:
    try:
        raise ValueError("boom")
    except ValueError:
        return sys.exc_info()


@pytest.mark.parametrize("record", [
    _record("scored", extra={"predicted_class": "hot", "source": "ensemble", "cached": False,
                             "model_version": "lsm-1", "model_scope": None}),
    _record("invalid request", extra={"paths": ["features.x"], "error_count": 1}),
    _record("Überprüft", extra={"value": object.__new__(object).__class__}),  # default=str
    _record("not found"),  # could be JSON ("null"...): Powertools' own path
    _record("true"), _record("123"), _record('{"a": 1}'), _record(" spaced"),
    _record("scored %s", "with args"),
    _record("unexpected error", level=logging.ERROR, exc_info=_exc_info()),
    _record({"a": 1}),
])
def test_lean_formatter_writes_what_powertools_writes(record: logging.LogRecord) -> None:
    expected, got = _both(record)
    assert got == expected
    json.loads(got)


def test_lean_formatter_keeps_the_trace_id_and_every_appended_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-67a3b1c2-abc;Parent=1;Sampled=1")
    expected, got = _both(_record("scored", extra={"cached": True}), location_id="loc_1")
    assert got == expected
    line = json.loads(got)
    assert line["xray_trace_id"] == "1-67a3b1c2-abc"
    assert {"correlation_id", "contact_id", "location_id", "function_request_id",
            "timestamp", "level", "location"} <= set(line)


def test_the_timestamp_moves_with_the_second() -> None:
    lean = LeanFormatter()
    first, later = _record("scored"), _record("scored")
    later.created, later.msecs = first.created + 1.5, (first.msecs + 500) % 1000
    for record in (first, later, first):
        assert lean.formatTime(record) == LambdaPowertoolsFormatter().formatTime(record)


def test_the_score_function_logs_through_it() -> None:
    from functions.score import app

    assert isinstance(app.logger.registered_formatter, LeanFormatter)
