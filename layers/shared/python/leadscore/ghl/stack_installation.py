"""The single-stack installation: what the write-back uses while a location has no row in the
installations table (``leadscore.ghl.installations``) — today's stack parameters.

Every location is accepted; the field ids come from ``GHL_SCORE_FIELD_ID`` /
``GHL_CLASS_FIELD_ID`` (the score is written as text, as before) and the token from the one
secret ``GHL_TOKEN_SECRET_ARN``: a Private Integration Token, ``{"token": ...}``, or for
several sub-accounts ``{"locations": {"<locationId>": "<token>", ...}}``. The record is the
same `Installation` the table holds, so the write-back reads one model whatever the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from leadscore.ghl.installations import SOURCE_SETTINGS, Installation


@dataclass
class StackInstallations:
    score_field_id: str
    class_field_id: str
    #: (location_id, refresh) -> token; raises TokenUnavailable
    token: Callable[[str, bool], str]

    def installation(self, location_id: str, *, fresh: bool = False) -> Installation | None:
        return Installation(location_id=location_id, token_source=SOURCE_SETTINGS,
                            score_field_id=self.score_field_id,
                            class_field_id=self.class_field_id, score_field_numeric=False)

    def access_token(self, location_id: str, *, refresh: bool = False) -> str:
        return self.token(location_id, refresh)
