"""Capture every log line the functions write (Powertools loggers and stdlib loggers alike),
formatted as they would reach CloudWatch, for assertions about what logs contain."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str], formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "_reliability_captured", False):
            return  # already caught by a Powertools logger's own handler (it propagates)
        if self.formatter is not None:
            self.sink.append(self.format(record))
            record._reliability_captured = True
            return
        # stdlib loggers: the message plus every extra attribute, as a JSON formatter would
        fields = {k: v for k, v in record.__dict__.items()
                  if k not in {"args", "msg", "_reliability_captured"}}
        fields["message"] = record.getMessage()
        if record.exc_info:
            fields["exception"] = logging.Formatter().formatException(record.exc_info)
        self.sink.append(json.dumps(fields, default=str))


@contextmanager
def captured_logs(*powertools_loggers: Any) -> Iterator[list[str]]:
    """Lines logged while inside; `powertools_loggers` are Powertools `Logger` objects (their
    own formatter is used), everything else is caught at the root logger."""
    lines: list[str] = []
    attached: list[tuple[logging.Logger, logging.Handler, int]] = []
    for pt in powertools_loggers:
        inner: logging.Logger = pt._logger
        handler = _ListHandler(lines, pt.registered_formatter)
        attached.append((inner, handler, inner.level))
        inner.addHandler(handler)
        inner.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root_handler = _ListHandler(lines, None)
    attached.append((root, root_handler, root.level))
    root.addHandler(root_handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        for lg, attached_handler, level in attached:
            lg.removeHandler(attached_handler)
            lg.setLevel(level)
