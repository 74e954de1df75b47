"""Hostile input on the real local server (tools/serve.py, as `make serve` runs it): 1,000 hostile
requests after a warm-up — the amplification attacks of the issue, answers that used to be tens
of megabytes — and the server's memory stays flat (RSS growth ≤ 50 MiB) while no answer is
over its limit (6 MB per call, 1 MB per lead).

`HOSTILE_REQUESTS` (default 1000) sets the measured count; the figures are written to
.build/reliability/hostile.json for the README.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools import loadtest

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = int(os.environ.get("HOSTILE_REQUESTS", "1000"))
WARMUP = int(os.environ.get("HOSTILE_WARMUP", "200"))
MAX_CALL_BYTES = 6_000_000
MAX_LEAD_BYTES = 1_000_000
MAX_RSS_GROWTH_MIB = 50.0


def _lead(contact_id: str) -> dict[str, Any]:
    event = json.loads((ROOT / "events" / "score_request.json").read_text())
    lead: dict[str, Any] = json.loads(event["body"])
    lead["contact_id"] = contact_id
    return lead


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _empty_comparables(i: int) -> tuple[str, bytes]:
    lead = _lead(f"h-{i}")
    lead["features"]["market_data"]["comparables"] = [{}] * 300_000
    return "/score", _dumps(lead)


def _junk_comparables(i: int) -> tuple[str, bytes]:
    lead = _lead(f"h-{i}")
    lead["features"]["market_data"]["comparables"] = [0] * 400_000
    return "/score", _dumps(lead)


def _batch_of_empty_comparables(i: int) -> tuple[str, bytes]:
    # the batch: 1000 minimal leads with 290 empty comparables each (was 28 MB)
    lead = {"contact_id": f"h-{i}", "features": {"market_data": {"comparables": [{}] * 290}}}
    return "/score/batch", _dumps({"leads": [lead] * 1000})


def _unknown_vector_names(i: int) -> tuple[str, bytes]:
    names = {f"n{i}-{j}": 0.5 for j in range(5_000)}
    return "/score", _dumps({"contact_id": f"h-{i}", "feature_vector": names})


def _long_key(i: int) -> tuple[str, bytes]:
    return "/score", _dumps({"contact_id": f"h-{i}", "feature_vector": {"k" * 100_000: 1}})


def _huge_integer(i: int) -> tuple[str, bytes]:
    text = _dumps(_lead(f"h-{i}")).replace(b"800000", b"9" * 4400, 1)
    return "/score", text


def _deep(i: int) -> tuple[str, bytes]:
    return "/score", b"[" * 200_000


def _new_contacts(i: int) -> tuple[str, bytes]:
    # Valid leads under new contact ids: every one is a new cache entry (the cache must stay
    # bounded by entries and bytes).
    leads = [_lead(f"h-{i}-{j}-" + "c" * 100) for j in range(30)]
    return "/score/batch", _dumps({"leads": leads})


def _batch_of_invalid(i: int) -> tuple[str, bytes]:
    bad = {"contact_id": i, "feature_vector": [True] * 20}
    return "/score/batch", _dumps({"leads": [bad] * 1000})


ATTACKS: list[Callable[[int], tuple[str, bytes]]] = [
    _empty_comparables, _junk_comparables, _batch_of_empty_comparables, _unknown_vector_names,
    _long_key, _huge_integer, _deep, _new_contacts, _batch_of_invalid,
]


@pytest.fixture(scope="module")
def server(trained_bundle: Path) -> Iterator[tuple[int, Any]]:
    port = loadtest.free_port()
    with loadtest.local_server(
        port, model_uri=f"file://{trained_bundle}",
        extra_env={"POWERTOOLS_LOG_LEVEL": "ERROR", "OMP_NUM_THREADS": "1"},
    ) as proc:
        yield port, proc


def _send(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    return answer.status, answer.read()


def _check(path: str, status: int, data: bytes, label: str) -> None:
    assert status < 500, (label, status, data[:300])
    assert len(data) <= MAX_CALL_BYTES, (label, len(data))
    if path == "/score/batch" and status == 200:
        for result in json.loads(data)["results"]:
            assert len(json.dumps(result)) <= MAX_LEAD_BYTES, label
    elif status == 200:
        assert len(data) <= MAX_LEAD_BYTES, (label, len(data))


@pytest.mark.slow
def test_a_thousand_hostile_requests_keep_answers_and_memory_bounded(
    server: tuple[int, Any], request: pytest.FixtureRequest
) -> None:
    port, proc = server
    bodies = {attack.__name__: attack(0) for attack in ATTACKS}  # built once: the client's cost
    names = sorted(bodies)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    statuses: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    largest = 0

    def run(count: int, offset: int) -> None:
        nonlocal largest
        for n in range(count):
            name = names[(n + offset) % len(names)]
            path, body = bodies[name]
            if name == "_new_contacts":
                path, body = _new_contacts(offset + n)  # new contacts every time
            sent = time.perf_counter()
            status, data = _send(conn, path, body)
            seconds[name] += time.perf_counter() - sent
            _check(path, status, data, name)
            statuses[f"{name} {status}"] += 1
            largest = max(largest, len(data))

    run(WARMUP, 0)
    before = loadtest.rss_mb(proc.pid)
    started = time.perf_counter()
    run(REQUESTS, WARMUP)
    elapsed = time.perf_counter() - started
    after = loadtest.rss_mb(proc.pid)
    conn.close()
    assert before is not None and after is not None
    growth = after - before
    figures = {"requests": REQUESTS, "warmup": WARMUP, "seconds": round(elapsed, 1),
               "rss_before_mib": round(before, 1), "rss_after_mib": round(after, 1),
               "rss_growth_mib": round(growth, 1), "largest_answer_bytes": largest,
               "statuses": dict(sorted(statuses.items())),
               "seconds_by_attack": {k: round(v, 1) for k, v in sorted(seconds.items())}}
    out = ROOT / ".build" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    (out / "hostile.json").write_text(json.dumps(figures, indent=2) + "\n")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    line = (f"\nhostile: {REQUESTS} requests after {WARMUP} warm-up in {elapsed:.1f} s; "
            f"server RSS {before:.1f} -> {after:.1f} MiB ({growth:+.1f}); "
            f"largest answer {largest} bytes")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(line)
    assert growth <= MAX_RSS_GROWTH_MIB, figures
