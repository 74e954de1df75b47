"""One scorer builder: the write-back and the backfill score queued webhooks with the same
request limits as /score (a queued webhook was unbounded: its scorer had the defaults)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from leadscore.errors import InvalidInput
from leadscore.settings import ScoreSettings
from leadscore.wiring.scoring import build_scoring, queued_scorer

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"MAX_LIST_ITEMS": "2", "MAX_ERROR_PATHS": "3", "MAX_BATCH_SIZE": "5"}


def _lead() -> dict[str, Any]:
    """The sample request: three comparables, one more than MAX_LIST_ITEMS allows here."""
    lead: dict[str, Any] = json.loads(
        json.loads((ROOT / "events" / "score_request.json").read_text())["body"])
    assert len(lead["features"]["market_data"]["comparables"]) == 3
    return lead


def _limits_of(scorer: Any) -> tuple[int, int, int]:
    service = getattr(scorer, "service", scorer)  # an experiment's scorer wraps the service
    return service.max_list_items, service.max_error_paths, service.max_batch_size


def test_the_api_and_the_queued_paths_get_the_same_limits() -> None:
    settings = ScoreSettings.from_env(LIMITS)
    api = build_scoring(settings, store=None).scorer
    assert _limits_of(api) == _limits_of(queued_scorer(settings)) == (2, 3, 5)


@pytest.mark.parametrize("function", ["writeback", "backfill"])
def test_a_queued_lead_over_a_limit_is_refused_by_both_functions(
    function: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {**LIMITS, "MODEL_URI": "", "MODEL_CACHE_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    if function == "writeback":
        from functions.writeback import app as writeback

        writeback.reset()
        scorer = writeback._scorer.get()
        writeback.reset()
    else:
        from functions.backfill import app as backfill

        backfill._scorer.set(None)
        scorer = backfill.scorer()
        backfill._scorer.set(None)
    with pytest.raises(InvalidInput) as refused:
        scorer.score(_lead(), explain=False)
    assert any("comparables" in path for path in refused.value.paths)
