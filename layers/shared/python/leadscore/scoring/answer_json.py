"""A lead score's compact JSON, written once per answer.

A fresh answer is written as JSON twice on the way out: by the memory cache (which keeps the
bytes) and by the route (the response body), whose answer is the same dict copied with keys
added after the service's own (``model_scope``, an experiment's ``variant`` ...). `remember`
writes the service's answer and keeps its text (one per thread); `dumps` writes an answer
that starts with the remembered one's items, each the very same object, as that text with
the added items appended: the bytes ``json.dumps`` would write, without writing the shared
part again. Anything else is written in full. Answers are extended, never edited in place
(`leadscore.scoring.cache.CachedScore` relies on the same), and the remembered items are a
snapshot, so an answer changed after it was remembered no longer matches.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

# built once: json.dumps with options builds an encoder for every call
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)
_last = threading.local()


def remember(answer: Mapping[str, Any]) -> str:
    """`answer`'s compact JSON, kept (with a snapshot of its items) for `dumps`."""
    text = _ENCODER.encode(answer)
    _last.snapshot = (tuple(answer.items()), text)
    return text


def dumps(answer: Mapping[str, Any]) -> str:
    """``json.dumps(answer, separators=(",", ":"))``, reusing the remembered answer's text
    when `answer` begins with exactly its items."""
    snapshot = getattr(_last, "snapshot", None)
    if snapshot is not None:
        items, text = snapshot
        if items and len(answer) >= len(items):
            given = iter(answer.items())
            if all(g[0] == k and g[1] is v for (k, v), g in zip(items, given, strict=False)):
                added = dict(given)
                if not added:
                    return str(text)
                return f"{text[:-1]},{_ENCODER.encode(added)[1:]}"
    return _ENCODER.encode(answer)
