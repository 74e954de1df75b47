"""HighLevel API v2 client for the write-back (stdlib urllib, no requests dependency).

Only the three calls the write-back needs: ``PUT /contacts/{id}`` (custom fields),
``POST /contacts/{id}/tags`` and ``DELETE /contacts/{id}/tags``. Headers: ``Authorization:
Bearer <token>``, ``Version: 2021-07-28``, JSON in and out.

Rate limits (HighLevel's API docs): on a 429 the client waits as the one wait rule says
(`leadscore.ghl.budget.rate_limit_wait`: ``Retry-After``, else one window) and tries again, as
long as the total wait stays within ``max_wait_seconds``; then it raises ``RateLimited`` so the
queue keeps the message. When the daily budget is spent (``X-RateLimit-Daily-Remaining: 0``)
it raises at once.
"""

from __future__ import annotations

import functools
import http.client
import json
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

# The answer and error types belong to the flows that catch them (leadscore.ghl.api); the
# client raises them and re-exports them for its callers.
from leadscore.ghl.api import (
    ApiResponse,
    GhlApiError,
    NoAnswer,
    RateLimited,
    _reason,
)
from leadscore.ghl.budget import rate_limit_wait
from leadscore.ghl.installations import TokenUnavailable
from leadscore.ghl.write_plan import ApiCall
from leadscore.settings import SECRET_MAX_AGE_SECONDS

API_VERSION = "2021-07-28"
MAX_ATTEMPTS = 6


# HighLevel's error messages may echo the contact ("... with email x@y already exists"); the
def _json(answer: ApiResponse) -> Any:
    """A 2xx answer's JSON body ({} when empty); GhlApiError when it is not JSON."""
    if not answer.body:
        return {}
    try:
        return json.loads(answer.body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise GhlApiError(answer.status, "answer is not JSON") from exc


Transport = Callable[[urllib.request.Request, float], ApiResponse]

#: An answer body larger than this is cut (HighLevel's answers are a few KiB).
MAX_BODY_BYTES = 1 << 20
_CHUNK_BYTES = 64 * 1024


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One client TLS context per container: building one loads the system's CA bundle,
    measured at ~50 ms of CPU, which every HighLevel call paid (three per written contact).
    A client context is safe to share between connections and threads."""
    return ssl.create_default_context()


def http_transport(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
) -> ApiResponse:
    """One HTTP exchange within ``timeout`` seconds IN TOTAL (the socket timeout is cut to
    what is left before every read, the body is read in chunks against the same end).

    Every HTTP status is an answer. No usable answer raises ``NoAnswer``: ``OSError`` covers
    refused/reset connections, timeouts and TLS errors; ``http.client.HTTPException`` covers a
    garbage status line (BadStatusLine), a truncated body (IncompleteRead), an oversized header
    line, a server that hung up (RemoteDisconnected); ``ValueError`` a malformed URL or header.
    """
    ends_at = time.monotonic() + timeout
    parts = urllib.parse.urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    try:
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.netloc, timeout=timeout, context=_tls_context()
            )
        else:
            conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    except ValueError as exc:
        raise NoAnswer(f"no answer: {type(exc).__name__}") from exc
    try:
        conn.request(method, target, body=body, headers=dict(headers))
        _cut_timeout(conn, ends_at)
        answer = conn.getresponse()
        chunks: list[bytes] = []
        size = 0
        while size < MAX_BODY_BYTES:
            _cut_timeout(conn, ends_at)
            chunk = answer.read(min(_CHUNK_BYTES, MAX_BODY_BYTES - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if answer.length and size < MAX_BODY_BYTES:
            # read(n) returns b"" at an early end of the body instead of raising.
            raise http.client.IncompleteRead(b"".join(chunks), answer.length)
        return ApiResponse(answer.status, dict(answer.getheaders()), b"".join(chunks))
    except (http.client.HTTPException, OSError, ValueError) as exc:
        raise NoAnswer(f"no answer: {type(exc).__name__}") from exc
    finally:
        conn.close()


def _cut_timeout(conn: http.client.HTTPConnection, ends_at: float) -> None:
    left = ends_at - time.monotonic()
    if left <= 0:
        raise TimeoutError("the call's time is up")
    if conn.sock is not None:
        conn.sock.settimeout(left)


def urllib_transport(request: urllib.request.Request, timeout: float) -> ApiResponse:
    """Send one prepared request (see ``http_transport``)."""
    data = request.data if isinstance(request.data, bytes) else None
    headers = {name.title(): value for name, value in request.header_items()}  # as urllib does
    return http_transport(request.get_method(), request.full_url, headers, data, timeout)


class ApiSender:
    """``send(call, token, timeout)``: ``send_once`` against one base URL (the write-back's
    HTTP port)."""

    def __init__(
        self, base_url: str, transport: Callable[..., ApiResponse] = http_transport
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("GHL_API_BASE must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self._transport = transport

    def send(self, call: ApiCall, token: str, timeout: float) -> ApiResponse:
        return send_once(self.base_url, call, token, timeout, self._transport)


def send_once(
    base_url: str,
    call: ApiCall,
    token: str,
    timeout: float,
    transport: Callable[..., ApiResponse] = http_transport,
) -> ApiResponse:
    """One attempt of one call, no waiting and no retry: the write-back's loop (deadline,
    location budget, 401 refresh) drives it. Raises ``NoAnswer`` when there is no answer."""
    if call.method == "PUT" and call.body is not None and "tags" in call.body:
        raise ValueError("never send tags in PUT /contacts: it replaces every tag")
    headers = {"Authorization": f"Bearer {token}", "Version": API_VERSION,
               "Accept": "application/json"}
    data = None
    if call.body is not None:
        data = json.dumps(call.body, separators=(",", ":")).encode("utf-8")
        headers["Content-Type"] = "application/json"
    return transport(call.method, base_url.rstrip("/") + call.path, headers, data, timeout)


class GhlApiClient:
    def __init__(
        self,
        base_url: str,
        token: Callable[[], str],
        *,
        timeout_seconds: float = 10.0,
        max_wait_seconds: float = 20.0,
        transport: Transport = urllib_transport,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        on_unauthorized: Callable[[], None] | None = None,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("GHL_API_BASE must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout_seconds
        self._max_wait = max_wait_seconds
        self._transport = transport
        self._sleep = sleep
        self._clock = clock
        self._on_unauthorized = on_unauthorized
        self.waited_seconds = 0.0

    # -- the three calls -------------------------------------------------------------------

    def update_custom_fields(self, contact_id: str, body: Mapping[str, Any]) -> None:
        if "tags" in body:
            raise ValueError("never send tags in PUT /contacts: it replaces every tag")
        self._call("PUT", self._contact_path(contact_id), body)

    def add_tags(self, contact_id: str, tags: list[str]) -> None:
        self._call("POST", self._contact_path(contact_id) + "/tags", {"tags": tags})

    def remove_tags(self, contact_id: str, tags: list[str]) -> None:
        self._call("DELETE", self._contact_path(contact_id) + "/tags", {"tags": tags})

    # -- reading and field discovery (same rate-limit handling) ------------------------------

    def list_custom_fields(self, location_id: str, model: str = "contact") -> Any:
        """``GET /locations/{id}/customFields?model=contact`` (parsed JSON answer)."""
        path = f"/locations/{urllib.parse.quote(location_id, safe='')}/customFields"
        return self.get_json(path, {"model": model})

    def create_custom_field(self, location_id: str, body: Mapping[str, Any]) -> Any:
        """``POST /locations/{id}/customFields`` (scope locations/customFields.write)."""
        path = f"/locations/{urllib.parse.quote(location_id, safe='')}/customFields"
        return _json(self._call("POST", path, body))

    def search_contacts(self, body: Mapping[str, Any]) -> Any:
        """``POST /contacts/search`` (``locationId``, ``pageLimit``, ``page`` | ``searchAfter``)."""
        return _json(self._call("POST", "/contacts/search", body))

    def search_opportunities(self, query: Mapping[str, str]) -> Any:
        """``GET /opportunities/search`` (``location_id``, ``limit``, ``startAfter[Id]``, ...)."""
        return self.get_json("/opportunities/search", query)

    def get_json(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        if query:
            path = path + "?" + urllib.parse.urlencode(dict(query))
        return _json(self._call("GET", path, None))

    # -- plumbing --------------------------------------------------------------------------

    @staticmethod
    def _contact_path(contact_id: str) -> str:
        return "/contacts/" + urllib.parse.quote(contact_id, safe="")

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None
    ) -> urllib.request.Request:
        return urllib.request.Request(  # noqa: S310 (scheme checked in __init__)
            self.base_url + path,
            data=None if body is None else json.dumps(body).encode("utf-8"),
            method=method,
            headers={
                "Authorization": f"Bearer {self._token()}",
                "Version": API_VERSION,
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None) -> ApiResponse:
        for _ in range(MAX_ATTEMPTS):
            answer = self._transport(self._request(method, path, body), self._timeout)
            if 200 <= answer.status < 300:
                return answer
            if answer.status == 429:
                wait = rate_limit_wait(answer.status, answer.headers, self._clock())
                if (wait is None or wait.daily
                        or self.waited_seconds + wait.seconds > self._max_wait):
                    raise RateLimited(429, "rate limited")
                self.waited_seconds += wait.seconds
                self._sleep(wait.seconds)
                continue
            if answer.status == 401 and self._on_unauthorized is not None:
                self._on_unauthorized()  # the next message fetches the token again
            raise GhlApiError(answer.status, _reason(answer.body) or f"{method} failed")
        raise RateLimited(429, "rate limited")


def read_token_secret(
    secret_arn: str, force: bool = False, max_age_seconds: int = SECRET_MAX_AGE_SECONDS,
    location_id: str = "",
) -> str:
    """A HighLevel token kept in Secrets Manager (Powertools Parameters: cached per container
    for ``max_age_seconds``; ``force`` reads it again, e.g. after a 401).

    The secret is the token itself, JSON with ``token`` / ``access_token``, or, for several
    sub-accounts with Private Integration Tokens, ``{"locations": {"<locationId>": "<token>"}}``.
    """
    from leadscore.adapters.secrets import get_secret

    value = get_secret(secret_arn, max_age_seconds=max_age_seconds, force_fetch=force)
    text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    text = text.strip()
    if text.startswith("{"):
        parsed = json.loads(text)
        if isinstance(parsed, dict):
            per_location = parsed.get("locations")
            if isinstance(per_location, dict):
                text = str(per_location.get(location_id) or "").strip()
            else:
                text = str(parsed.get("token") or parsed.get("access_token") or "").strip()
    if not text:
        raise GhlApiError(0, "the HighLevel token secret is empty")
    return text


def location_token_reader(
    secret_arn: str, max_age_seconds: int = SECRET_MAX_AGE_SECONDS
) -> Callable[[str, bool], str]:
    """``read(location_id, refresh)``: ``read_token_secret`` for one location, any failure of
    the secret store raised as ``TokenUnavailable`` naming only the error types."""
    if not secret_arn:
        raise ValueError("GHL_TOKEN_SECRET_ARN is not set")

    def read(location_id: str, refresh: bool = False) -> str:
        try:
            return read_token_secret(
                secret_arn, force=refresh, max_age_seconds=max_age_seconds,
                location_id=location_id,
            )
        except Exception as exc:
            cause = exc.__cause__ or exc
            raise TokenUnavailable(
                f"secret store: {type(exc).__name__}/{type(cause).__name__}"
            ) from exc

    return read


def secret_token_provider(secret_arn: str, max_age_seconds: int = SECRET_MAX_AGE_SECONDS
                          ) -> Callable[[], str]:
    """The HighLevel token from Secrets Manager, fetched once and cached per container."""
    if not secret_arn:
        raise ValueError("GHL_TOKEN_SECRET_ARN is not set")

    def token() -> str:
        return read_token_secret(secret_arn, max_age_seconds=max_age_seconds)

    return token


def refresh_secret(secret_arn: str) -> None:
    """Drop the cached token so the next call reads the secret again (after a 401)."""
    from leadscore.adapters.secrets import get_secret

    get_secret(secret_arn, force_fetch=True)


# --------------------------------------------------------------------------- OAuth


class InvalidGrantError(GhlApiError):
    """``/oauth/token`` refused the code or refresh token (used, rotated, revoked)."""


#: How many installed locations one ``/oauth/installedLocations`` call asks for (the spec's
#: default is 20; the paging loop does not rely on the page being full).
INSTALLED_PAGE_LIMIT = 20
#: OAuth-style error codes that blame the app's credentials or request, not the grant.
_NOT_A_GRANT_REFUSAL = ("invalid_client", "unauthorized_client", "invalid_request",
                        "unsupported_grant_type", "invalid_scope")


def grant_refused(status: int, body: bytes) -> bool:
    """Whether a ``/oauth/token`` answer refuses the code or refresh token itself, in either
    shape HighLevel answers: OAuth's ``{"error": "invalid_grant"}`` or its API error
    ``{"statusCode": 400|401, "message": "...", "error": "Bad Request"}``. A refusal of the
    app's own credentials (``invalid_client``, a message naming the client) is not one:
    reconnecting the location would not help."""
    if status not in (400, 401):
        return False
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError):
        return False
    if not isinstance(parsed, dict):
        return False
    error = str(parsed.get("error") or "").strip().lower()
    if error == "invalid_grant":
        return True
    if error in _NOT_A_GRANT_REFUSAL:
        return False
    message = parsed.get("message")
    text = " ".join(str(m) for m in message) if isinstance(message, list) else str(message or "")
    if "statusCode" not in parsed and not text:
        return False
    return "client" not in text.lower()


class GhlOAuthClient:
    """HighLevel's OAuth endpoints (form-encoded, ``Version: 2021-07-28``).

    ``POST /oauth/token`` for the ``authorization_code`` and ``refresh_token`` grants,
    ``POST /oauth/locationToken`` (a Company token -> a location token) and
    ``GET /oauth/installedLocations``. The client id and secret come from a callable so that
    they can live in Secrets Manager and be read on first use.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Callable[[], tuple[str, str]],
        *,
        timeout_seconds: float = 10.0,
        transport: Transport = urllib_transport,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("GHL_API_BASE must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._timeout = timeout_seconds
        self._transport = transport

    def exchange_code(self, code: str, *, user_type: str = "Location",
                      redirect_uri: str = "") -> Any:
        form = {"grant_type": "authorization_code", "code": code, "user_type": user_type}
        if redirect_uri:
            form["redirect_uri"] = redirect_uri
        return self._token(form)

    def refresh(self, refresh_token: str, *, user_type: str = "Location") -> Any:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token,
                            "user_type": user_type})

    def location_token(self, company_token: str, company_id: str, location_id: str) -> Any:
        return self._send("POST", "/oauth/locationToken",
                          {"companyId": company_id, "locationId": location_id}, company_token)

    def installed_locations(self, company_token: str, company_id: str, app_id: str, *,
                            skip: int = 0, limit: int = INSTALLED_PAGE_LIMIT,
                            location_id: str = "") -> Any:
        """One page of the company's locations where the app is installed
        (``isInstalled=true``; ``skip``/``limit`` paging, ``count`` is the total)."""
        params = {"companyId": company_id, "appId": app_id, "isInstalled": "true",
                  "skip": str(skip), "limit": str(limit)}
        if location_id:
            params["locationId"] = location_id
        query = urllib.parse.urlencode(params)
        return self._send("GET", f"/oauth/installedLocations?{query}", None, company_token)

    def _token(self, form: dict[str, str]) -> Any:
        client_id, client_secret = self._credentials()
        return self._send("POST", "/oauth/token",
                          {**form, "client_id": client_id, "client_secret": client_secret}, "")

    def _send(self, method: str, path: str, form: Mapping[str, str] | None, bearer: str) -> Any:
        headers = {"Version": API_VERSION, "Accept": "application/json"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(dict(form)).encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(  # noqa: S310 (scheme checked in __init__)
            self.base_url + path, data=data, method=method, headers=headers)
        answer = self._transport(request, self._timeout)
        if 200 <= answer.status < 300:
            return _json(answer)
        reason = _reason(answer.body) or _oauth_error(answer.body) or f"{method} {path} failed"
        if path == "/oauth/token" and grant_refused(answer.status, answer.body):
            raise InvalidGrantError(answer.status, reason)
        raise GhlApiError(answer.status, reason)


def _oauth_error(body: bytes) -> str:
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return ""
    if isinstance(parsed, dict):
        return str(parsed.get("error") or "")[:100]
    return ""


def secret_json_reader(max_age_seconds: int = SECRET_MAX_AGE_SECONDS
                       ) -> Callable[[str, bool], dict[str, Any]]:
    """A JSON secret from Secrets Manager via Powertools Parameters (cached per container)."""
    from leadscore.adapters.secrets import get_secret

    def read(secret_arn: str, force: bool = False) -> dict[str, Any]:
        value = get_secret(secret_arn, max_age_seconds=max_age_seconds, force_fetch=force)
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        parsed = json.loads(text)
        if not isinstance(parsed, dict):
            raise ValueError("the secret must be a JSON object")
        return parsed

    return read
