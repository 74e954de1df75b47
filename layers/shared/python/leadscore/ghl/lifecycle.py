"""Installs, uninstalls and field discovery: how the installations table gets filled.

* OAuth callback (``GET /oauth/callback?code=...``): the code is exchanged at once (codes are
  single-use and short-lived). A Location token installs that location; a Company (agency)
  token is stored with its approved locations, and the setup of every installed, approved
  location (location token, fields, first backfill) is queued: `leadscore.ghl.agency`.
* ``INSTALL`` events: the location's record is created (or re-enabled); when an agency's
  Company token covers it (or it names no company: an install to "future locations"), its
  setup is queued the same way. A Location install without any token yet waits for its
  callback (both orders work).
* ``UNINSTALL``: the location is disabled and its tokens deleted; a Company uninstall does
  that for every location of the company and deletes the Company token. The location's data
  is deleted after ``PURGE_GRACE_SECONDS`` (``purge_after`` on its record;
  `leadscore.loop.deletion`), unless it is installed again before.
* Order: install events are applied by when they happened, not when they came. An UNINSTALL
  never undoes an installation made after it (HighLevel retries an uninstall for hours; the
  user may have installed again meanwhile), and an INSTALL older than the last uninstall
  re-enables nothing. The time is the event's ``timestamp`` as the webhook flow trusts it
  (signed, never later than its receipt), else now.
* Discovery (after every install and from ``tools/ghlctl.py discover``): the score and class
  fields are found by fieldKey or name and created when missing; the inbound map is resolved
  to field ids (`leadscore.ghl.fields`).

Pure logic over protocols; the adapters are `DynamoInstallations` and the HighLevel clients.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from leadscore.columns.schema import Schema
from leadscore.ghl.agency import (
    STATUS_PENDING,
    InstallJob,
    Setup,
    approved,
    run_install_job,
    set_up_location,
)
from leadscore.ghl.auth import parse_timestamp
from leadscore.ghl.fields import create_body, parse_field_list, plan_fields
from leadscore.ghl.installations import SOURCE_OAUTH, Installation, OAuthTokens

#: How long an uninstalled location's data is kept (a re-install within it finds everything
#: as it was); then `leadscore.loop.deletion` removes it (docs/GHL_SETUP.md).
PURGE_GRACE_SECONDS = 30 * 24 * 3600


def app_id_from_client_id(client_id: str) -> str:
    """HighLevel's OAuth client ids are ``<appId>-<suffix>`` (its SDKs derive the app id the
    same way)."""
    return client_id.split("-", 1)[0].strip()


def _moment(value: Any) -> float | None:
    try:
        return parse_timestamp(value).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


class InstallStore(Protocol):
    def installation(self, location_id: str, *, fresh: bool = False) -> Installation | None: ...

    def save(self, inst: Installation) -> None: ...

    def install_tokens(self, key: str, tokens: OAuthTokens) -> None: ...

    def disable(self, location_id: str, reason: str) -> None: ...

    def delete_company_tokens(self, company_id: str) -> None: ...

    def company_access_token(self, company_id: str, *, refresh: bool = False) -> str: ...

    def all_installations(self) -> Iterable[Installation]: ...

    # an agency's install (leadscore.ghl.agency)
    def has_tokens(self, key: str) -> bool: ...

    def approved_locations(self, company_id: str) -> list[str] | None: ...

    def save_approved(self, company_id: str, approved: list[str] | None) -> None: ...

    def company_ids(self) -> list[str]: ...


class OAuthApi(Protocol):
    def exchange_code(self, code: str, *, user_type: str = "Location",
                      redirect_uri: str = "") -> Any: ...

    def location_token(self, company_token: str, company_id: str, location_id: str) -> Any: ...

    def installed_locations(self, company_token: str, company_id: str, app_id: str, *,
                            skip: int = 0, limit: int = ..., location_id: str = "") -> Any: ...


class FieldsApi(Protocol):
    def list_custom_fields(self, location_id: str, model: str = "contact") -> Any: ...

    def create_custom_field(self, location_id: str, body: Mapping[str, Any]) -> Any: ...


class InstallError(Exception):
    """An install step that could not be completed (kept and retried by the caller)."""


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def location_key(location_id: str) -> str:
    return "location#" + location_id


def company_key(company_id: str) -> str:
    return "company#" + company_id


def discover_fields(inst: Installation, api: FieldsApi, *, create: bool = True,
                    clock: Callable[[], float] = time.time,
                    schema: Schema | None = None) -> tuple[Installation, list[str]]:
    """Resolve (and create when missing) the location's fields, matched to `schema`'s
    columns when the served model scores a team's own; returns the updated installation and
    the configured keys that name no field."""
    fields = parse_field_list(api.list_custom_fields(inst.location_id))
    plan = plan_fields(fields, inst.configured_map, schema=schema)
    if create and plan.to_create:
        for name, _key, data_type in plan.to_create:
            api.create_custom_field(inst.location_id, create_body(name, data_type))
        fields = parse_field_list(api.list_custom_fields(inst.location_id))
        plan = plan_fields(fields, inst.configured_map, schema=schema)
    score, klass = plan.score_field, plan.class_field
    updated = inst.with_changes(
        score_field_id=score.id if score else inst.score_field_id,
        class_field_id=klass.id if klass else inst.class_field_id,
        score_field_numeric=score.numeric if score else inst.score_field_numeric,
        field_map=dict(plan.field_map),
        fields_discovered_at=_now_iso(clock()),
    )
    return updated, list(plan.unresolved)


class Lifecycle:
    """INSTALL / UNINSTALL / OAuth callback against one store and HighLevel."""

    def __init__(
        self,
        store: InstallStore,
        oauth: OAuthApi | None,
        fields_api: Callable[[str], FieldsApi] | None = None,
        *,
        app_id: str = "",
        clock: Callable[[], float] = time.time,
        client_id: Callable[[], str] | None = None,
        purge_grace_seconds: float = PURGE_GRACE_SECONDS,
        background: Callable[[dict[str, Any]], None] | None = None,
        start_backfill: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.oauth = oauth
        self.fields_api = fields_api
        self._app_id = app_id
        self._client_id = client_id
        self.clock = clock
        self.purge_grace_seconds = purge_grace_seconds
        #: queues an agency's setup (leadscore.ghl.agency.InstallJob event); None: inline
        self.background = background
        self.start_backfill = start_backfill

    @property
    def app_id(self) -> str:
        """The configured app id, else the one in the OAuth client id (read when needed)."""
        if not self._app_id and self._client_id is not None:
            self._app_id = app_id_from_client_id(self._client_id())
        return self._app_id

    @app_id.setter
    def app_id(self, value: str) -> None:
        self._app_id = value

    def _event_time(self, event: Mapping[str, Any]) -> float:
        moment = _moment(event.get("timestamp"))
        return self.clock() if moment is None else moment

    # ----------------------------------------------------------------- events

    def on_install(self, event: Mapping[str, Any]) -> dict[str, Any]:
        install_type = str(event.get("installType") or "Location")
        company_id = str(event.get("companyId") or "")
        location_id = str(event.get("locationId") or "")
        if install_type == "Company" or not location_id:
            # The Company token arrives with the OAuth callback, which installs its locations.
            return {"status": "installed", "install_type": "Company", "company_id": company_id}
        at = self._event_time(event)
        current = self.store.installation(location_id, fresh=True)
        last_uninstall = _moment(current.uninstalled_at) if current is not None else None
        if last_uninstall is not None and at < last_uninstall:
            return {"status": "ignored", "reason": "install older than the last uninstall",
                    "location_id": location_id}
        if self.oauth is not None and (not company_id or self._has_company_token(company_id)):
            # The agency's token covers it; a "future location" install names no company
            # (HighLevel's note on AppInstall): the job finds the company that lists it.
            inst = self._enable(location_id, company_id, at=at)
            if not inst.setup_status:  # shown as waiting until the job has set it up
                self.store.save(inst.with_changes(setup_status=STATUS_PENDING))
            answer = self._agency_job(InstallJob(company_id, (location_id,)))
            return {**answer, "install_type": "Location", "location_id": location_id,
                    "tokens_from": "the company token"}
        inst = self._enable(location_id, company_id, at=at)
        inst = self._discover_quietly(inst)  # a Location install's tokens come with its callback
        return {"status": "installed", "install_type": "Location", "location_id": location_id,
                "tokens_from": "the OAuth callback", "fields": bool(inst.fields_discovered_at)}

    def on_uninstall(self, event: Mapping[str, Any]) -> dict[str, Any]:
        location_id = str(event.get("locationId") or "")
        company_id = str(event.get("companyId") or "")
        at = self._event_time(event)
        if location_id:
            current = self.store.installation(location_id, fresh=True)
            if current is not None and self._installed_after(current, at):
                return {"status": "ignored", "reason": "uninstall older than the current install",
                        "location_id": location_id}
            self._uninstall(location_id, "uninstalled", at)
            return {"status": "uninstalled", "location_id": location_id}
        disabled, kept = [], []
        for inst in self.store.all_installations():
            if company_id and inst.company_id == company_id and inst.enabled:
                if self._installed_after(inst, at):
                    kept.append(inst.location_id)
                    continue
                self._uninstall(inst.location_id, "company uninstalled", at)
                disabled.append(inst.location_id)
        if company_id and not kept:
            self.store.delete_company_tokens(company_id)
        answer: dict[str, Any] = {"status": "uninstalled", "company_id": company_id,
                                  "locations": disabled}
        if kept:
            answer["kept_installed_after"] = kept
        return answer

    @staticmethod
    def _installed_after(inst: Installation, at: float) -> bool:
        installed = _moment(inst.installed_at)
        return installed is not None and installed > at

    def _uninstall(self, location_id: str, reason: str, at: float) -> None:
        """Disable (tokens deleted) and schedule the location's data for deletion."""
        self.store.disable(location_id, reason)
        inst = self.store.installation(location_id, fresh=True) or \
            Installation(location_id=location_id, enabled=False, disabled_reason=reason)
        self.store.save(inst.with_changes(
            uninstalled_at=_now_iso(at), purge_after=_now_iso(at + self.purge_grace_seconds)))

    def on_callback(self, code: str, *, user_type: str = "Location",
                    redirect_uri: str = "") -> dict[str, Any]:
        if self.oauth is None:
            raise InstallError("OAuth is not configured (GHL_OAUTH_SECRET_ARN)")
        answer = self.oauth.exchange_code(code, user_type=user_type, redirect_uri=redirect_uri)
        tokens = OAuthTokens.from_grant(answer, self.clock())
        company_id = str(answer.get("companyId") or "")
        if tokens.user_type == "Company":
            if not company_id:
                raise InstallError("Company token without companyId")
            self.store.install_tokens(company_key(company_id), tokens)
            self.store.save_approved(company_id, approved(answer))
            return self._agency_job(InstallJob(company_id))
        location_id = str(answer.get("locationId") or "")
        if not location_id:
            raise InstallError("Location token without locationId")
        self._enable(location_id, company_id)
        self.store.install_tokens(location_key(location_id), tokens)
        # A failed step leaves the record as far as it got (`ghlctl discover` repeats it): the
        # install itself succeeded.
        with contextlib.suppress(Exception):
            set_up_location(self._setup(), location_id, company_id)
        inst = self.store.installation(location_id, fresh=True)
        return {"status": "installed", "locations": [location_id],
                "fields": bool(inst is not None and inst.fields_discovered_at)}

    # ----------------------------------------------------------------- an agency's setup

    def _setup(self) -> Setup:
        assert self.oauth is not None
        fields_api = self.fields_api

        def discover(inst: Installation) -> Installation:
            if fields_api is None:
                return inst
            return discover_fields(inst, fields_api(inst.location_id), clock=self.clock)[0]

        return Setup(store=self.store, oauth=self.oauth, discover=discover,
                     start_backfill=self.start_backfill or (lambda _location: None),
                     app_id=self.app_id, clock=self.clock)

    def _agency_job(self, job: InstallJob) -> dict[str, Any]:
        """Queue the job (the stack: the backfill function runs it), or run it here (local
        runs and tests without a background worker)."""
        if self.background is not None:
            self.background(job.to_event())
            return {"status": "installing", "company_id": job.company_id,
                    "in_background": True}
        result = run_install_job(job, self._setup())
        ready = [loc for loc, status in result.statuses.items() if status == "ready"]
        return {"status": "installed", "company_id": result.company_id, "locations": ready,
                "statuses": result.counts(), "fields": bool(ready)}

    def run_job(self, job: InstallJob, *, deadline: float | None = None) -> Any:
        """One background run of an agency's setup (the backfill function calls it)."""
        return run_install_job(job, self._setup(), deadline=deadline)

    # ----------------------------------------------------------------- helpers

    def _enable(self, location_id: str, company_id: str, *,
                at: float | None = None) -> Installation:
        """Create or re-enable; ``installed_at`` is this install's time (what a later-arriving
        older UNINSTALL is compared with), and a scheduled deletion is called off."""
        installed_at = _now_iso(self.clock() if at is None else at)
        current = self.store.installation(location_id, fresh=True)
        if current is None:
            inst = Installation(location_id=location_id, company_id=company_id,
                                token_source=SOURCE_OAUTH, installed_at=installed_at)
        else:
            inst = current.with_changes(enabled=True, disabled_reason="",
                                        company_id=company_id or current.company_id,
                                        token_source=SOURCE_OAUTH, installed_at=installed_at,
                                        purge_after="")
        self.store.save(inst)
        return inst

    def _has_company_token(self, company_id: str) -> bool:
        try:
            self.store.company_access_token(company_id)
        except Exception:
            return False
        return True

    def _discover_quietly(self, inst: Installation) -> Installation:
        """Field discovery right after an install; a failure leaves the record as it is (the
        CLI's `discover` or the next install repeats it) and never fails the install."""
        if self.fields_api is None:
            return inst
        try:
            updated, _ = discover_fields(inst, self.fields_api(inst.location_id),
                                         clock=self.clock)
        except Exception:
            return inst
        self.store.save(updated)
        return updated
