"""`modelctl experiment ...`: create, show, stop, report and promote-winner.

    modelctl --store DIR experiment create NAME --variants rules,champion[,VERSION]
             --allocation 50,50 [--shadow VERSION] [--metric brier|auc]
    modelctl --store DIR experiment show [NAME]
    modelctl --store DIR experiment stop NAME
    modelctl --store DIR experiment report NAME [--rows FILE] [--html OUT]
    modelctl --store DIR experiment promote-winner NAME

A report joins the experiment's scored leads with their outcomes, point in time (the loop's
labelled rows: the latest snapshot taken before each outcome). With ``--location`` the
experiment is that location's own and only its leads count; the agency's leaves out the
leads of locations whose own experiment has the same name. On a local store the rows are
queried with DuckDB from the store's own `loop/` folder; `--rows FILE` reads them from a JSON
Lines file instead (one labelled row a line: `experiment`, `variant`, `predicted_score`,
`predicted_class`, `converted`).

promote-winner promotes the winning stored version through the same measuring gate as any
candidate, or only stops the experiment when the champion won; it refuses when the rules won
or nothing is significant yet.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from leadscore import registry
from leadscore.bundle import version_prefix
from leadscore.errors import InvalidInput
from leadscore.experiments import report as experiment_report
from leadscore.experiments import results
from leadscore.experiments import store as experiment_store
from leadscore.experiments.definition import CHAMPION, DEFAULT_METRIC, METRICS, RULES
from leadscore.experiments.rows import (
    experiment_rows_sql,
    in_scope,
    locations_with_experiment,
    results_for,
)
from leadscore.registry.store import LocalObjectStore, ObjectStore
from leadscore.settings import PromoteSettings


def add_parser(sub: Any) -> None:
    experiment = sub.add_parser("experiment", help="A/B experiments between scorers")
    commands = experiment.add_subparsers(dest="experiment_command", required=True)
    create = commands.add_parser("create", help="start an experiment")
    create.add_argument("name")
    create.add_argument("--variants", required=True,
                        help="comma-separated: rules, champion and/or model versions")
    create.add_argument("--allocation", required=True, help="comma-separated percentages")
    create.add_argument("--shadow", help="a stored version scored on every lead, not answered")
    create.add_argument("--metric", choices=METRICS, default=DEFAULT_METRIC,
                        help="the primary metric, fixed for the experiment's life: brier (the "
                             "answered probability; default) or auc (the ranking alone)")
    show = commands.add_parser("show", help="the current experiment, or a named one")
    show.add_argument("name", nargs="?")
    stop = commands.add_parser("stop", help="stop the running experiment")
    stop.add_argument("name")
    report = commands.add_parser("report", help="results per variant, with significance")
    report.add_argument("name")
    report.add_argument("--rows", type=Path, help="labelled rows as JSON Lines")
    report.add_argument("--html", type=Path, help="also write the report page here")
    winner = commands.add_parser("promote-winner", help="act on a significant winner")
    winner.add_argument("name")
    winner.add_argument("--rows", type=Path, help="labelled rows as JSON Lines")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _allocation(text: str) -> list[int]:
    try:
        return [int(part) for part in _csv(text)]
    except ValueError:
        raise registry.RegistryError("--allocation takes whole percentages, e.g. 50,50") \
            from None


def _labelled_rows(store: ObjectStore, rows_file: Path | None) -> list[dict[str, Any]]:
    if rows_file is not None:
        return [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
    if not isinstance(store, LocalObjectStore):
        raise registry.RegistryError(
            "on an S3 store, export the labelled rows and pass --rows (Athena: "
            "see docs/MONITORING.md)")
    from leadscore.loop.local_query import DuckDbQueryRunner

    return DuckDbQueryRunner(store.root).query(experiment_rows_sql())


def summarise(store: ObjectStore, name: str, rows_file: Path | None, *,
              root: ObjectStore | None = None, location_id: str | None = None,
              ) -> tuple[results.ExperimentResults, list[results.ResolvedLead]]:
    """The experiment's results on the rows of its scope: ``store`` is where it lives (a
    location's own folder with ``location_id``), ``root`` the stack's store, whose loop tables
    hold every location's rows."""
    root = store if root is None else root
    experiment = experiment_store.get(store, name)
    rows = _labelled_rows(root, rows_file)
    others = () if location_id is not None else locations_with_experiment(root, name, rows)
    return results_for(experiment, in_scope(rows, location_id, others))


def _promote_version(store: ObjectStore, version: str) -> registry.PromotionResult:
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = Path(tmp) / version
        bundle_dir.mkdir()
        prefix = version_prefix(version)
        for key in store.list(prefix):
            (bundle_dir / key[len(prefix):]).write_bytes(store.get_bytes(key))
        return registry.promote(bundle_dir, store, PromoteSettings.from_env(),
                                source={"experiment_winner": version})


def run(args: argparse.Namespace, store: ObjectStore, root: ObjectStore | None = None) -> int:
    """``store``: where the experiments live (a location's folder with ``--location``);
    ``root``: the stack's store (its loop tables), ``store`` itself when None."""
    try:
        return _run(args, store, store if root is None else root)
    except InvalidInput as exc:
        problems = "; ".join(f"{e.path or 'experiment'}: {e.message}" for e in exc.errors)
        raise registry.RegistryError(f"invalid experiment: {problems}") from None


def _run(args: argparse.Namespace, store: ObjectStore, root: ObjectStore) -> int:
    command = args.experiment_command
    if command == "create":
        created = experiment_store.create(store, args.name, _csv(args.variants),
                                          _allocation(args.allocation), args.shadow,
                                          metric=args.metric)
        print(json.dumps(created.to_record(), indent=2))
        return 0
    if command == "show":
        found = experiment_store.get(store, args.name) if args.name \
            else experiment_store.current(store)
        print(json.dumps(found.to_record() if found else None, indent=2))
        return 0
    if command == "stop":
        print(json.dumps(experiment_store.stop(store, args.name).to_record(), indent=2))
        return 0
    summary, leads = summarise(store, args.name, args.rows, root=root,
                               location_id=getattr(args, "location", None))
    if command == "report":
        print(experiment_report.render_text(summary), end="")
        if args.html:
            args.html.parent.mkdir(parents=True, exist_ok=True)
            args.html.write_text(experiment_report.render_html(summary, leads))
            print(f"wrote {args.html}")
        return 0
    # promote-winner
    if summary.winner is None:
        print(f"modelctl: no winner yet. {summary.statement}", file=sys.stderr)
        return 1
    if summary.winner == RULES:
        print("modelctl: the rules won; the model is not promoted. Stop the experiment and "
              "look at the training data before trying again.", file=sys.stderr)
        return 1
    if summary.winner != CHAMPION:
        outcome = _promote_version(store, summary.winner)
        if not outcome.promoted:
            print(f"modelctl: {summary.winner} won the experiment but the gate refused it: "
                  f"{'; '.join(outcome.reasons)}", file=sys.stderr)
            return 1
    stopped = experiment_store.stop(store, args.name, winner=summary.winner)
    print(json.dumps({"status": "winner-applied", "winner": summary.winner,
                      "statement": summary.statement,
                      "experiment": stopped.to_record()}, indent=2))
    return 0
