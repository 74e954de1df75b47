"""The OAuth redirect URI to send with a code exchange.

HighLevel checks that the `redirect_uri` of the token request is the one the installing user
was redirected to. That is the URL of the callback request itself, so it is derived from the
request (API Gateway's `requestContext`: `domainName` and `path`, which carries the stage or
a custom domain's base path) rather than configured: the stack cannot hand the function its
own API's URL (the API's definition refers to the function, so the reverse reference would
be a circular dependency CloudFormation refuses). A configured URL still wins, for a proxy or
CDN whose host the request does not show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def redirect_uri(configured: str, request_context: Mapping[str, Any] | None) -> str:
    """`configured` when set, else https://<domainName><path> of the request ("" if unknown)."""
    if configured:
        return configured
    context = request_context or {}
    domain = str(context.get("domainName") or "").strip()
    path = str(context.get("path") or "")
    if not path:
        stage = str(context.get("stage") or "").strip("/")
        resource = str(context.get("resourcePath") or "")
        path = f"/{stage}{resource}" if stage and stage != "$default" else resource
    if not domain or not path.startswith("/"):
        return ""
    return f"https://{domain}{path}"
