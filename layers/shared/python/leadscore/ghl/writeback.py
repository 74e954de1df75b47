"""The write-back flow: one queue message -> the score and class onto the HighLevel contact.

Per message (``leadscore.ghl.write_plan`` holds the decisions):
1. ``kind == "webhook"``: score the parsed request first (MODEL_URI, same layer);
2. skip when the class and rounded score equal the last write recorded for the contact;
3. ``PUT /contacts/{id}`` with the two custom fields, then (when the class changed) add the
   class tag and remove the other class tags;
4. record the write (``writeback#<location>#<contact>``).

``functions/writeback/app.py`` is the SQS wiring around :func:`write_back` (batch, deadline,
the adapters); a raised exception returns the message to the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from leadscore.adapters.ghl_api import GhlApiClient
from leadscore.errors import InvalidInput
from leadscore.ghl.messages import MessageError, WritebackMessage, parse_message
from leadscore.ghl.write_plan import LastWrite, plan_write
from leadscore.scoring.lead_score import goes_to_the_crm
from leadscore.scoring.model_store import ModelUnavailable
from leadscore.scoring.service import Scorer
from leadscore.settings import WritebackSettings

logger = Logger(child=True)
# Powertools metrics share one buffer per process: the function's handler flushes these.
metrics = Metrics(namespace="LeadScoring")


class StateStore(Protocol):
    def get(self, location_id: str, contact_id: str) -> LastWrite | None: ...
    def put(
        self, location_id: str, contact_id: str, state: LastWrite, model_version: str
    ) -> None: ...


@dataclass
class WritebackDeps:
    """Everything the flow needs, built once per container (lazily: nothing AWS at import)."""

    settings: WritebackSettings
    api: Callable[[], GhlApiClient]  # a fresh client per message: its wait budget is per message
    state: StateStore
    scorer: Callable[[], Scorer]


def _scored(message: WritebackMessage, deps: WritebackDeps) -> WritebackMessage:
    assert message.webhook is not None
    try:
        score = deps.scorer().score(message.webhook, explain=False)
    except InvalidInput as exc:
        # Cannot get better by retrying, but the DLQ keeps it for a person to look at.
        raise MessageError(f"invalid lead data: {', '.join(exc.paths)}") from exc
    if not goes_to_the_crm(score):
        raise ModelUnavailable("model unavailable")
    return message.with_score(score)


def write_back(body: str, deps: WritebackDeps, log_keys: Mapping[str, str] | None = None) -> str:
    """One queue message -> "written", "fields" (PUT only) or "skipped". Raises to retry."""
    message = parse_message(body)
    keys = {
        **(log_keys or {}),
        "contact_id": message.contact_id,
        "location_id": message.location_id,
        "kind": message.kind,
    }
    if message.needs_scoring:
        message = _scored(message, deps)
    try:
        last = deps.state.get(message.location_id, message.contact_id)
    except Exception:
        # Without the record we cannot skip, but writing the same values again is harmless.
        logger.warning("write-back state unreadable; writing anyway", extra=keys)
        last = None
    plan = plan_write(
        message,
        last,
        score_field_id=deps.settings.ghl_score_field_id,
        class_field_id=deps.settings.ghl_class_field_id,
    )
    if plan.skip:
        logger.info("unchanged score, write skipped", extra=keys)
        metrics.add_metric(name="WritebackSkipped", unit=MetricUnit.Count, value=1)
        return "skipped"

    api = deps.api()
    if plan.custom_fields:
        api.update_custom_fields(plan.contact_id, plan.put_body())
    if plan.add_tags:
        api.add_tags(plan.contact_id, list(plan.add_tags))
    if plan.remove_tags:
        api.remove_tags(plan.contact_id, list(plan.remove_tags))

    try:
        deps.state.put(plan.location_id, plan.contact_id, plan.state, message.model_version or "")
    except Exception:
        logger.warning("write-back state not recorded", extra=keys)
    outcome = "written" if plan.add_tags else "fields"
    logger.info(
        "score written to HighLevel",
        extra={**keys, "predicted_class": plan.predicted_class, "score": plan.score,
               "outcome": outcome, "rate_limit_wait_seconds": api.waited_seconds},
    )
    metrics.add_metric(name="WritebackWritten", unit=MetricUnit.Count, value=1)
    return outcome
