"""Backfill job: score every existing contact of a location and queue its write-back.

Invoked asynchronously with ``{"location_id": "...", "job_id": "...", "outcomes": false,
"restart": false}`` (``tools/backfill.py`` starts it, or runs the same code in-process). The
job pages through ``POST /contacts/search`` (leadscore.loop.backfill / backfill_job), saves
its checkpoint in the cache table after every page (snapshots flushed first, so a crash
never loses a scored contact's snapshot), logs progress (done / total, rate, ETA) and, when
its time is nearly up, invokes itself again with the same event: the next run resumes from
the checkpoint. Writes to HighLevel go through the write-back queue and function (the
location's budget, the skip rule, the dead-letter queue).

The same function runs an agency's install setup in the background (``{"install":
{"company_id": ..., "location_ids": [...]}}``, queued by the OAuth callback or an INSTALL event:
leadscore.ghl.agency): a token and fields per location, then each location's first backfill
(this function again, job id ``install``). A run that nears its time invokes itself again with
the same event; the setup resumes where the records say it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore.ghl.agency import STATUS_READY, InstallJob, JobResult
from leadscore.ghl.installations import InstalledLocation
from leadscore.loop.backfill import Checkpoint, CheckpointStore, Progress, run_backfill
from leadscore.loop.backfill_job import ContactStep, GhlContactSource, SearchApi, import_outcomes
from leadscore.loop.export_request import ExportRequest
from leadscore.loop.outcomes import OutcomeRuleBook
from leadscore.loop.recorder import LoopRecorder
from leadscore.scoring.service import Scorer
from leadscore.settings import ScoreSettings, WritebackSettings
from leadscore.wiring.container import PerContainer
from leadscore.wiring.ghl import install_lifecycle, search_api, writeback_queue
from leadscore.wiring.ghl import installations as installations_of
from leadscore.wiring.loop import build_recorder, loop_settings
from leadscore.wiring.loop import checkpoints as checkpoint_store
from leadscore.wiring.scoring import queued_scorer

logger = Logger(service="backfill")
metrics = Metrics(namespace="LeadScoring", service="backfill")

#: Stop this long before the Lambda timeout: the page in flight and the checkpoint must fit.
SAFETY_MARGIN_SECONDS = 60.0

_clock: Callable[[], float] = time.time
_recorder = PerContainer(lambda: build_recorder(loop_settings(), background=False, clock=_clock))
# Backfilled contacts are answered (and written back) by their experiment variant, with the
# request limits of /score (leadscore.wiring.scoring).
_scorer = PerContainer(lambda: queued_scorer(ScoreSettings.from_env(),
                                           installation=_installation_of))
# (found,): None inside when no installations are configured, which is an answer too
_installations = PerContainer(lambda: (installations_of(ScoreSettings.from_env().installs),))


def set_clock(clock: Callable[[], float]) -> None:
    """The simulation's clock (snapshot times, write-back message times)."""
    global _clock
    _clock = clock
    _recorder.set(None)


def recorder() -> LoopRecorder:
    return _recorder.get()


def scorer() -> Scorer:
    return _scorer.get()


def _installation_of(location_id: str) -> Any:
    """A location's record (whether it pools), for its model scope."""
    installs = installations()
    return None if installs is None else installs.installation(location_id)


def installations() -> Any:
    """The stack's installations (leadscore.wiring.ghl), or None when none are configured
    (then the legacy single token secret and GHL_FIELD_MAP apply)."""
    return _installations.get()[0]


def installation_of(location_id: str) -> Any:
    """The location's installation; refuses a location that is not installed or disabled."""
    found = installations()
    if found is None:
        return None
    inst = found.installation(location_id)
    if inst is None or not inst.enabled:
        raise ValueError(f"location {location_id} is not installed (or is disabled)")
    return inst


def location_for(location_id: str) -> InstalledLocation:
    """How the location's contacts are read and classed: by its installation, exactly as its
    webhooks are (the stack's GHL_FIELD_MAP when no installations are configured)."""
    return InstalledLocation(installation_of(location_id), ScoreSettings.from_env().ghl_field_map)


def api_for(location_id: str) -> SearchApi:
    """The HighLevel client of a location: its installation's token, else the legacy one."""
    installation_of(location_id)  # refuses a location that is not installed or disabled
    return search_api(WritebackSettings.from_env(), installations(), location_id)


class FlushingCheckpoints:
    """Snapshots first, then the checkpoint that says their contacts are done."""

    def __init__(self, inner: CheckpointStore, rec: LoopRecorder) -> None:
        self.inner = inner
        self.rec = rec

    def load(self, location_id: str, job_id: str) -> Checkpoint | None:
        return self.inner.load(location_id, job_id)

    def save(self, checkpoint: Checkpoint) -> None:
        self.rec.flush()
        self.inner.save(checkpoint)


def _log_progress(progress: Progress) -> None:
    logger.info("backfill progress", extra={"progress": progress.line(), **asdict(progress)})


def run(
    event: Mapping[str, Any],
    *,
    checkpoints: CheckpointStore,
    deadline: float | None,
    api: Callable[[str], SearchApi] = api_for,
    queue: Any = None,
) -> Checkpoint:
    """The job's body (also what tools/backfill.py runs in-process)."""
    location_id = str(event.get("location_id") or "")
    if not location_id:
        raise ValueError("backfill event needs a location_id")
    job_id = str(event.get("job_id") or "default")
    loop = loop_settings()
    rec = recorder()
    if queue is None:
        queue = writeback_queue(ScoreSettings.from_env())
    closed: set[str] = set()
    if event.get("outcomes") is True:
        closed = import_outcomes(
            api(location_id), location_id, rec, OutcomeRuleBook.parse(loop.outcome_rules)
        )
    step = ContactStep(
        scorer=scorer,
        recorder=rec,
        queue=queue,
        location_for=location_for,
        closed_contacts=closed,
        clock=_clock,
    )
    final = run_backfill(
        location_id,
        GhlContactSource(api),
        step,
        FlushingCheckpoints(checkpoints, rec),
        job_id=job_id,
        page_size=loop.backfill_page_size,
        deadline=deadline,
        progress=_log_progress,
        restart=event.get("restart") is True,
    )
    rec.flush()
    return final


def run_install(job: InstallJob, *, deadline: float | None,
                lifecycle: Any = None) -> JobResult:
    """One run of an agency's setup (leadscore.ghl.agency.run_install_job)."""
    if lifecycle is None:
        lifecycle = install_lifecycle(ScoreSettings.from_env())
    result: JobResult = lifecycle.run_job(job, deadline=deadline)
    logger.info("install setup", extra={"company_id": result.company_id,
                                        "finished": result.finished, "statuses": result.counts(),
                                        "failures": result.failures})
    return result


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    loop = loop_settings()
    remaining = context.get_remaining_time_in_millis() / 1000.0
    deadline = time.time() + remaining - min(SAFETY_MARGIN_SECONDS, remaining / 2)
    job = InstallJob.from_event(event)
    if job is not None:
        setup = run_install(job, deadline=deadline)
        metrics.add_metric(name="GhlLocationsSetUp", unit=MetricUnit.Count,
                           value=setup.counts().get(STATUS_READY, 0))
        if not setup.finished:
            invoke_again(event, loop.backfill_function_name or context.function_name)
        return {"finished": setup.finished, "statuses": setup.counts()}
    final = run(event, checkpoints=checkpoint_store(loop), deadline=deadline)
    metrics.add_metric(name="BackfillContacts", unit=MetricUnit.Count, value=final.done)
    if final.finished and event.get("outcomes") is True and loop.location_models \
            and loop.export_function_name:
        # the location's resolved history is recorded: its first model need not wait for
        # the daily export (leadscore.loop.location_export decides whether it is enough)
        invoke_again(ExportRequest(location_id=str(event.get("location_id"))).event(),
                     loop.export_function_name)
    if not final.finished:
        invoke_again(
            {**event, "restart": False}, loop.backfill_function_name or context.function_name
        )
        logger.info("backfill continues in a new invocation", extra={"done": final.done})
    return asdict(final)


def invoke_again(event: Mapping[str, Any], function_name: str) -> None:
    """Start the next run of the job (asynchronous invoke of this function; it resumes from
    the checkpoint), or the location's export after it. The simulation stands in for Lambda
    here."""
    from leadscore.adapters.installations import invoke_async

    invoke_async(function_name, event)
