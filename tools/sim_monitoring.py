"""The experiment and the drift of `make simulate`, as hooks of tools/simulate.py.

- ``phase_experiment``: right after the first model is promoted, an experiment "rules vs
  ensemble" (50/50) starts in the store, as an operator would with `modelctl experiment
  create`; from then on every scoring path answers each contact with its variant.
- ``inject_drift``: from week ``drift_from_week`` on, the upstream source of one HighLevel
  field changes its unit (``absorption_rate`` sent in percent instead of as a fraction) on
  every contact, as a broken integration would; the generator's truth does not change.
- ``monitor_week``: after each week, the real MonitorFunction runs on the simulation's clock
  over the week's snapshots (DuckDB over the record folder) and its record is kept.
- ``experiment_results`` / ``drift_results``: the ``experiment`` and ``drift`` entries of
  results.json.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

EXPERIMENT = "rules-vs-ensemble"
DRIFT_FIELD = "absorption_rate"  # HighLevel flat name
DRIFT_FEATURE = "absorption_rate"  # the feature it feeds
DRIFT_SCALE = 100.0  # a fraction (0.12) now sent in percent (12.0)


def _store(world: Any) -> Any:
    from leadscore.adapters.s3_store import S3ObjectStore

    return S3ObjectStore(world.aws["bucket"])


def phase_experiment(world: Any) -> None:
    from leadscore.experiments import store as experiment_store

    # Decided on Brier (the default, declared here as an operator would): the score written
    # to the CRM is the answered probability, and the classes cut it.
    experiment = experiment_store.create(_store(world), EXPERIMENT, ["rules", "champion"],
                                         [50, 50], metric="brier")
    world.results["experiment_started"] = experiment.to_record()


def inject_drift(world: Any, week: int) -> None:
    if week != world.config.drift_from_week:
        return
    fake = world.fake
    field_ids = world.aws["field_ids"]
    changed = 0
    for contact in world.contacts:
        raw = contact.custom_values.get(DRIFT_FIELD)
        if raw is None:
            continue
        scaled = float(raw) * DRIFT_SCALE
        contact.custom_values[DRIFT_FIELD] = str(round(scaled, 4))
        contact.lead.setdefault("market_data", {})[DRIFT_FIELD] = scaled
        stored = fake.locations[contact.location_id].contacts.get(contact.contact_id)
        if stored is not None:  # contacts created later get the new value when they are
            stored.custom_fields[field_ids[(contact.location_id, DRIFT_FIELD)]] = \
                contact.custom_values[DRIFT_FIELD]
        changed += 1
    world.results["drift_injected"] = {"week": week, "field": DRIFT_FIELD,
                                       "feature": DRIFT_FEATURE, "scale": DRIFT_SCALE,
                                       "contacts": changed}


def monitor_week(world: Any, week: int) -> dict[str, Any]:
    """The scheduled monitoring run at the end of the week (its 7-day window = the week)."""
    handler = world.handlers["monitor"]
    handler.reset()
    answer = handler.lambda_handler({"now_ms": int(world.clock() * 1000)}, world.ctx)
    drift = answer.get("drift") or {}
    return {"week": week, "status": answer.get("status"), "rows": drift.get("rows"),
            "alarm": bool(drift.get("alarm")), "drifted_features": drift.get("drifted_features"),
            "max_feature": drift.get("max_feature"), "max_feature_psi":
            drift.get("max_feature_psi"), "score_psi": drift.get("score_psi"),
            "confirmed_drift": answer.get("confirmed_drift")}


def experiment_results(world: Any, name: str = EXPERIMENT) -> dict[str, Any]:
    """Per variant: leads, conversions, AUC ... on the point-in-time rows of the loop."""
    from leadscore.experiments import store as experiment_store
    from leadscore.experiments.rows import experiment_rows_sql, results_for
    from leadscore.loop.local_query import DuckDbQueryRunner

    world.handlers["score"].container().recorder.flush()
    experiment = experiment_store.get(_store(world), name)
    now = datetime.fromtimestamp(world.clock(), tz=UTC)
    rows = DuckDbQueryRunner(world.env["RECORD_DIR"]).query(experiment_rows_sql(now))
    summary, _ = results_for(experiment, rows)
    record = summary.to_record()
    return {"name": record["name"], "metric": record["metric"], "winner": record["winner"],
            "p_value": record["p_value"], "statement": record["statement"],
            "variants": {name: {k: v[k] for k in ("leads", "conversions", "auc", "brier",
                                                  "hot_leads", "hot_conversion_rate",
                                                  "top_decile_lift", "auc_vs_baseline_p_value",
                                                  "brier_vs_baseline_p_value", "warnings")}
                         for name, v in record["variants"].items()}}


def drift_results(world: Any, weekly: list[dict[str, Any]]) -> dict[str, Any]:
    injected = world.results.get("drift_injected")
    start = injected["week"] if injected else math.inf
    before = [w for w in weekly if w["week"] < start]
    after = [w for w in weekly if w["week"] >= start]
    first = next((w for w in after if w["alarm"]), None)
    return {
        "injected": injected,
        "weekly": weekly,
        "alarms_before_injection": [w["week"] for w in before if w["alarm"]],
        "first_alarm_week": first["week"] if first else None,
        "detected_within_one_window": bool(first and first["week"] == start),
        "feature": (first["drifted_features"] or [None])[0] if first else None,
        "psi": first["max_feature_psi"] if first else None,
    }
