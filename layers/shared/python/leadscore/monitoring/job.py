"""One monitoring run: drift, calibration, importance and health pages over a rolling window.

Runs on a schedule (daily by default) over the loop's tables, through the same `QueryRunner`
as the labelled export (Athena in AWS, DuckDB locally):

1. the window's contacts (each one's latest snapshot; at most ``max_rows``, a uniform sample:
   snapshot ids are random), compared with the champion bundle's `reference.json` (PSI per
   feature; of the score, on the snapshots the champion itself answered);
2. the leads resolved in the window (the point-in-time labelled rows), for calibration now,
   lift by decile and, once per ISO week, permutation importance with the champion;
3. one health page per location and one for all, plus a JSON record of the run, written to
   the store under ``monitoring/``.

A drift alarm is "confirmed" when this run and the previous one both alarm; with
``retrain_on_drift`` a confirmed drift asks for an early labelled export (which starts the
ordinary retraining path and its gate).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from leadscore.columns.schema import Schema
from leadscore.errors import InvalidInput
from leadscore.loop.snapshots import team_fields
from leadscore.monitoring import drift as drift_mod
from leadscore.monitoring.health_page import HealthData, render
from leadscore.monitoring.importance import permutation_importance
from leadscore.monitoring.reference import Reference, load_reference
from leadscore.registry.store import ObjectNotFound, ObjectStore
from leadscore.scoring import scopes

if TYPE_CHECKING:
    from leadscore.bundle import LoadedModel

logger = logging.getLogger(__name__)

MONITORING_PREFIX = "monitoring/"
HEALTH_PREFIX = "monitoring/health/"
LATEST_KEY = "monitoring/drift/latest.json"
IMPORTANCE_KEY = "monitoring/importance.json"
MAX_IMPORTANCE_WEEKS = 26
OVERALL = "all"
_DATE = "%Y-%m-%d"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")

# One row per contact (its latest snapshot in the window): drift is about this week's leads,
# not about how often each was re-scored (a chatty lead's message webhooks would weigh it 10x).
WINDOW_SNAPSHOTS_SQL = """
WITH latest AS (
    SELECT location_id, contact_id, snapshot_id, model_version, predicted_score, features,
           inputs, scored_at_ms,
           ROW_NUMBER() OVER (
               PARTITION BY location_id, contact_id
               ORDER BY scored_at_ms DESC, snapshot_id DESC
           ) AS snapshot_rank
    FROM snapshots
    WHERE dt >= '{since_dt}' AND dt <= '{until_dt}'
      AND scored_at_ms >= {since_ms} AND scored_at_ms < {until_ms}
      AND point_in_time AND (features IS NOT NULL OR inputs IS NOT NULL)
)
SELECT location_id, model_version, predicted_score, features, inputs, scored_at_ms
FROM latest
WHERE snapshot_rank = 1
ORDER BY snapshot_id
LIMIT {max_rows}
"""


class QueryRunner(Protocol):
    def query(self, sql: str) -> list[dict[str, Any]]: ...


Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    window_days: int = 7
    psi_threshold: float = drift_mod.DEFAULT_PSI_THRESHOLD
    min_rows: int = drift_mod.DEFAULT_MIN_ROWS
    max_rows: int = 20_000
    retrain_on_drift: bool = False


@dataclass(frozen=True, slots=True)
class Champion:
    version: str
    feature_names: Sequence[str]
    reference: Reference | None
    predict: Predict
    #: a team's schema: snapshots keep raw column values, read through it (`team_vectors`)
    schema: Schema | None = None


@dataclass(slots=True)
class MonitorResult:
    drift: drift_mod.DriftReport | None
    confirmed_drift: bool
    pages: dict[str, str] = field(default_factory=dict)  # store key -> HTML
    importance_week: str | None = None
    calibration: dict[str, Any] | None = None
    resolved_rows: int = 0
    retrain_requested: bool = False
    #: each location seen in the window: its model, the scope that served it, its drift
    locations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "drift": self.drift.to_record() if self.drift else None,
            "confirmed_drift": self.confirmed_drift,
            "pages": sorted(self.pages), "importance_week": self.importance_week,
            "calibration": self.calibration, "resolved_rows": self.resolved_rows,
            "retrain_requested": self.retrain_requested,
            "locations": self.locations,
        }


def champion_from_model(model: LoadedModel) -> Champion:
    """The served bundle as monitoring sees it: its own feature names and reference."""
    names = [str(n) for n in model.manifest.get("feature_names", [])]

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x.astype(np.float32)).score, dtype=np.float64)

    return Champion(model.version, names, load_reference(model.path), predict,
                    getattr(model, "schema", None))


def team_vectors(rows: Sequence[dict[str, Any]], schema: Schema) -> None:
    """Each row holding a team's raw columns gets ``features``: its values read through the
    champion's schema (ages from the day it was scored), the same numbers the model saw;
    a row the schema cannot read keeps none (left out, like a row of another width)."""
    for row in rows:
        fields = team_fields(row)
        if fields is None:
            continue
        try:
            at = row.get("scored_at_ms")
            today = (datetime.fromtimestamp(int(at) / 1000.0, tz=UTC).date()
                     if at is not None else None)
            row["features"] = schema.encode_fields(fields, today=today).values.tolist()
        except (InvalidInput, TypeError, ValueError, OverflowError, OSError):
            row["features"] = None


def served_scope(rows: Sequence[Mapping[str, Any]], own: Champion | None) -> str:
    """The scope that serves a location: its own champion when it has one; else what answered
    most of its leads in the window: the rules, or the agency's champion (this one or an
    earlier one; an unscored lead leaves no snapshot)."""
    if own is not None:
        return scopes.LOCATION
    versions = Counter(str(r.get("model_version") or "") for r in rows)
    if versions and versions.most_common(1)[0][0] == "rules":
        return scopes.RULES
    return scopes.AGENCY


def location_entry(champion: Champion, scope: str, rows: int,
                   report: drift_mod.DriftReport | None, confirmed: bool) -> dict[str, Any]:
    """A location's line in the run's record (what `modelctl --location ... health`, the
    health pages and the dashboard show)."""
    record = report.to_record() if report else None
    return {"model_version": champion.version, "model_scope": scope, "snapshots": rows,
            "drift_alarm": bool(report and report.alarm), "confirmed_drift": confirmed,
            **({k: record[k] for k in ("enough_rows", "drifted_features", "max_feature",
                                       "max_feature_psi", "score_psi")} if record else {})}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def window_snapshots_sql(since: datetime, until: datetime, max_rows: int) -> str:
    return WINDOW_SNAPSHOTS_SQL.format(
        since_dt=since.strftime(_DATE), until_dt=until.strftime(_DATE),
        since_ms=int(_ms(since)), until_ms=int(_ms(until)), max_rows=int(max_rows))


def _features(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> np.ndarray:
    return drift_mod.feature_matrix(rows, names)


def _scores(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    return np.array([float(r["predicted_score"]) for r in rows
                     if r.get("predicted_score") is not None], dtype=np.float64)


def _by_location(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row.get("location_id") or ""), []).append(row)
    return grouped


def page_key(scope: str) -> str:
    name = _SAFE_NAME.sub("_", scope)[:64] or "unknown"
    return f"{HEALTH_PREFIX}{name}.html"


def _read_json(store: ObjectStore, key: str) -> Any:
    try:
        return json.loads(store.get_bytes(key))
    except ObjectNotFound:
        return None


def _importance_history(store: ObjectStore) -> dict[str, dict[str, float]]:
    found = _read_json(store, IMPORTANCE_KEY)
    return found if isinstance(found, dict) else {}


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def run_monitor(
    runner: QueryRunner,
    store: ObjectStore,
    champion: Champion,
    *,
    now: datetime,
    config: MonitorConfig,
    labelled_rows: Callable[[datetime, datetime], list[dict[str, Any]]],
    experiment: Mapping[str, Any] | None = None,
    request_export: Callable[[], bool] | None = None,
    own_champion: Callable[[str], Champion | None] | None = None,
    request_location_export: Callable[[str], bool] | None = None,
    location_experiment: Callable[[str], Mapping[str, Any] | None] | None = None,
) -> MonitorResult:
    """One run. ``labelled_rows(since, until)`` answers the leads resolved in the window
    (the loop's point-in-time rows, with ``features``, ``predicted_score``, ``converted``).
    ``own_champion(location_id)``: the location's own champion, if it has one (the serving
    rule's first scope); such a location's drift and page are measured against its own
    model, the others' against ``champion`` (the agency's). With ``retrain_on_drift``, a
    confirmed drift of a location with its own champion asks for that location's export
    (``request_location_export(location_id)``): its model retrains on its own rows, as the
    agency's does on a confirmed drift of all locations together. The page of a location with
    its own champion shows that location's own experiment (``location_experiment``), every
    other page ``experiment`` (the agency's: it routes the leads the agency's model serves)."""
    until = now.astimezone(UTC)
    since = until - timedelta(days=config.window_days)
    window = (since.isoformat(timespec="seconds"), until.isoformat(timespec="seconds"))
    snapshots = runner.query(window_snapshots_sql(since, until, config.max_rows))
    # what the served scores are judged on: a lead kept unscored while no model served has an
    # outcome but no score (its inputs train the next model; they judge no model's scores)
    resolved = [r for r in labelled_rows(since, until) if r.get("converted") is not None
                and r.get("predicted_score") is not None]
    # a location's own model reads its raw rows through its own schema: kept before the
    # agency's schema writes its vectors into them
    raw = ({id(r): dict(r) for r in [*snapshots, *resolved]} if own_champion else {})
    if champion.schema is not None:
        team_vectors(snapshots, champion.schema)
        team_vectors(resolved, champion.schema)
    names = list(champion.feature_names)

    def served(rows: Sequence[Mapping[str, Any]],
               model: Champion = champion) -> list[Mapping[str, Any]]:
        # The score's reference is the champion's own held-out scores: the score PSI and the
        # page's score chart both read only what it answered (not the rules arm of an
        # experiment, not an earlier champion's scores), so they cannot disagree.
        return [r for r in rows if r.get("model_version") == model.version]

    def check(rows: Sequence[Mapping[str, Any]], outcomes: Sequence[Mapping[str, Any]],
              model: Champion = champion) -> drift_mod.DriftReport | None:
        if model.reference is None:
            return None
        y = np.array([bool(int(r["converted"])) for r in outcomes], dtype=bool)
        return drift_mod.check_window(
            model.reference, list(model.feature_names),
            _features(rows, list(model.feature_names)), _scores(served(rows, model)),
            window=window,
            threshold=config.psi_threshold, min_rows=config.min_rows,
            outcomes=(_scores(outcomes), y) if outcomes else None)

    def read_by(model: Champion, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        copies = [dict(raw[id(r)]) for r in rows]
        if model.schema is not None:
            team_vectors(copies, model.schema)
        return copies

    overall = check(snapshots, resolved)
    result = MonitorResult(drift=overall, confirmed_drift=False, resolved_rows=len(resolved),
                           calibration=overall.calibration if overall else None)

    previous = _read_json(store, LATEST_KEY)
    previous_alarm = bool(previous and previous.get("drift", {}) and
                          previous["drift"].get("alarm"))
    if overall is not None and overall.alarm:
        result.confirmed_drift = previous_alarm
        logger.warning("drift: %s over PSI %s (score PSI %.3f)",
                       ", ".join(overall.drifted) or "score", config.psi_threshold,
                       overall.score_psi)
    if result.confirmed_drift and config.retrain_on_drift and request_export is not None:
        result.retrain_requested = request_export()

    history = _importance_history(store)
    week = iso_week(until)
    if week not in history and resolved:
        drops = permutation_importance(
            champion.predict, names, _features(resolved, names),
            np.array([bool(int(r["converted"])) for r in resolved if _width_ok(r, names)]))
        if drops is not None:
            history[week] = drops
            history = dict(sorted(history.items())[-MAX_IMPORTANCE_WEEKS:])
            store.put_bytes(IMPORTANCE_KEY, json.dumps(history, indent=2).encode(),
                            "application/json")
            result.importance_week = week

    generated = until.isoformat(timespec="seconds")
    snapshots_by_location = _by_location(snapshots)
    resolved_by_location = _by_location(resolved)
    previous_locations = (previous or {}).get("locations") or {}
    pages: list[tuple[str, Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]],
                      drift_mod.DriftReport | None, Champion, str | None,
                      Mapping[str, Any] | None]] = [
        (OVERALL, snapshots, resolved, overall, champion, None, experiment)]
    for location in sorted(snapshots_by_location):
        here: Sequence[Mapping[str, Any]] = snapshots_by_location[location]
        resolved_here: Sequence[Mapping[str, Any]] = resolved_by_location.get(location, [])
        own = own_champion(location) if own_champion is not None and location else None
        model = own or champion
        if own is not None:
            here, resolved_here = read_by(own, here), read_by(own, resolved_here)
        report = check(here, resolved_here, model)
        scope = served_scope(here, own)
        if location:
            before = previous_locations.get(location) or {}
            entry = location_entry(
                model, scope, len(here), report,
                confirmed=bool(report and report.alarm and before.get("drift_alarm")))
            if (own is not None and entry["confirmed_drift"] and config.retrain_on_drift
                    and request_location_export is not None):
                entry["retrain_requested"] = request_location_export(location)
            result.locations[location] = entry
        shown = experiment if own is None else (
            location_experiment(location) if location_experiment is not None else None)
        pages.append((location or "unknown", here, resolved_here, report, model, scope, shown))
    for scope, rows, outcomes, report, model, served_by, running in pages:
        html_page = render(HealthData(
            scope="All locations" if scope == OVERALL else scope, generated_at=generated,
            model_version=model.version, reference=model.reference, drift=report,
            recent_scores=_scores(outcomes),
            recent_outcomes=np.array([bool(int(r["converted"])) for r in outcomes], dtype=bool),
            window_scores=_scores(served(rows, model)), window_leads=len(rows),
            importance_by_week=history, experiment=running, model_scope=served_by))
        key = page_key(scope)
        store.put_bytes(key, html_page.encode(), "text/html; charset=utf-8")
        result.pages[key] = html_page

    record = result.to_record() | {"generated_at": generated, "model_version": champion.version}
    store.put_bytes(f"{MONITORING_PREFIX}drift/{until.strftime(_DATE)}.json",
                    json.dumps(record, indent=2).encode(), "application/json")
    store.put_bytes(LATEST_KEY, json.dumps(record, indent=2).encode(), "application/json")
    return result


def _width_ok(row: Mapping[str, Any], names: Sequence[str]) -> bool:
    features = row.get("features")
    return isinstance(features, list) and len(features) == len(names)
