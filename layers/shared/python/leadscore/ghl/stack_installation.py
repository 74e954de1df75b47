"""The single-stack installation: what the write-back uses while a location has no row in the
installations table (``leadscore.ghl.installations``) — today's stack parameters.

Every location is accepted; the field ids come from ``GHL_SCORE_FIELD_ID`` /
``GHL_CLASS_FIELD_ID`` (the score is written as text, as before) and the token from the one
secret ``GHL_TOKEN_SECRET_ARN``: a Private Integration Token, ``{"token": ...}``, or for
several sub-accounts ``{"locations": {"<locationId>": "<token>", ...}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StackInstallation:
    location_id: str
    score_field_id: str
    class_field_id: str
    enabled: bool = True
    score_field_numeric: bool = False
    class_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass
class StackInstallations:
    score_field_id: str
    class_field_id: str
    #: (location_id, refresh) -> token; raises TokenUnavailable
    token: Callable[[str, bool], str]

    def installation(self, location_id: str) -> StackInstallation | None:
        return StackInstallation(location_id, self.score_field_id, self.class_field_id)

    def access_token(self, location_id: str, *, refresh: bool = False) -> str:
        return self.token(location_id, refresh)
