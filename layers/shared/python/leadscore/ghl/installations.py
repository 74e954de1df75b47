"""Installed locations (sub-accounts) and their HighLevel tokens: the records and the rules.

A marketplace app's webhook URL receives the events of every location that installed it, and
tokens, custom field ids, field maps and rate limits are all per location in HighLevel. So every
location this service writes to has an `Installation`; an event for any other location is
acknowledged and ignored.

Where an installation comes from:
* ``oauth``: the app's OAuth install (callback with an authorization code, or an ``INSTALL``
  event of an agency-wide install, which gets a location token from ``/oauth/locationToken``).
  Access tokens live ~24 h; refresh tokens rotate (the old one dies at the refresh).
* ``pit``: a location added by hand with a Private Integration Token kept in Secrets Manager
  (``tools/ghlctl.py add-pit``).
* ``settings``: the single sub-account stack: ``GHL_LOCATION_ID`` + the token secret + field
  ids / map from the stack parameters (the five-minute path). A table record for the same
  location wins over it.

Token refresh across containers (`refresh_tokens`): the refresh grant is called by one
container at a time (a lease on the record's version); the rotated pair is stored with a write
conditional on the version that was read, BEFORE the new access token is used; a container
that loses either race re-reads the record instead of refreshing again with a dead token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from leadscore.classes import with_location_class

_Score = TypeVar("_Score", bound=Mapping[str, Any])
#: Where a location's token comes from (see the module docstring).
SOURCE_OAUTH = "oauth"
SOURCE_PIT = "pit"
SOURCE_SETTINGS = "settings"
TOKEN_SOURCES = (SOURCE_OAUTH, SOURCE_PIT, SOURCE_SETTINGS)
#: Refresh this long before HighLevel's expiry (clock skew, a slow call in between).
REFRESH_AHEAD_SECONDS = 600
#: How long one container may hold the refresh lease; then another may take over.
REFRESH_LEASE_SECONDS = 20
#: How long a lease loser waits for the winner's rotated tokens before giving up.
LEASE_WAIT_SECONDS = 8.0


class TokenUnavailable(Exception):
    """No usable token for a location (not installed, uninstalled, refresh refused, store
    unreachable). ``reason`` is safe to log; it never contains a token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidGrant(Exception):
    """HighLevel refused the refresh token (already rotated, revoked, app uninstalled)."""


class RefreshRefused(TokenUnavailable):
    """HighLevel refused the stored refresh token (its own or, for an agency's location, the
    company's): only a new install (reconnecting the app) brings a token back."""


@dataclass(frozen=True)
class Installation:
    """One location's configuration (no secrets in here)."""

    location_id: str
    company_id: str = ""
    enabled: bool = True
    token_source: str = SOURCE_OAUTH
    #: Secrets Manager ARN of a Private Integration Token (token_source pit / settings)
    pit_secret_arn: str = ""
    score_field_id: str = ""
    class_field_id: str = ""
    score_field_numeric: bool = True
    #: HighLevel custom field id -> FEATURES.md flat name (resolved at discovery)
    field_map: Mapping[str, str] = field(default_factory=dict)
    #: what the operator configured (ids, fieldKeys or names -> flat names); re-resolved by
    #: discovery into ``field_map``
    configured_map: Mapping[str, str] = field(default_factory=dict)
    class_tags: Mapping[str, str] = field(default_factory=dict)
    class_thresholds: Mapping[str, float] | None = None
    installed_at: str = ""
    #: how far an install's setup got (``leadscore.ghl.agency`` STATUS_*; "" = not tracked)
    setup_status: str = ""
    fields_discovered_at: str = ""
    disabled_reason: str = ""
    #: digests of the location's own credentials (`leadscore.ghl.credentials`), never secrets
    workflow_secret_hash: str = ""
    api_key_hash: str = ""
    #: the time of the last UNINSTALL honoured, and when the location's data is deleted
    uninstalled_at: str = ""
    purge_after: str = ""
    #: may the agency's model, trained on pooled rows, score this location (and this
    #: location's rows train it)? Off until the location allows it (`ghlctl pooling`).
    allow_pooling: bool = False
    #: the columns this location's leads carry when it is not on the real-estate preset
    #: (empty: the preset); the agency's model serves it only when it reads no other column
    model_columns: tuple[str, ...] = ()

    def with_changes(self, **changes: Any) -> Installation:
        return replace(self, **changes)


@dataclass(frozen=True)
class InstalledLocation:
    """A location as every path that writes to HighLevel sees it: the webhook scored at once,
    a queued webhook scored by the write-back, and the backfill. They read a contact's fields
    and class its score through this one model, so a location's field map and thresholds
    cannot apply on one path and not on another.

    ``installation`` None means no installation is configured at all (a local run, or the
    write-back's single-stack fallback): the stack's ``GHL_FIELD_MAP`` then reads the fields
    and the score keeps the class the scorer gave it.
    """

    installation: Installation | None = None
    stack_field_map: Mapping[str, str] = field(default_factory=dict)

    def field_map(self) -> dict[str, str]:
        """HighLevel key (field id, fieldKey or display name) -> the name it is read as.

        An installation's map is what the operator configured merged with what discovery
        resolved it to: workflow webhooks send fields by display name, marketplace
        deliveries and the contacts search by id only, so both sets of keys must read; on a
        clash the resolved id wins (it names the location's own field). The stack's map is
        not added to an installation's: it was written for the stack's one location, whose
        installation already carries it."""
        inst = self.installation
        if inst is None:
            return dict(self.stack_field_map)
        return {**inst.configured_map, **inst.field_map}

    def classify(self, score: _Score) -> _Score:
        """The score with the class the location's own thresholds give it (THE precedence,
        `leadscore.classes.effective_thresholds`: the location's, else the stack's, else the
        bundle's, else the defaults; the scorer already applied the last three)."""
        thresholds = self.installation.class_thresholds if self.installation else None
        return with_location_class(score, thresholds)


@dataclass(frozen=True)
class OAuthTokens:
    access_token: str
    refresh_token: str
    expires_at: float  # epoch seconds
    user_type: str = "Location"  # or "Company"
    scope: str = ""

    def fresh(self, now: float, ahead: float = REFRESH_AHEAD_SECONDS) -> bool:
        return bool(self.access_token) and self.expires_at - ahead > now

    def to_json(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "expires_at": self.expires_at, "user_type": self.user_type,
                "scope": self.scope}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OAuthTokens:
        return cls(access_token=str(data.get("access_token") or ""),
                   refresh_token=str(data.get("refresh_token") or ""),
                   expires_at=float(data.get("expires_at") or 0),
                   user_type=str(data.get("user_type") or "Location"),
                   scope=str(data.get("scope") or ""))

    @classmethod
    def from_grant(cls, answer: Mapping[str, Any], now: float) -> OAuthTokens:
        """HighLevel's ``/oauth/token`` (or ``/oauth/locationToken``) answer."""
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("token answer without access_token")
        try:
            expires_in = float(answer.get("expires_in") or 0)
        except (TypeError, ValueError):
            expires_in = 0.0
        return cls(access_token=access,
                   refresh_token=str(answer.get("refresh_token") or ""),
                   expires_at=now + (expires_in if expires_in > 0 else 3600.0),
                   user_type=str(answer.get("userType") or "Location"),
                   scope=str(answer.get("scope") or ""))


@dataclass(frozen=True)
class StoredTokens:
    """Tokens as read from the store, with the version a conditional write must match."""

    tokens: OAuthTokens | None
    version: int
    lease_until: float = 0.0


class Installations(Protocol):
    """What the webhook flow, the write-back and the backfill ask (one per container).
    ``fresh`` skips the container's short-lived copy (after a 401, before a write)."""

    def installation(self, location_id: str, *, fresh: bool = False) -> Installation | None: ...

    def access_token(self, location_id: str, *, refresh: bool = False) -> str: ...


class TokenStore(Protocol):
    """The token side of the installations table (DynamoDB + KMS in production)."""

    def read_tokens(self, key: str) -> StoredTokens: ...

    def take_lease(self, key: str, version: int, until: float) -> bool: ...

    def release_lease(self, key: str, version: int) -> None:
        """Give the lease up after a refresh that failed (others need not wait it out)."""
        ...

    def write_tokens(self, key: str, version: int, tokens: OAuthTokens) -> bool:
        """Store ``tokens`` as version ``version + 1`` iff the stored version is ``version``;
        False when another writer got there first. Clears the lease."""
        ...


RefreshGrant = Callable[[OAuthTokens], OAuthTokens]
"""Calls HighLevel's refresh grant; raises InvalidGrant when the refresh token is refused."""


def refresh_tokens(
    key: str,
    store: TokenStore,
    grant: RefreshGrant,
    *,
    force: bool = False,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    lease_seconds: float = REFRESH_LEASE_SECONDS,
    wait_seconds: float = LEASE_WAIT_SECONDS,
) -> OAuthTokens:
    """Fresh tokens for ``key`` (``location#<id>`` / ``company#<id>``), refreshing when due.

    ``force`` refreshes even a token that looks fresh (HighLevel answered 401 with it), unless
    another container rotated it since (then its new token is used).
    """
    seen = store.read_tokens(key)
    if seen.tokens is None:
        raise TokenUnavailable("no OAuth tokens stored (not installed or uninstalled)")
    first_version = seen.version
    deadline = clock() + wait_seconds
    while True:
        now = clock()
        current = seen.tokens
        if current is None:
            raise TokenUnavailable("OAuth tokens were deleted (uninstalled)")
        rotated_since = seen.version != first_version
        if current.fresh(now) and (not force or rotated_since):
            return current
        if seen.lease_until <= now and store.take_lease(key, seen.version, now + lease_seconds):
            try:
                new = grant(current)
            except RefreshRefused:
                # The company token behind a location's token was refused: final, and the
                # other containers must not wait for this lease to run out to learn it.
                store.release_lease(key, seen.version)
                raise
            except InvalidGrant:
                # Someone may have rotated it between our read and our grant: re-read once.
                again = store.read_tokens(key)
                if again.version != seen.version and again.tokens is not None:
                    seen = again
                    continue
                store.release_lease(key, seen.version)
                raise RefreshRefused("HighLevel refused the refresh token") from None
            if store.write_tokens(key, seen.version, new):
                return new
            # Lost the write (an install or another refresh wrote meanwhile): theirs wins.
            seen = store.read_tokens(key)
            if seen.tokens is not None and seen.tokens.fresh(clock()):
                return seen.tokens
            raise TokenUnavailable("token record changed during the refresh")
        # Another container holds the lease: wait for its rotated tokens, then use them.
        if clock() >= deadline:
            raise TokenUnavailable("another container is refreshing the token; try later")
        sleep(0.2)
        seen = store.read_tokens(key)


SecretReader = Callable[[str, bool], str]
"""(secret ARN, force re-read) -> the token kept in it."""


class SettingsInstallations:
    """The single sub-account stack: one location from the stack parameters, its Private
    Integration Token in Secrets Manager (the five-minute path; docs/GHL_SETUP.md)."""

    def __init__(self, inst: Installation, secret_reader: SecretReader) -> None:
        self.inst = inst
        self._read = secret_reader

    @classmethod
    def from_values(cls, *, location_id: str, token_secret_arn: str, score_field_id: str = "",
                    class_field_id: str = "", field_map: Mapping[str, str] | None = None,
                    secret_reader: SecretReader) -> SettingsInstallations:
        return cls(Installation(location_id=location_id, token_source=SOURCE_SETTINGS,
                                pit_secret_arn=token_secret_arn, score_field_id=score_field_id,
                                class_field_id=class_field_id,
                                field_map=dict(field_map or {}),
                                configured_map=dict(field_map or {})), secret_reader)

    def installation(self, location_id: str, *, fresh: bool = False) -> Installation | None:
        return self.inst if location_id == self.inst.location_id else None

    def access_token(self, location_id: str, *, refresh: bool = False) -> str:
        if location_id != self.inst.location_id:
            raise TokenUnavailable("location not installed")
        if not self.inst.pit_secret_arn:
            raise TokenUnavailable("GHL_TOKEN_SECRET_ARN is not set")
        try:
            return self._read(self.inst.pit_secret_arn, refresh)
        except Exception as exc:
            raise TokenUnavailable(f"token secret unreadable: {type(exc).__name__}") from exc


class ChainedInstallations:
    """The table first (any record, enabled or not, decides), then the stack parameters."""

    def __init__(self, *sources: Installations) -> None:
        self.sources = sources

    def _owner(self, location_id: str, fresh: bool) -> tuple[Installation | None,
                                                             Installations | None]:
        for source in self.sources:
            inst = source.installation(location_id, fresh=fresh)
            if inst is not None:
                return inst, source
        return None, None

    def installation(self, location_id: str, *, fresh: bool = False) -> Installation | None:
        return self._owner(location_id, fresh)[0]

    def access_token(self, location_id: str, *, refresh: bool = False) -> str:
        inst, source = self._owner(location_id, refresh)
        if inst is None or source is None:
            raise TokenUnavailable("location not installed")
        if not inst.enabled:
            raise TokenUnavailable("location disabled or uninstalled")
        return source.access_token(location_id, refresh=refresh)
