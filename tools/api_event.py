"""The one builder of API Gateway (REST proxy) events for driving handlers in process.

Tests, `make simulate` and the demo hand `lambda_handler` the event API Gateway would build
for a POST carrying exactly these body bytes (`tools/serve.py` builds its events from real
HTTP requests instead, with their query strings and repeated headers).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any


def api_event(
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    method: str = "POST",
    base64_body: bool = False,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An event for `method path` with `headers` (JSON content type unless given) and `body`,
    base64-encoded with ``isBase64Encoded`` when `base64_body`."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", **headers},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "requestId": request_id or uuid.uuid4().hex,
        },
        "body": base64.b64encode(body).decode() if base64_body else body.decode("utf-8"),
        "isBase64Encoded": base64_body,
    }
