"""One label parser: the same answer for every target spelling across the split, the gate,
training and serving (the loop's labelled rows and outcome statuses)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from leadscore.bundle import SCHEMA_FILE
from leadscore.columns.labels import LabelRule, parse_label
from leadscore.columns.schema import Schema
from leadscore.experiments.definition import Experiment
from leadscore.experiments.rows import resolved
from leadscore.features import FEATURE_NAMES
from leadscore.loop.outcomes import OutcomeRules
from leadscore.registry import retraining
from leadscore.registry.gate import read_rows, read_rows_for_bundle
from leadscore.registry.split import split_lines
from leadscore.settings import MIN_CONVERSIONS
from schema_infer import Table, drop_unresolved, target_vector
from train_data import load_csv, load_jsonl

DEFAULT_TABLE = [
    *[(s, 1) for s in ("1", "1.00", "1e0", "true", "True", "yes", "YES", " 1 ")],
    *[(s, 0) for s in ("0", "0.0", "false", "no", "No")],
    *[(s, None) for s in ("", "open", "2", "-1", "maybe", "won", "nan", "0.5")],
]
WON_TABLE = [
    *[(s, 1) for s in ("won", "Won", "WON", " won ")],
    *[(s, 0) for s in ("lost", "Lost", "abandoned", "open", "1", "yes")],
    *[(s, None) for s in ("", "  ")],
]
WON_LOST_TABLE = [
    *[(s, 1) for s in ("won", "Won", "WON")],
    *[(s, 0) for s in ("lost", "LOST")],
    *[(s, None) for s in ("", "open", "abandoned", "yes")],
]


def _counts_label(counts: dict[str, int]) -> int | None:
    assert counts["rows"] == 1
    return 1 if counts["converted"] else 0 if counts["not_converted"] else None


def split_label(value: str, target: str, positive: tuple[str, ...],
                negative: tuple[str, ...]) -> int | None:
    lines = [f"{target},x\n".encode(), f'"{value}",1\n'.encode()]
    result = split_lines(lines, csv_format=True, write_train=lambda b: None,
                         write_gate=lambda b: None, target=target, positive=positive,
                         negative=negative)
    part = result.gate if result.gate.rows else result.train
    return _counts_label(part.as_dict())


def gate_label_default(value: str) -> int | None:
    header = ",".join([*FEATURE_NAMES, "converted"])
    row = ",".join(["1.0"] * len(FEATURE_NAMES) + [f'"{value}"'])
    rows, bad = read_rows(f"{header}\n{row}\n".encode(), jsonl=False, source="t")
    return None if bad else int(rows.y[0])


def gate_label_custom(value: str, tmp: Path, positive: tuple[str, ...],
                      negative: tuple[str, ...]) -> int | None:
    schema = Schema.from_dict({"target": "status", "positive": list(positive),
                               "negative": list(negative),
                               "columns": [{"name": "x", "kind": "numeric", "fill": 0.0}]})
    (tmp / SCHEMA_FILE).write_text(json.dumps(schema.to_dict()))
    rows, bad = read_rows_for_bundle(f'status,x\n"{value}",1\n'.encode(), jsonl=False,
                                     bundle_dir=tmp, source="t")
    return None if bad else int(rows.y[0])


def training_label_default(value: str, tmp: Path) -> int | None:
    """The real-estate CSV path: MIN_CONVERSIONS converted + as many not, plus the row under
    test (training refuses fewer of either outcome)."""
    n = MIN_CONVERSIONS
    header = ",".join([*FEATURE_NAMES, "converted"])
    feats = ",".join(["1.0"] * len(FEATURE_NAMES))
    body = [header] + [f"{feats},1"] * n + [f"{feats},0"] * n + [f'{feats},"{value}"']
    path = tmp / "leads.csv"
    path.write_text("\n".join(body) + "\n")
    ds = load_csv([path])
    if ds.n_rows == 2 * n:
        return None
    return int(ds.y.sum()) - n


LEAD = {"property_data": {"list_price": 500000}, "psychology_profile": {"urgency_level": "high"}}


def _jsonl(value: str) -> bytes:
    return (json.dumps({**LEAD, "converted": value}) + "\n").encode()


def split_label_jsonl(value: str) -> int | None:
    result = split_lines([_jsonl(value)], csv_format=False, write_train=lambda b: None,
                         write_gate=lambda b: None)
    part = result.gate if result.gate.rows else result.train
    return _counts_label(part.as_dict())


def gate_label_jsonl(value: str) -> int | None:
    rows, bad = read_rows(_jsonl(value), jsonl=True, source="t")
    return None if bad else int(rows.y[0])


def training_label_jsonl(value: str, tmp: Path) -> int | None:
    n = MIN_CONVERSIONS
    lines = [json.dumps({**LEAD, "converted": c}) for c in [1] * n + [0] * n]
    path = tmp / "leads.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + _jsonl(value))
    ds = load_jsonl([path])
    if ds.n_rows == 2 * n:
        return None
    return int(ds.y.sum()) - n


def upload_accepted(value: str) -> bool:
    """The retrain function's head check lets the upload through whatever the spelling: the
    job resolves it or leaves the row out and counts it, as training does."""
    return retraining.check_training_head("training-data/a.jsonl", _jsonl(value),
                                          complete=True) == []


def training_label_custom(value: str, positive: tuple[str, ...],
                          negative: tuple[str, ...]) -> int | None:
    yes, no = (positive[0], negative[0] if negative else "lost") if positive else ("1", "0")
    cells = [yes] * 60 + [no] * 60 + [value]
    table = Table(["status", "x"], {"status": cells, "x": ["1"] * len(cells)}, "t")
    kept, _ = drop_unresolved(table, "status", positive, negative)
    if kept.n_rows == 120:
        return None
    y, _ = target_vector(kept, "status", positive, negative)
    return int(y[-1])


def serving_label_rows(value: str) -> int | None:
    experiment = Experiment(name="e", variants=("champion",), allocation=(100,), shadow=None,
                            status="running",
                            created_at=datetime(2026, 1, 1, tzinfo=UTC).isoformat())
    leads = resolved([{"experiment": "e", "variant": "champion", "predicted_score": 0.4,
                       "converted": value}], experiment)
    return int(leads[0].converted) if leads else None


@pytest.mark.parametrize(("value", "expected"), DEFAULT_TABLE)
def test_default_spellings_agree_everywhere(value: str, expected: int | None,
                                            tmp_path: Path) -> None:
    answers = {
        "parser": parse_label(value),
        "split (real-estate)": split_label(value, "converted", (), ()),
        "split (own target)": split_label(value, "status", (), ()),
        "gate (real-estate)": gate_label_default(value),
        "gate (own columns)": gate_label_custom(value, tmp_path, (), ()),
        "training (real-estate)": training_label_default(value, tmp_path),
        "training (own columns)": training_label_custom(value, (), ()),
        "serving (labelled rows)": serving_label_rows(value),
        "split (JSON Lines)": split_label_jsonl(value),
        "gate (JSON Lines)": gate_label_jsonl(value),
        "training (JSON Lines)": training_label_jsonl(value, tmp_path),
    }
    assert answers == dict.fromkeys(answers, expected)
    assert upload_accepted(value)


@pytest.mark.parametrize(("value", "expected"), WON_TABLE)
def test_positive_won_without_negative_agrees_everywhere(value: str, expected: int | None,
                                                         tmp_path: Path) -> None:
    pos: tuple[str, ...] = ("won",)
    answers = {
        "parser": parse_label(value, pos),
        "split": split_label(value, "status", pos, ()),
        "gate": gate_label_custom(value, tmp_path, pos, ()),
        "training": training_label_custom(value, pos, ()),
    }
    assert answers == dict.fromkeys(answers, expected)


@pytest.mark.parametrize(("value", "expected"), WON_LOST_TABLE)
def test_positive_won_negative_lost_agrees_everywhere(value: str, expected: int | None,
                                                      tmp_path: Path) -> None:
    pos, neg = ("won",), ("lost",)
    answers = {
        "parser": parse_label(value, pos, neg),
        "split": split_label(value, "status", pos, neg),
        "gate": gate_label_custom(value, tmp_path, pos, neg),
        "training": training_label_custom(value, pos, neg),
        "serving (opportunity status)": OutcomeRules(
            converted_statuses=frozenset({"won"}),
            lost_statuses=frozenset({"lost"})).status_outcome(value.strip().lower()),
    }
    assert answers == dict.fromkeys(answers, expected)


def test_json_values_read_like_their_text() -> None:
    rule = LabelRule()
    assert [rule.label(v) for v in (True, False, 1, 0, 1.0, 0.0, None, 2)] == \
        [1, 0, 1, 0, 1, 0, None, None]


def test_a_yes_no_target_without_positive_counts_its_conversions_in_the_split() -> None:
    """The split used to count 0 conversions for a yes/no target given without --positive,
    so the gate refused a model training had accepted."""
    rows = [b"age,output\n"] + [f"{30 + i % 40},{'yes' if i % 4 == 0 else 'no'}\n".encode()
                                for i in range(400)]
    result = split_lines(rows, csv_format=True, write_train=io.BytesIO().write,
                         write_gate=io.BytesIO().write, target="output")
    converted = result.train.converted + result.gate.converted
    assert converted == 100
    assert result.train.unlabelled + result.gate.unlabelled == 0
    assert np.isclose(converted / 400, 0.25)
