"""An agency's install, finished in the background: every installed, approved location gets a
location token, its fields and its first backfill.

A Company (agency) OAuth install hands over ONE company token. HighLevel's
``GET /oauth/installedLocations`` lists the company's locations 20 at a time by default
(``skip``/``limit``; ``count`` is the company's total), ``POST /oauth/locationToken`` turns the
company token into one location's token (no refresh token: a new one is minted from the
company token when it expires), and the token answer's ``approvedLocations`` names the
locations the agency approved when it did not approve all of them. That is one call per page
plus three to five per location: far more than the 29 s an API Gateway request may take for a
large agency. So the callback (and an ``INSTALL`` event) only records the company token and
queues an `InstallJob`; `run_install_job` does the rest in the background.

Resumable without duplicates: every step is recorded in the location's own record
(``setup_status``) right after it is done, and done again only when its result is missing: a
location token only when none is stored, fields only when discovery has not run (discovery
lists the location's fields before creating any, so a field created just before a crash is
found, not created twice), the first backfill only when ``setup_status`` is not yet
``ready`` (and its fixed job id resumes the same checkpoint if it ever starts twice). A job
that runs out of time returns ``finished=False``; its caller starts it again.

Installs to "future locations" arrive as an ``INSTALL`` event without ``companyId``: the job
asks each stored company's token whether the location is installed under it
(``installedLocations?locationId=...``) and uses that company's token.

Pure logic over protocols; the adapters are `DynamoInstallations` and the HighLevel clients.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from leadscore.ghl.installations import SOURCE_OAUTH, Installation, OAuthTokens

#: ``Installation.setup_status`` values (``ghlctl list`` shows them).
STATUS_PENDING = "pending"  # listed; waits for the background setup
STATUS_TOKEN = "token"  # noqa: S105 - a status name: has its location token; fields next
STATUS_FIELDS = "fields"  # fields found or created; the first backfill next
STATUS_READY = "ready"  # set up; the first backfill was started
STATUS_NOT_APPROVED = "not approved"  # installed, but the agency did not approve it for us
STATUS_NO_COMPANY = "no company token"  # a future-location install no stored company lists
STATUS_FAILED = "setup failed"  # a step failed; the next job run tries again
STATUS_RECONNECT = "reconnect needed"  # HighLevel refused the refresh token: reinstall
#: The first backfill of an install always has this job id, so starting it twice resumes it.
FIRST_BACKFILL_JOB = "install"
#: Leave the job this long before its deadline (one location's calls must fit).
LOCATION_SECONDS = 20.0
#: A job run re-reads the company token after this long (it is refreshed 10 minutes ahead
#: of its expiry, so a copy this young is always still valid).
COMPANY_TOKEN_REUSE_SECONDS = 300.0


class SetupStore(Protocol):
    def installation(self, location_id: str, *, fresh: bool = False) -> Installation | None: ...

    def save(self, inst: Installation) -> None: ...

    def install_tokens(self, key: str, tokens: OAuthTokens) -> None: ...

    def has_tokens(self, key: str) -> bool: ...

    def company_access_token(self, company_id: str, *, refresh: bool = False) -> str: ...

    def approved_locations(self, company_id: str) -> list[str] | None: ...

    def company_ids(self) -> list[str]: ...


class AgencyOAuth(Protocol):
    def location_token(self, company_token: str, company_id: str, location_id: str) -> Any: ...

    def installed_locations(self, company_token: str, company_id: str, app_id: str, *,
                            skip: int = 0, limit: int = ..., location_id: str = "") -> Any: ...


@dataclass(frozen=True)
class InstallJob:
    """What the background job sets up: every installed location of a company, or the named
    locations (an ``INSTALL`` event); ``company_id`` "" = find the company (future locations)."""

    company_id: str
    location_ids: tuple[str, ...] = ()

    def to_event(self) -> dict[str, Any]:
        return {"install": {"company_id": self.company_id,
                            "location_ids": list(self.location_ids)}}

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> InstallJob | None:
        body = event.get("install")
        if not isinstance(body, Mapping):
            return None
        ids = body.get("location_ids")
        return cls(company_id=str(body.get("company_id") or ""),
                   location_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else ())


@dataclass
class JobResult:
    finished: bool
    company_id: str
    #: location id -> setup_status after this run
    statuses: dict[str, str] = field(default_factory=dict)
    #: location id -> why a step failed (safe to log: no tokens)
    failures: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for status in self.statuses.values():
            out[status] = out.get(status, 0) + 1
        return out


def company_key(company_id: str) -> str:
    return "company#" + company_id


def location_key(location_id: str) -> str:
    return "location#" + location_id


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def approved(tokens_answer: Mapping[str, Any]) -> list[str] | None:
    """The locations a Company token may set up: None = all (``approveAllLocations``, or no
    list given), else the ``approvedLocations`` list."""
    if tokens_answer.get("approveAllLocations") is True:
        return None
    listed = tokens_answer.get("approvedLocations")
    if not isinstance(listed, list):
        return None
    return [str(x) for x in listed if isinstance(x, str) and x]


def installed_location_ids(oauth: AgencyOAuth, company_token: str, company_id: str,
                           app_id: str, *, location_id: str = "") -> Iterator[str]:
    """Every location of the company where the app is installed, paged to the end. A page is
    asked from where the last one ended; the loop ends on an empty page or when ``count``
    (the company's total) is reached, so a server that caps ``limit`` below what was asked
    still lists everything."""
    skip = 0
    seen: set[str] = set()
    while True:
        answer = oauth.installed_locations(company_token, company_id, app_id, skip=skip,
                                           location_id=location_id)
        rows = answer.get("locations") if isinstance(answer, Mapping) else None
        rows = rows if isinstance(rows, list) else []
        if not rows:
            return
        for row in rows:
            if not isinstance(row, Mapping) or row.get("isInstalled") is False:
                continue
            loc = str(row.get("_id") or row.get("id") or "")
            if loc and loc not in seen:
                seen.add(loc)
                yield loc
        skip += len(rows)
        count = answer.get("count") if isinstance(answer, Mapping) else None
        if isinstance(count, int | float) and skip >= count:
            return


def find_company(location_id: str, store: SetupStore, oauth: AgencyOAuth,
                 app_id: str) -> str:
    """The stored company whose token lists ``location_id`` as installed ("" = none)."""
    for company_id in store.company_ids():
        try:
            token = store.company_access_token(company_id)
            if location_id in installed_location_ids(oauth, token, company_id, app_id,
                                                     location_id=location_id):
                return company_id
        except Exception:  # noqa: S112 - a company whose token is refused cannot be the one
            continue
    return ""


@dataclass
class Setup:
    """The collaborators of one job run."""

    store: SetupStore
    oauth: AgencyOAuth
    #: a location -> its HighLevel fields client (field discovery)
    discover: Callable[[Installation], Installation]
    #: starts the location's first backfill (job id FIRST_BACKFILL_JOB)
    start_backfill: Callable[[str], None]
    app_id: str
    clock: Callable[[], float] = time.time
    _company_tokens: dict[str, tuple[float, str]] = field(default_factory=dict)

    def company_token(self, company_id: str) -> str:
        """The company's access token, read once per few minutes of a run (not per location)."""
        now = self.clock()
        held = self._company_tokens.get(company_id)
        if held is not None and now - held[0] < COMPANY_TOKEN_REUSE_SECONDS:
            return held[1]
        token = self.store.company_access_token(company_id)
        self._company_tokens[company_id] = (now, token)
        return token


def run_install_job(job: InstallJob, setup: Setup, *, deadline: float | None = None
                    ) -> JobResult:
    """Set up the job's locations (module docstring); ``finished=False`` when time ran out."""
    company_id = job.company_id
    if not company_id and job.location_ids:
        company_id = find_company(job.location_ids[0], setup.store, setup.oauth, setup.app_id)
        if not company_id:
            result = JobResult(True, "")
            for loc in job.location_ids:
                if setup.store.has_tokens(location_key(loc)):
                    continue  # its own OAuth callback installed it meanwhile
                result.statuses[loc] = _mark(setup, loc, "", STATUS_NO_COMPANY)
            return result
    result = JobResult(False, company_id)
    if job.location_ids:
        targets: Sequence[str] = job.location_ids
        allowed: list[str] | None = None  # an INSTALL event names a location HighLevel installed
    else:
        company_token = setup.company_token(company_id)
        targets = list(installed_location_ids(setup.oauth, company_token, company_id,
                                              setup.app_id))
        allowed = setup.store.approved_locations(company_id)
    for loc in targets:
        if deadline is not None and setup.clock() + LOCATION_SECONDS > deadline:
            return result
        if allowed is not None and loc not in allowed:
            result.statuses[loc] = _not_approved(setup, loc, company_id)
            continue
        try:
            result.statuses[loc] = set_up_location(setup, loc, company_id)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {getattr(exc, 'reason', '')}".rstrip(": ")
            result.failures[loc] = reason[:200]
            result.statuses[loc] = _mark(setup, loc, company_id, STATUS_FAILED)
    result.finished = True
    return result


def set_up_location(setup: Setup, location_id: str, company_id: str) -> str:
    """One location's missing steps (token, fields, first backfill); its status after."""
    store = setup.store
    inst = store.installation(location_id, fresh=True)
    if inst is None:
        inst = Installation(location_id=location_id, company_id=company_id,
                            token_source=SOURCE_OAUTH, installed_at=_now_iso(setup.clock()),
                            setup_status=STATUS_PENDING)
        store.save(inst)
    elif not inst.enabled or inst.company_id != company_id or inst.token_source != SOURCE_OAUTH:
        inst = inst.with_changes(enabled=True, disabled_reason="", company_id=company_id,
                                 token_source=SOURCE_OAUTH)
        store.save(inst)
    if not store.has_tokens(location_key(location_id)):
        answer = setup.oauth.location_token(setup.company_token(company_id), company_id,
                                            location_id)
        store.install_tokens(location_key(location_id),
                             OAuthTokens.from_grant(answer, setup.clock()))
        # (the token alone is not worth a write of its own: the status moves on with the
        # fields; a run killed here finds the stored token and goes on from it)
        inst = inst.with_changes(setup_status=STATUS_TOKEN)
    if not inst.fields_discovered_at:
        inst = setup.discover(inst).with_changes(setup_status=STATUS_FIELDS)
        store.save(inst)
    if inst.setup_status != STATUS_READY:
        setup.start_backfill(location_id)
        inst = inst.with_changes(setup_status=STATUS_READY)
        store.save(inst)
    return inst.setup_status


def _not_approved(setup: Setup, location_id: str, company_id: str) -> str:
    """Recorded (disabled) so that ``ghlctl list`` shows it and its deliveries are ignored."""
    inst = setup.store.installation(location_id, fresh=True)
    if inst is not None and inst.enabled and inst.setup_status not in ("", STATUS_PENDING):
        return inst.setup_status  # set up by hand or by its own INSTALL: leave it
    if inst is None:
        inst = Installation(location_id=location_id, company_id=company_id,
                            token_source=SOURCE_OAUTH, installed_at=_now_iso(setup.clock()))
    setup.store.save(inst.with_changes(enabled=False, setup_status=STATUS_NOT_APPROVED,
                                       disabled_reason="not approved by the agency"))
    return STATUS_NOT_APPROVED


def _mark(setup: Setup, location_id: str, company_id: str, status: str) -> str:
    inst = setup.store.installation(location_id, fresh=True) or Installation(
        location_id=location_id, company_id=company_id, token_source=SOURCE_OAUTH,
        installed_at=_now_iso(setup.clock()))
    setup.store.save(inst.with_changes(setup_status=status))
    return status
