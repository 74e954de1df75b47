"""tools/serve.py answers broken HTTP framing with 400/411/413 and reads chunked
bodies (raw sockets against the real server class on a free loopback port)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.http import serving
from tools import serve


class Recorder:
    """Stands in for the Lambda handler: records the body it was given, answers 200."""

    def __init__(self) -> None:
        self.bodies: list[str | None] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.bodies.append(event.get("body"))
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"ok": True})}


@pytest.fixture
def server() -> Iterator[tuple[int, Recorder]]:
    recorder = Recorder()
    httpd = serve.make_server("127.0.0.1", 0, recorder, None, max_body=1000)
    with serving(httpd):
        yield httpd.server_address[1], recorder


def exchange(port: int, raw: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status_line = data.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1."), data[:200]
    return int(status_line.split()[1]), data.split(b"\r\n\r\n", 1)[1]


def request(headers: str, body: bytes = b"") -> bytes:
    return (f"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n").encode() + body


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("Content-Length: abc\r\n", 400),
        ("Content-Length: -1\r\n", 400),
        ("Content-Length: 1e3\r\n", 400),
        ("Content-Length: 5\r\nContent-Length: 6\r\n", 400),
        ("", 411),
        ("Content-Length: 1001\r\n", 413),
        ("Content-Length: 99999999999999999999999\r\n", 413),
        ("Transfer-Encoding: gzip\r\n", 501),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
    ],
    ids=["text", "negative", "float", "two-lengths", "no-length", "over", "enormous",
         "unknown-coding", "chunked-and-length"],
)
def test_broken_framing_gets_a_json_4xx(
    server: tuple[int, Recorder], headers: str, status: int
) -> None:
    port, recorder = server
    got, body = exchange(port, request(headers, b"{}"))
    assert got == status, body
    assert "error" in json.loads(body) or "message" in json.loads(body)
    assert recorder.bodies == []


def test_a_chunked_body_is_read(server: tuple[int, Recorder]) -> None:
    port, recorder = server
    chunks = b'5\r\n{"a":\r\n3;ext=1\r\n 1}\r\n0\r\nTrailer: x\r\n\r\n'
    got, body = exchange(port, request("Transfer-Encoding: chunked\r\n", chunks))
    assert got == 200, body
    assert recorder.bodies == ['{"a": 1}']


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nabc", b"-1\r\nabc\r\n0\r\n\r\n"],
    ids=["bad-size", "truncated", "negative-size"],
)
def test_a_broken_chunked_body_is_a_400(server: tuple[int, Recorder], chunks: bytes) -> None:
    port, recorder = server
    got, _ = exchange(port, request("Transfer-Encoding: chunked\r\n", chunks))
    assert got == 400
    assert recorder.bodies == []


def test_a_chunked_body_over_the_limit_is_a_413(server: tuple[int, Recorder]) -> None:
    port, recorder = server
    chunk = b"x" * 600
    chunks = b"258\r\n" + chunk + b"\r\n" + b"258\r\n" + chunk + b"\r\n0\r\n\r\n"
    got, _ = exchange(port, request("Transfer-Encoding: chunked\r\n", chunks))
    assert got == 413
    assert recorder.bodies == []


def test_a_get_without_a_body_needs_no_length(server: tuple[int, Recorder]) -> None:
    port, _ = server
    raw = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    got, _ = exchange(port, raw)
    assert got == 200
