"""The installations table (DynamoDB) with tokens encrypted by KMS.

Items (partition key ``pk``):

* ``location#<locationId>``: the `Installation` attributes (field ids, maps as JSON text,
  enabled, token source, ...) and, for OAuth installs, ``tokens`` (KMS ciphertext of the token
  JSON, encryption context ``{"ghl_key": <pk>}``), ``token_version`` (N, +1 per token write)
  and ``lease_until`` (the refresh lease, epoch seconds).
* ``company#<companyId>``: an agency install's Company tokens (same three attributes),
  ``company_id`` and ``approved_locations`` (JSON list; absent = every location approved).

A refresh HighLevel refuses (``RefreshRefused``: the location's own refresh token, or the
company token its location tokens are minted from) marks the location
``setup_status = "reconnect needed"`` and counts ``GhlReconnectNeeded`` (an alarm watches
it): only the agency reinstalling the app brings a token back.

Every token write is conditional on the ``token_version`` that was read (see
``leadscore.ghl.installations.refresh_tokens``). Decrypted tokens are kept in memory per
container only until they are due for refresh.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from typing import Any, Protocol

from leadscore.adapters import client, error_code
from leadscore.adapters.ghl_api import GhlOAuthClient, InvalidGrantError, secret_json_reader
from leadscore.ghl.installations import (
    SOURCE_PIT,
    SOURCE_SETTINGS,
    ChainedInstallations,
    Installation,
    Installations,
    InvalidGrant,
    OAuthTokens,
    RefreshRefused,
    SettingsInstallations,
    StoredTokens,
    TokenUnavailable,
    refresh_tokens,
)
from leadscore.settings import InstallSettings

LOCATION_PREFIX = "location#"
COMPANY_PREFIX = "company#"
#: How long a container trusts its copy of an installation record (webhook path).
INSTALLATION_CACHE_SECONDS = 30.0

_JSON_ATTRS = ("field_map", "configured_map", "class_tags", "class_thresholds",
               "model_columns")
_BOOL_ATTRS = ("enabled", "score_field_numeric", "allow_pooling")


def location_key(location_id: str) -> str:
    return LOCATION_PREFIX + location_id


def company_key(company_id: str) -> str:
    return COMPANY_PREFIX + company_id


class TokenCipher(Protocol):
    def encrypt(self, plaintext: bytes, context: Mapping[str, str]) -> bytes: ...

    def decrypt(self, blob: bytes, context: Mapping[str, str]) -> bytes: ...


class KmsCipher:
    """KMS Encrypt/Decrypt (token JSON is far below KMS's 4 KB limit)."""

    def __init__(self, key_id: str, kms_client: Any | None = None) -> None:
        if not key_id:
            raise ValueError("GHL_TOKEN_KEY_ID is not set")
        self.key_id = key_id
        self._client = kms_client

    @property
    def kms(self) -> Any:
        if self._client is None:
            self._client = client("kms")
        return self._client

    def encrypt(self, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        answer = self.kms.encrypt(KeyId=self.key_id, Plaintext=plaintext,
                                  EncryptionContext=dict(context))
        return bytes(answer["CiphertextBlob"])

    def decrypt(self, blob: bytes, context: Mapping[str, str]) -> bytes:
        answer = self.kms.decrypt(CiphertextBlob=blob, EncryptionContext=dict(context),
                                  KeyId=self.key_id)
        return bytes(answer["Plaintext"])


def installation_to_item(inst: Installation) -> dict[str, Any]:
    """DynamoDB attribute values for the configuration part of a record (no tokens)."""
    item: dict[str, Any] = {}
    for name, value in asdict(inst).items():
        if name in _JSON_ATTRS:
            if value is None:
                continue
            item[name] = {"S": json.dumps(value, sort_keys=True)}
        elif name in _BOOL_ATTRS:
            item[name] = {"BOOL": bool(value)}
        else:
            item[name] = {"S": str(value)}
    return item


def item_to_installation(item: Mapping[str, Any]) -> Installation:
    values: dict[str, Any] = {}
    for name in Installation.__dataclass_fields__:
        attr = item.get(name)
        if attr is None:
            continue
        if name in _JSON_ATTRS:
            values[name] = json.loads(attr["S"])
            if name == "model_columns":
                values[name] = tuple(str(c) for c in values[name] or ())
        elif name in _BOOL_ATTRS:
            values[name] = bool(attr.get("BOOL", False))
        else:
            values[name] = attr.get("S", "")
    return Installation(**values)


#: ``setup_status`` of a location whose refresh HighLevel refused (leadscore.ghl.agency)
RECONNECT_NEEDED = "reconnect needed"
RECONNECT_METRIC = "GhlReconnectNeeded"


def count_reconnect_needed(location_id: str) -> None:
    """One ``GhlReconnectNeeded`` datapoint (namespace LeadScoring, service ghl-installations:
    the same dimension from every function, so one alarm watches them all)."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=RECONNECT_METRIC, unit=MetricUnit.Count, value=1,
                       namespace="LeadScoring") as metric:
        metric.add_dimension(name="service", value="ghl-installations")


RefreshCall = Callable[[OAuthTokens], dict[str, Any]]
LocationTokenCall = Callable[[str, str, str], dict[str, Any]]  # (company token, company, location)
SecretReader = Callable[[str, bool], str]  # (secret arn, force_fetch) -> token


class DynamoInstallations:
    """`Installations` + `TokenStore` over the installations table."""

    def __init__(
        self,
        table_name: str,
        cipher: TokenCipher,
        *,
        refresh_call: RefreshCall | None = None,
        location_token_call: LocationTokenCall | None = None,
        secret_reader: SecretReader | None = None,
        ddb_client: Any | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        cache_seconds: float = INSTALLATION_CACHE_SECONDS,
        cache_clock: Callable[[], float] = time.monotonic,
        on_reconnect_needed: Callable[[str], None] = count_reconnect_needed,
    ) -> None:
        self._on_reconnect_needed = on_reconnect_needed
        self.table_name = table_name
        self._cipher = cipher
        self._refresh_call = refresh_call
        self._location_token_call = location_token_call
        self._secret_reader = secret_reader
        self._client = ddb_client
        self._clock = clock
        self._sleep = sleep
        self._cache_seconds = cache_seconds
        # How long this container has held a record is elapsed time in the container, not
        # the time the tokens and leases are judged by (``clock``, which a simulation or test
        # may move by hours between two calls: the cache then never hit).
        self._cache_clock = cache_clock
        self._records: dict[str, tuple[float, Installation | None]] = {}
        self._tokens: dict[str, OAuthTokens] = {}
        self._lock = threading.Lock()

    @property
    def ddb(self) -> Any:
        if self._client is None:
            self._client = client("dynamodb")
        return self._client

    # ----------------------------------------------------------------- Installations

    def installation(self, location_id: str, *, fresh: bool = False) -> Installation | None:
        now = self._cache_clock()
        with self._lock:
            cached = self._records.get(location_id)
        if cached is not None and not fresh and now - cached[0] < self._cache_seconds:
            return cached[1]
        answer = self.ddb.get_item(TableName=self.table_name,
                                   Key={"pk": {"S": location_key(location_id)}},
                                   ConsistentRead=fresh)
        item = answer.get("Item")
        inst = item_to_installation(item) if item else None
        with self._lock:
            self._records[location_id] = (now, inst)
        return inst

    def access_token(self, location_id: str, *, refresh: bool = False) -> str:
        inst = self.installation(location_id, fresh=refresh)
        if inst is None:
            raise TokenUnavailable("location not installed")
        if not inst.enabled:
            raise TokenUnavailable("location disabled or uninstalled")
        if inst.token_source in (SOURCE_PIT, SOURCE_SETTINGS):
            if self._secret_reader is None or not inst.pit_secret_arn:
                raise TokenUnavailable("no token secret configured for the location")
            try:
                return self._secret_reader(inst.pit_secret_arn, refresh)
            except Exception as exc:  # Secrets Manager down, secret deleted, empty
                raise TokenUnavailable(f"token secret unreadable: {type(exc).__name__}") from exc
        key = location_key(location_id)
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and not refresh and cached.fresh(self._clock()):
            return cached.access_token
        try:
            tokens = refresh_tokens(key, self, lambda old: self._renew(inst, old),
                                    force=refresh, clock=self._clock, sleep=self._sleep)
        except RefreshRefused:
            self.mark_reconnect_needed(location_id)
            raise
        except TokenUnavailable:
            raise
        except Exception as exc:
            raise TokenUnavailable(f"token refresh failed: {type(exc).__name__}") from exc
        with self._lock:
            self._tokens[key] = tokens
        return tokens.access_token

    def forget(self, location_id: str | None = None) -> None:
        """Drop this container's cached records and tokens (after an UNINSTALL, in tests)."""
        with self._lock:
            if location_id is None:
                self._records.clear()
                self._tokens.clear()
            else:
                self._records.pop(location_id, None)
                self._tokens.pop(location_key(location_id), None)

    def _renew(self, inst: Installation, old: OAuthTokens) -> OAuthTokens:
        """New tokens for a location: the refresh grant, or (an agency install's location
        token without a refresh token) a new location token from the Company token."""
        if old.refresh_token:
            return self._grant(old)
        if not inst.company_id or self._location_token_call is None:
            raise InvalidGrant("no refresh token and no company token")
        company = self.company_access_token(inst.company_id)
        return OAuthTokens.from_grant(
            self._location_token_call(company, inst.company_id, inst.location_id), self._clock())

    def _grant(self, old: OAuthTokens) -> OAuthTokens:
        if not old.refresh_token:
            raise InvalidGrant("no refresh token stored")
        if self._refresh_call is None:
            raise TokenUnavailable("OAuth client not configured")
        return OAuthTokens.from_grant(self._refresh_call(old), self._clock())

    def company_access_token(self, company_id: str, *, refresh: bool = False) -> str:
        key = company_key(company_id)
        tokens = refresh_tokens(key, self, self._grant, force=refresh, clock=self._clock,
                                sleep=self._sleep)
        return tokens.access_token

    def mark_reconnect_needed(self, location_id: str) -> None:
        """The location cannot get a token until the app is installed again: say so where
        ``ghlctl list`` shows it, and count it (once per marking, not per failed call)."""
        try:
            self.ddb.update_item(
                TableName=self.table_name, Key={"pk": {"S": location_key(location_id)}},
                UpdateExpression="SET setup_status = :r",
                ConditionExpression="attribute_exists(pk) AND "
                                    "(attribute_not_exists(setup_status) OR setup_status <> :r)",
                ExpressionAttributeValues={":r": {"S": RECONNECT_NEEDED}},
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return
            raise
        self.forget(location_id)
        self._on_reconnect_needed(location_id)

    # ----------------------------------------------------------------- an agency's setup

    def has_tokens(self, key: str) -> bool:
        answer = self.ddb.get_item(TableName=self.table_name, Key={"pk": {"S": key}},
                                   ProjectionExpression="pk, tokens", ConsistentRead=True)
        return bool((answer.get("Item") or {}).get("tokens", {}).get("B"))

    def approved_locations(self, company_id: str) -> list[str] | None:
        answer = self.ddb.get_item(TableName=self.table_name,
                                   Key={"pk": {"S": company_key(company_id)}},
                                   ProjectionExpression="approved_locations",
                                   ConsistentRead=True)
        text = (answer.get("Item") or {}).get("approved_locations", {}).get("S")
        if not text:
            return None
        listed = json.loads(text)
        return [str(x) for x in listed] if isinstance(listed, list) else None

    def save_approved(self, company_id: str, approved: list[str] | None) -> None:
        key = {"pk": {"S": company_key(company_id)}}
        if approved is None:
            self.ddb.update_item(TableName=self.table_name, Key=key,
                                 UpdateExpression="SET company_id = :c REMOVE approved_locations",
                                 ExpressionAttributeValues={":c": {"S": company_id}})
        else:
            self.ddb.update_item(TableName=self.table_name, Key=key,
                                 UpdateExpression="SET company_id = :c, approved_locations = :a",
                                 ExpressionAttributeValues={":c": {"S": company_id},
                                                            ":a": {"S": json.dumps(approved)}})

    def company_ids(self) -> list[str]:
        """Companies with stored tokens (an install to a future location names none)."""
        found: list[str] = []
        paginator = self.ddb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self.table_name,
            FilterExpression="begins_with(pk, :p) AND attribute_exists(tokens)",
            ExpressionAttributeValues={":p": {"S": COMPANY_PREFIX}},
            ProjectionExpression="pk",
        ):
            found += [item["pk"]["S"][len(COMPANY_PREFIX):] for item in page.get("Items", [])]
        return sorted(found)

    # ----------------------------------------------------------------- TokenStore

    def read_tokens(self, key: str) -> StoredTokens:
        answer = self.ddb.get_item(TableName=self.table_name, Key={"pk": {"S": key}},
                                   ConsistentRead=True)
        item = answer.get("Item") or {}
        version = int(item.get("token_version", {}).get("N", "0"))
        lease = float(item.get("lease_until", {}).get("N", "0"))
        blob = item.get("tokens", {}).get("B")
        if not blob:
            return StoredTokens(None, version, lease)
        plain = self._cipher.decrypt(bytes(blob), {"ghl_key": key})
        return StoredTokens(OAuthTokens.from_json(json.loads(plain)), version, lease)

    def take_lease(self, key: str, version: int, until: float) -> bool:
        now = self._clock()
        try:
            self.ddb.update_item(
                TableName=self.table_name, Key={"pk": {"S": key}},
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="token_version = :v AND "
                                    "(attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeValues={":until": {"N": repr(until)},
                                           ":v": {"N": str(version)},
                                           ":now": {"N": repr(now)}},
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_lease(self, key: str, version: int) -> None:
        try:
            self.ddb.update_item(
                TableName=self.table_name, Key={"pk": {"S": key}},
                UpdateExpression="REMOVE lease_until",
                ConditionExpression="token_version = :v",
                ExpressionAttributeValues={":v": {"N": str(version)}},
            )
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def write_tokens(self, key: str, version: int, tokens: OAuthTokens) -> bool:
        blob = self._cipher.encrypt(json.dumps(tokens.to_json()).encode(), {"ghl_key": key})
        condition = "token_version = :v" if version else \
            "attribute_not_exists(token_version) OR token_version = :v"
        try:
            self.ddb.update_item(
                TableName=self.table_name, Key={"pk": {"S": key}},
                UpdateExpression="SET tokens = :t, token_version = :next REMOVE lease_until",
                ConditionExpression=condition,
                ExpressionAttributeValues={":t": {"B": blob}, ":v": {"N": str(version)},
                                           ":next": {"N": str(version + 1)}},
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # ----------------------------------------------------------------- lifecycle

    def save(self, inst: Installation) -> None:
        """Create or update a record's configuration (tokens untouched)."""
        item = installation_to_item(inst)
        names = {f"#a{i}": name for i, name in enumerate(item)}
        values = {f":a{i}": value for i, value in enumerate(item.values())}
        sets = ", ".join(f"#a{i} = :a{i}" for i in range(len(item)))
        remove = "" if inst.class_thresholds is not None else " REMOVE class_thresholds"
        self.ddb.update_item(TableName=self.table_name,
                             Key={"pk": {"S": location_key(inst.location_id)}},
                             UpdateExpression=f"SET {sets}{remove}",
                             ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        self.forget(inst.location_id)

    def install_tokens(self, key: str, tokens: OAuthTokens) -> None:
        """Tokens from an install (authorization code or location token): they replace
        whatever was stored, whatever its version."""
        blob = self._cipher.encrypt(json.dumps(tokens.to_json()).encode(), {"ghl_key": key})
        self.ddb.update_item(
            TableName=self.table_name, Key={"pk": {"S": key}},
            UpdateExpression="SET tokens = :t, token_version = "
                             "if_not_exists(token_version, :zero) + :one REMOVE lease_until",
            ExpressionAttributeValues={":t": {"B": blob}, ":zero": {"N": "0"},
                                       ":one": {"N": "1"}},
        )
        with self._lock:
            self._tokens.pop(key, None)

    def disable(self, location_id: str, reason: str) -> None:
        """UNINSTALL / the CLI: the location is ignored from now on and its tokens deleted."""
        self.ddb.update_item(
            TableName=self.table_name, Key={"pk": {"S": location_key(location_id)}},
            UpdateExpression="SET enabled = :f, disabled_reason = :r, location_id = :l, "
                             "token_version = if_not_exists(token_version, :zero) + :one "
                             "REMOVE tokens, lease_until",
            ExpressionAttributeValues={":f": {"BOOL": False}, ":r": {"S": reason},
                                       ":l": {"S": location_id}, ":zero": {"N": "0"},
                                       ":one": {"N": "1"}},
        )
        self.forget(location_id)

    def delete_company_tokens(self, company_id: str) -> None:
        self.ddb.update_item(
            TableName=self.table_name, Key={"pk": {"S": company_key(company_id)}},
            UpdateExpression="SET company_id = :c, token_version = "
                             "if_not_exists(token_version, :zero) + :one "
                             "REMOVE tokens, lease_until",
            ExpressionAttributeValues={":c": {"S": company_id}, ":zero": {"N": "0"},
                                       ":one": {"N": "1"}},
        )

    def all_installations(self) -> Iterator[Installation]:
        paginator = self.ddb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self.table_name,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": LOCATION_PREFIX}},
        ):
            for item in page.get("Items", []):
                yield item_to_installation(item)


def installations_from_settings(
    settings: InstallSettings,
    *,
    table: DynamoInstallations | None = None,
    clock: Callable[[], float] = time.time,
) -> ChainedInstallations | None:
    """The container's installations: the table (``table`` or one built from the settings),
    then the single-location stack parameters. None when neither is configured (local runs
    accept every location). The table's boto3 client is made on first use."""
    from leadscore.adapters.ghl_api import read_token_secret

    sources: list[Installations] = []
    if table is None and settings.installations_table:
        table = installations_table(settings, clock=clock)
    if table is not None:
        sources.append(table)
    if settings.location_id:
        sources.append(SettingsInstallations.from_values(
            location_id=settings.location_id, token_secret_arn=settings.token_secret_arn,
            score_field_id=settings.score_field_id, class_field_id=settings.class_field_id,
            field_map=settings.field_map,
            secret_reader=lambda arn, force: read_token_secret(arn, force)))
    return ChainedInstallations(*sources) if sources else None


def oauth_client(settings: InstallSettings) -> GhlOAuthClient | None:
    """HighLevel's OAuth endpoints with the app's client id/secret from Secrets Manager
    (JSON ``{"client_id", "client_secret"}``), or None when no secret is configured."""
    if not settings.oauth_secret_arn:
        return None
    read = secret_json_reader()

    def credentials() -> tuple[str, str]:
        data = read(settings.oauth_secret_arn, False)
        return str(data.get("client_id") or ""), str(data.get("client_secret") or "")

    return GhlOAuthClient(settings.api_base, credentials)


def installations_table(
    settings: InstallSettings, *, clock: Callable[[], float] = time.time,
    oauth: GhlOAuthClient | None = None,
) -> DynamoInstallations:
    from leadscore.adapters.ghl_api import read_token_secret

    oauth = oauth or oauth_client(settings)

    def refresh(old: OAuthTokens) -> dict[str, Any]:
        if oauth is None:
            raise TokenUnavailable("OAuth client not configured (GHL_OAUTH_SECRET_ARN)")
        try:
            return dict(oauth.refresh(old.refresh_token, user_type=old.user_type))
        except InvalidGrantError as exc:
            raise InvalidGrant(exc.reason) from exc

    def location_token(company_token: str, company_id: str, location_id: str) -> dict[str, Any]:
        if oauth is None:
            raise TokenUnavailable("OAuth client not configured (GHL_OAUTH_SECRET_ARN)")
        return dict(oauth.location_token(company_token, company_id, location_id))

    return DynamoInstallations(
        settings.installations_table, KmsCipher(settings.token_key_id),
        refresh_call=refresh, location_token_call=location_token,
        secret_reader=lambda arn, force: read_token_secret(arn, force), clock=clock)


def invoke_async(function_name: str, event: Mapping[str, Any]) -> None:
    """Start a Lambda function with ``event`` without waiting for it (an install's setup, a
    location's first backfill, a job's next run)."""
    client("lambda").invoke(FunctionName=function_name, InvocationType="Event",
                            Payload=json.dumps(dict(event)).encode())


def build_lifecycle(
    settings: InstallSettings, table: DynamoInstallations, *, app_id: str = "",
    clock: Callable[[], float] = time.time, oauth: GhlOAuthClient | None = None,
    invoke: Callable[[str, Mapping[str, Any]], None] = invoke_async,
) -> Any:
    """Installs against the table: OAuth from the app's client secret, field discovery with
    each location's own token; an agency's setup and each location's first backfill run in
    ``settings.setup_function`` (the backfill function) when it is set, else inline."""
    from leadscore.adapters.ghl_api import GhlApiClient
    from leadscore.ghl.agency import FIRST_BACKFILL_JOB
    from leadscore.ghl.lifecycle import Lifecycle

    def fields_api(location_id: str) -> GhlApiClient:
        return GhlApiClient(settings.api_base, lambda: table.access_token(location_id))

    background = start_backfill = None
    if settings.setup_function:
        function = settings.setup_function

        def background(event: dict[str, Any]) -> None:
            invoke(function, event)

        def start_backfill(location_id: str) -> None:
            invoke(function, {"location_id": location_id, "job_id": FIRST_BACKFILL_JOB})

    oauth = oauth or oauth_client(settings)
    client_id = None
    if oauth is not None:
        # With OAuth configured the app id is never missing: HighLevel's client ids carry it.
        def client_id() -> str:
            return str(oauth._credentials()[0])

    return Lifecycle(table, oauth, fields_api,
                     app_id=app_id or settings.app_id, clock=clock, background=background,
                     start_backfill=start_backfill, client_id=client_id)
