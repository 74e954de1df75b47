"""`make serve`: the scoring API on http://127.0.0.1:3000, a local stand-in for
`sam local start-api` (no Docker). Each HTTP request becomes an API Gateway REST proxy event
(version 1.0) and goes through functions/score/app.py's lambda_handler; its answer is written
back. Same routes as the template: POST /score, POST /score/batch, POST /webhooks/ghl,
GET /model, GET /health, GET /oauth/callback; plus GET /openapi.json when openapi.json exists.

MODEL_URI defaults to the local store `make demo` fills (.demo/store/models/champion.json).

HTTP framing, checked before anything is invoked, as a front door must: a
Content-Length that is not a plain decimal number (`abc`, `-1`, `1e3`) or given twice with two
values is a 400; a body-carrying method without Content-Length or chunked encoding is a 411; a
body over the API Gateway payload limit (10 MiB, `max_body`) is a 413 without reading it;
`Transfer-Encoding: chunked` bodies are read (chunk extensions and trailers skipped; a bad chunk
size or a truncated body is a 400), any other transfer coding is a 501, and chunked together
with Content-Length a 400 (the request-smuggling shape). After a framing error the connection
is closed: the rest of the stream cannot be trusted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
ROUTES = {
    ("POST", "/score"), ("POST", "/score/batch"), ("POST", "/webhooks/ghl"),
    ("GET", "/model"), ("GET", "/health"), ("GET", "/oauth/callback"),
}
MAX_BODY = 10 * 1024 * 1024  # API Gateway's own payload limit
MAX_CHUNK_LINE = 4096  # a chunk-size line or a trailer line
MAX_TRAILERS = 64
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")


class FramingError(Exception):
    """A request whose body cannot be delimited; answered with `status` and closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
_LOCK = threading.Lock()  # one "container": invocations are serialised, as in one Lambda


def to_event(method: str, raw_path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """An API Gateway REST proxy event, as API Gateway would build it for this request."""
    parts = urlsplit(raw_path)
    query = parse_qs(parts.query, keep_blank_values=True)
    try:
        text: str | None = body.decode("utf-8") if body else None
        is_b64 = False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode("ascii"), True
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    return {
        "resource": parts.path,
        "path": parts.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "stage": "Prod",
            "httpMethod": method, "path": f"/Prod{parts.path}", "resourcePath": parts.path,
            "protocol": "HTTP/1.1", "requestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent"),
                         "apiKey": headers.get("x-api-key")},
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }


def make_handler(
    invoke: Any, openapi: Path | None, max_body: int = MAX_BODY
) -> type[BaseHTTPRequestHandler]:
    from tools.lambda_context import lambda_context

    class Handler(BaseHTTPRequestHandler):
        server_version = "leadscore-local/1.0"

        def _read_chunked(self) -> bytes:
            body = bytearray()
            while True:
                line = self.rfile.readline(MAX_CHUNK_LINE + 1)
                if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n"):
                    raise FramingError(400, "bad chunk size line")
                size_text = line.split(b";", 1)[0].strip().decode("latin-1")
                if not _HEX.fullmatch(size_text):
                    raise FramingError(400, "bad chunk size")
                size = int(size_text, 16)
                if size == 0:
                    break
                if len(body) + size > max_body:
                    raise FramingError(413, "Request Too Long")
                data = self.rfile.read(size)
                if len(data) < size or self.rfile.read(2) != b"\r\n":
                    raise FramingError(400, "truncated chunked body")
                body += data
            for _ in range(MAX_TRAILERS):  # trailers are read and ignored
                line = self.rfile.readline(MAX_CHUNK_LINE + 1)
                if line in (b"\r\n", b"\n", b""):
                    return bytes(body)
            raise FramingError(400, "too many trailer lines")

        def _read_body(self) -> bytes:
            codings = [c.strip().lower() for v in self.headers.get_all("Transfer-Encoding") or []
                       for c in v.split(",") if c.strip()]
            lengths = [v.strip() for v in self.headers.get_all("Content-Length") or []]
            if codings:
                if codings != ["chunked"]:
                    raise FramingError(501, "only the chunked transfer coding is supported")
                if lengths:
                    raise FramingError(400, "Content-Length together with chunked encoding")
                return self._read_chunked()
            if not lengths:
                if self.command in BODY_METHODS:
                    raise FramingError(411, "Content-Length or chunked encoding required")
                return b""
            if len(set(lengths)) != 1 or not _DECIMAL.fullmatch(lengths[0]):
                raise FramingError(400, "Content-Length must be one non-negative integer")
            if len(lengths[0]) > 12 or int(lengths[0]) > max_body:
                raise FramingError(413, "Request Too Long")
            length = int(lengths[0])
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                raise FramingError(400, "body shorter than its Content-Length")
            return body

        def _write(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._write(status, {"Content-Type": "application/json"},
                        json.dumps(payload).encode())

        def _handle(self) -> None:
            path = urlsplit(self.path).path
            if self.command == "GET" and path == "/openapi.json" and openapi is not None:
                self._write(200, {"Content-Type": "application/json"}, openapi.read_bytes())
                return
            if (self.command, path) not in ROUTES:
                # API Gateway answers unknown routes itself, without invoking the function.
                self._json(403 if self.command not in ("GET", "POST") else 404,
                           {"message": "Missing Authentication Token"})
                return
            try:
                body = self._read_body()
            except FramingError as exc:
                self.close_connection = True
                self._write(exc.status, {"Content-Type": "application/json",
                                         "Connection": "close"},
                            json.dumps({"message": exc.message}).encode())
                return
            event = to_event(self.command, self.path, dict(self.headers.items()), body)
            with _LOCK:
                context = lambda_context("lead-scoring-ScoreFunction", timeout_ms=29_000)
                answer = invoke(event, context)
            payload = answer.get("body") or ""
            data = (base64.b64decode(payload) if answer.get("isBase64Encoded")
                    else str(payload).encode())
            # Powertools' REST resolver answers in multiValueHeaders (Content-Type included);
            # API Gateway merges both maps (edit by the reliability work: schemathesis ST104).
            headers = dict(answer.get("headers") or {})
            for name, values in (answer.get("multiValueHeaders") or {}).items():
                if values:
                    headers.setdefault(name, str(values[-1]))
            self._write(int(answer.get("statusCode", 502)), headers, data)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def __getattr__(self, name: str) -> Any:
            # Any other method (PATCH, TRACE, QUERY, ...) gets API Gateway's JSON 403, not
            # http.server's HTML 501.
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")

    return Handler


def make_server(
    host: str, port: int, invoke: Any, openapi: Path | None, *, max_body: int = MAX_BODY
) -> ThreadingHTTPServer:
    """The local API server (not started): `invoke(event, context)` answers each request."""
    server = ThreadingHTTPServer((host, port), make_handler(invoke, openapi, max_body))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 3000),
                        help="default: $PORT, else 3000")
    args = parser.parse_args(argv)
    default_model = ROOT / ".demo" / "store" / "models" / "champion.json"
    os.environ.setdefault("MODEL_URI", default_model.as_uri())
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LeadScoring")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from functions.score import app

    if os.environ["MODEL_URI"] == default_model.as_uri() and not default_model.exists():
        print("no local model yet: run `make demo` first (answers use the rules fallback)",
              file=sys.stderr)
    openapi = ROOT / "openapi.json"
    server = make_server(args.host, args.port, app.lambda_handler,
                         openapi if openapi.exists() else None)
    print(f"scoring API on http://{args.host}:{server.server_address[1]} "
          f"(MODEL_URI={os.environ['MODEL_URI']}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
