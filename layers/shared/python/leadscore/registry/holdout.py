"""The platform-held evaluation set: the most recent resolved leads, which no candidate sees.

The gate part of an upload comes from the same file as the training part, so whatever is wrong
with the file (three in four non-conversions dropped, relabelled conversions, a column only
filled in after the outcome) is wrong with its gate part too, and invisible there. The loop's
labelled export therefore keeps its most recent resolved leads back (a temporal hold-out:
``loop/export.py`` writes them here and only the older rows to ``training-data/auto/``), with
the raw values of every exported column as they were when the lead was scored. The promote
gate measures every candidate and the champion on this set as well as on the upload's own gate
part (``registry/gate.py``).

Layout (the artifact bucket, or a local store's directory; the training role cannot read
``evaluation/``): ``evaluation/holdout/leads.jsonl`` (training-format JSON Lines) and
``evaluation/holdout/holdout.json`` = ``{"rows", "converted", "from_ms", "to_ms",
"written_at"}``. Each export replaces both: the set always holds the newest resolved leads,
and rows an earlier set held move into training only once they are older than the new set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from leadscore.columns.labels import DEFAULT_RULE, LabelRule
from leadscore.registry.gate import TARGET, EvalRows, read_rows
from leadscore.registry.store import ObjectNotFound, ObjectStore

HOLDOUT_PREFIX = "evaluation/holdout/"
HOLDOUT_KEY = HOLDOUT_PREFIX + "leads.jsonl"
HOLDOUT_RECORD_KEY = HOLDOUT_PREFIX + "holdout.json"
SOURCE = "platform-held evaluation set (" + HOLDOUT_KEY + ")"


def write_holdout(store: ObjectStore, body: bytes, record: Mapping[str, Any]) -> None:
    """Replace the set: the rows first, then the record that describes them."""
    store.put_bytes(HOLDOUT_KEY, body, "application/x-ndjson")
    store.put_bytes(HOLDOUT_RECORD_KEY, json.dumps(dict(record), sort_keys=True).encode(),
                    "application/json")


def read_holdout(store: ObjectStore, *, target: str = TARGET,
                 rule: LabelRule = DEFAULT_RULE) -> EvalRows | None:
    """The set as raw rows labelled by `target`, or None when the platform holds none yet."""
    try:
        data = store.get_bytes(HOLDOUT_KEY)
    except (ObjectNotFound, FileNotFoundError):
        return None
    rows, _ = read_rows(data, jsonl=True, source=SOURCE, target=target, rule=rule)
    return rows if rows.n else None
