"""The real-estate default answers exactly as before custom schemas existed.

The golden answers were recorded with main's code before the custom-schema work
(`tests/scoring/default_contract/golden.py --write --code <that checkout>`); the seed's sample
lead (events/score_request.json) and the other scoring events must still be answered byte for
byte the same, apart from `prediction_timestamp` and `model_version`.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent / "default_contract"


def _golden_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("golden_default", HERE / "golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_lead_answers_are_byte_identical() -> None:
    golden = _golden_module()
    want = json.loads((HERE / "answers.json").read_text())
    got = golden.record(golden.ROOT)
    assert set(got) == set(want)
    for name in want:
        assert got[name]["status"] == want[name]["status"], name
        assert got[name]["body"] == want[name]["body"], name
    sample = json.loads(want["score_request"]["body"])
    assert sample["source"] == "ensemble" and sample["explained"] is True


def test_the_mask_hides_only_time_and_version() -> None:
    golden = _golden_module()
    body = '{"a":1,"prediction_timestamp":"2026-01-01T00:00:00.000Z","model_version":"lsm-x"}'
    assert golden.mask(body) == ('{"a":1,"prediction_timestamp": "<time>",'
                                 '"model_version": "<version>"}')
