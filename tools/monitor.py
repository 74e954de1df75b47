"""One monitoring run on a local store: drift, calibration, importance, the health pages.

    python -m tools.monitor --store .demo/store [--now 2026-11-30T00:00:00Z]
                            [--window-days 7] [--threshold 0.25] [--retrain-on-drift]

The same run the scheduled MonitorFunction does in AWS (leadscore.monitoring.job), with
DuckDB standing in for Athena over the store's `loop/` folder. Pages land in
`<store>/monitoring/health/` (`all.html` and one per location); the run's record is printed.
With LOCATION_MODELS=true a location with its own champion (`modelctl --location`) is judged
against it; the record's `locations` gives each location's model, scope and drift.
Exit code 0, or 3 when drift alarms (so a cron line can notify).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from leadscore import registry
from leadscore.bundle import CHAMPION_POINTER_KEY, load_model
from leadscore.experiments.rows import scope_results
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.monitoring.job import (
    Champion,
    MonitorConfig,
    MonitorResult,
    champion_from_model,
    run_monitor,
)
from leadscore.monitoring.sources import resolved_rows
from leadscore.registry.store import LocalObjectStore
from leadscore.settings import ScoreSettings
from leadscore.wiring.scoring import location_champions

ROOT = Path(__file__).resolve().parents[1]

DRIFT_EXIT = 3


def monitor_local(store_dir: Path, now: datetime, config: MonitorConfig) -> MonitorResult:
    store = LocalObjectStore(store_dir)
    champion = registry.get_champion(store)
    if champion is None:
        raise registry.RegistryError("no champion in this store: promote a model first")
    model = load_model(store.root / str(champion["prefix"]))
    runner = DuckDbQueryRunner(store.root)
    own_champion = None
    if ScoreSettings.from_env().location_models:
        # as the score function serves them: a location's own champion beside the agency's
        own = location_champions(ScoreSettings(
            model_uri=f"file://{store.root.resolve()}/{CHAMPION_POINTER_KEY}",
            location_models=True,
            model_cache_dir=str(store.root / ".monitor-models")))

        def own_champion(location_id: str) -> Champion | None:
            found = own(location_id)
            return champion_from_model(found) if found is not None else None

    experiments = scope_results(store, runner, now)  # the agency's and each location's own
    return run_monitor(
        runner, store, champion_from_model(model), now=now, config=config,
        labelled_rows=lambda since, until: resolved_rows(runner, since, until),
        experiment=experiments(None), own_champion=own_champion,
        location_experiment=experiments)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=ROOT / ".demo" / "store")
    parser.add_argument("--now", help="end of the window, ISO-8601 (default: now)")
    parser.add_argument("--window-days", type=int, default=MonitorConfig().window_days)
    parser.add_argument("--threshold", type=float, default=MonitorConfig().psi_threshold)
    args = parser.parse_args(argv)
    now = (datetime.fromisoformat(args.now.replace("Z", "+00:00")) if args.now
           else datetime.now(UTC))
    try:
        result = monitor_local(args.store, now, MonitorConfig(
            window_days=args.window_days, psi_threshold=args.threshold))
    except registry.RegistryError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_record(), indent=2))
    for key in sorted(result.pages):
        print(f"wrote {args.store / key}")
    return DRIFT_EXIT if result.drift is not None and result.drift.alarm else 0


if __name__ == "__main__":
    sys.exit(main())
