"""What to write back onto a HighLevel contact, and when to skip (pure logic, no AWS).

A scored queue message becomes a ``WritePlan``:

* ``PUT /contacts/{id}`` with the score (rounded int 0-100, as text) and the class custom
  fields; never ``tags`` in that body (it would replace every tag of the contact);
* ``POST /contacts/{id}/tags`` adding ``<class>-lead``;
* ``DELETE /contacts/{id}/tags`` removing the other class tags.

A first write (no last write recorded) whose message carries the contact's tags as read with
its inputs (a backfill page) removes only the other class tags the contact had, and sends no
DELETE when it had none: on a fresh install that is every contact, a third of the backfill's
requests against the location's rate limit. A class tag added by hand between that read and
the write stays (the next class change removes it).

When the last write recorded for the contact has the same class and rounded score, nothing is
written (ContactUpdate storms must not burn the rate limit). When only the score changed,
the tags are already right and only the PUT is sent. Both shortcuts trust that the contact
carries the last write; after an unfinished write (``ContactState.unfinished``: it may have
added its tag and failed before removing the others) they do not hold, and the next write is
a whole one: fields, its tag, and every other class tag removed (whatever tags a message
carries were read before that write).

The per-location parts (field ids, tag names, whether the score field is a number) come from
the location's installation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from leadscore.classes import CLASSES
from leadscore.ghl.messages import MessageError, WritebackMessage, rounded_score

TAG_SUFFIX = "-lead"

#: Keep the last-write record long enough to absorb update storms, short enough that a field
#: edited by hand in HighLevel is eventually corrected.
STATE_TTL_SECONDS = 30 * 24 * 3600


def class_tag(predicted_class: str, tags: Mapping[str, str] | None = None) -> str:
    """The tag of a class: the installation's name for it, else ``<class>-lead``."""
    if tags and tags.get(predicted_class):
        return tags[predicted_class]
    return f"{predicted_class}{TAG_SUFFIX}"


@dataclass(frozen=True)
class ApiCall:
    """One HighLevel request: method, path below the API base URL, JSON body."""

    method: str
    path: str
    body: Mapping[str, Any] | None = None


def contact_path(contact_id: str, suffix: str = "") -> str:
    return "/contacts/" + quote(contact_id, safe="") + suffix


@dataclass(frozen=True)
class LastWrite:
    """What was last written onto a contact (the ``writeback#`` state item)."""

    predicted_class: str
    score: int


@dataclass(frozen=True)
class ContactState:
    """The ``writeback#`` item of a contact: the last write, the order key of the score it
    came from (``WritebackMessage.order``), and another writer's lease (epoch ms, 0 = none).

    ``unfinished``: a writer took the lease after that last write and may have sent calls
    without recording them (a failure between the POST of its tag and the DELETE of the others,
    a lost answer, a crash): the contact's fields and class tags may hold part of that write,
    so ``last`` no longer says what the contact carries."""

    last: LastWrite | None
    order: str = ""
    lease_until_ms: int = 0
    unfinished: bool = False


@dataclass(frozen=True)
class WritePlan:
    contact_id: str
    location_id: str
    score: int
    predicted_class: str
    custom_fields: tuple[tuple[str, str | int], ...]
    add_tags: tuple[str, ...]
    remove_tags: tuple[str, ...]
    skip: bool

    def put_body(self) -> dict[str, Any]:
        """The PUT /contacts/{id} body: custom fields only, never ``tags``."""
        return {"customFields": [{"id": fid, "field_value": v} for fid, v in self.custom_fields]}

    def calls(self) -> list[ApiCall]:
        """The requests, in order: fields, then the class tag, then the other class tags."""
        out: list[ApiCall] = []
        if self.custom_fields:
            out.append(ApiCall("PUT", contact_path(self.contact_id), self.put_body()))
        if self.add_tags:
            path = contact_path(self.contact_id, "/tags")
            out.append(ApiCall("POST", path, {"tags": list(self.add_tags)}))
        if self.remove_tags:
            path = contact_path(self.contact_id, "/tags")
            out.append(ApiCall("DELETE", path, {"tags": list(self.remove_tags)}))
        return out

    @property
    def state(self) -> LastWrite:
        return LastWrite(predicted_class=self.predicted_class, score=self.score)


def state_key(location_id: str, contact_id: str) -> str:
    """The DynamoDB partition key of the last-write record (ARCHITECTURE.md)."""
    return f"writeback#{location_id}#{contact_id}"


def plan_write(
    message: WritebackMessage,
    last: LastWrite | None,
    *,
    score_field_id: str,
    class_field_id: str,
    class_tags: Mapping[str, str] | None = None,
    score_as_number: bool = False,
    unfinished: bool = False,
) -> WritePlan:
    """Decide the requests for a scored message given the last recorded write (and whether a
    write was started after it and not finished: then nothing about the contact is assumed)."""
    if message.predicted_score is None or message.predicted_class is None:
        raise MessageError("the message has not been scored")
    if message.predicted_class not in CLASSES:
        raise MessageError(f"unknown predicted_class {message.predicted_class!r}")
    score = rounded_score(message.predicted_score)
    cls = message.predicted_class
    fields: list[tuple[str, str | int]] = []
    if score_field_id:
        fields.append((score_field_id, score if score_as_number else str(score)))
    if class_field_id:
        fields.append((class_field_id, cls))
    known = None if unfinished else last  # what the contact surely carries
    unchanged = known is not None and known.predicted_class == cls and known.score == score
    tags_current = known is not None and known.predicted_class == cls
    add = () if tags_current else (class_tag(cls, class_tags),)
    remove = () if tags_current else tuple(
        class_tag(c, class_tags) for c in CLASSES if c != cls
    )
    if last is None and not unfinished and message.contact_tags is not None:
        carried = {tag.casefold() for tag in message.contact_tags}
        remove = tuple(tag for tag in remove if tag.casefold() in carried)
    return WritePlan(
        contact_id=message.contact_id,
        location_id=message.location_id,
        score=score,
        predicted_class=cls,
        custom_fields=tuple(fields),
        add_tags=add,
        remove_tags=remove,
        skip=unchanged,
    )
