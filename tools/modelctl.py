"""Operator commands for the model registry, on a local store or on the S3 bucket.

    python -m tools.modelctl --store .demo/store promote BUNDLE_DIR [--eval FILE] [--force]
                                                     [--allow-schema-change]
    python -m tools.modelctl --store s3://my-bucket list
    python -m tools.modelctl --store file:///abs/store rollback
    python -m tools.modelctl --store .demo/store why-rejected VERSION_OR_JOB
    python -m tools.modelctl --store .demo/store show-champion
    python -m tools.modelctl --store s3://my-bucket --location LOCATION_ID promote|list|rollback ...
    python -m tools.modelctl --store s3://my-bucket locations
    python -m tools.modelctl --store s3://my-bucket [--location LOCATION_ID] health

`--location` works on that location's own models (`locations/<id>/` in the same store: its
champion pointer, versions, rejections, evaluation set and experiments); the agency's
champion and every other location's are never read or written by it. `health` reads the last
monitoring run (`monitoring/drift/latest.json`): the location's model, the scope that served
it (location, agency, rules) and its drift, and where its health page is.

`promote` MEASURES the candidate (leadscore.registry.gate): its model.onnx runs under
onnxruntime on generated probe leads and on the bundle's reference rows (outputs finite, in
[0, 1], inside their interval, not constant, parity recomputed), and on labelled rows: `--eval
FILE` (a training-format CSV or JSON Lines file the model never trained on) and the store's
platform-held evaluation set when there is one. On those rows: AUC (its one-sided 95 % lower
bound), Brier, log loss against the base rate, calibration, precision in the top 10 %; and,
against the champion on the same rows (each model reads the raw rows through its own schema),
the one decision rule: the upper confidence bound of the candidate's loss within the margin for
every metric. The manifest's figures are recorded as claims, never decisive. Without --eval and
without a platform-held set no metric is measured, and the answer says so.
Thresholds from the environment (leadscore.settings.PromoteSettings): MIN_AUC, MAX_BRIER,
MIN_CONVERSIONS, GATE_CONFIDENCE, MAX_AUC_DROP, MAX_BRIER_LOSS, MAX_ECE_LOSS,
MAX_TOP_PRECISION_LOSS, TOP_FRACTION. `--force` overrides the metric checks, never the bundle
verification or the output checks. A candidate that changes what callers must send (the
real-estate features <-> a team's columns, a column's kind) is refused unless
`--allow-schema-change` is given; the answer then says who will be answered 400.
Exit codes: 0 done, 1 refused (gate, verification, nothing to roll back, unknown version),
2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from leadscore import registry
from leadscore.adapters.s3_store import open_store
from leadscore.monitoring import job as monitoring
from leadscore.registry import gate
from leadscore.registry.locations import location_champions, location_store
from leadscore.registry.store import ObjectNotFound, ObjectStore
from leadscore.settings import PromoteSettings

from tools import experiment_commands

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_STORE = ".demo/store"


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelctl", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store", default=DEFAULT_STORE,
        help="model store: a directory, file:///dir or s3://bucket[/prefix] "
             f"(default {DEFAULT_STORE})",
    )
    parser.add_argument(
        "--location", default=None, metavar="LOCATION_ID",
        help="a location's own models instead of the agency's (its champion only)")
    sub = parser.add_subparsers(dest="command", required=True)
    promote = sub.add_parser("promote", help="verify, gate and promote a local bundle directory")
    promote.add_argument("bundle_dir", type=Path)
    promote.add_argument("--eval", dest="eval_file", type=Path, default=None,
                         help="labelled rows the bundle never trained on (.csv or .jsonl, the "
                              "training format): the gate measures AUC, Brier, log loss on them")
    promote.add_argument("--force", action="store_true",
                         help="promote even if metric checks fail (never skips verification "
                              "or the output checks)")
    promote.add_argument("--allow-schema-change", action="store_true",
                         help="allow a candidate that changes what callers send (they will be "
                              "answered 400 until they change)")
    sub.add_parser("list", help="every version: champion, previous, stored, rejected")
    sub.add_parser("rollback", help="make the previous champion the champion again")
    why = sub.add_parser("why-rejected", help="the recorded reasons a version or job was refused")
    why.add_argument("version")
    sub.add_parser("show-champion", help="the current champion record")
    sub.add_parser("locations", help="every location with models of its own, and its champion")
    sub.add_parser("health", help="the last monitoring run: drift and the health page (with "
                                  "--location: that location's model, scope and drift)")
    experiment_commands.add_parser(sub)
    return parser


def _eval_rows(path: Path, bundle_dir: Path) -> gate.EvalRows:
    rows, skipped = gate.read_rows_for_bundle(
        path.read_bytes(), jsonl=path.suffix.lower() == ".jsonl", bundle_dir=bundle_dir,
        source=str(path))
    if skipped:
        print(f"modelctl: {skipped} unreadable rows of {path} skipped", file=sys.stderr)
    return rows


def promote_answer(result: registry.PromotionResult) -> dict[str, Any]:
    """What `promote` prints: the decision, what was measured (or plainly that nothing was),
    the champion comparison's statistics and any change callers must make."""
    status = ("already-champion" if result.already_champion
              else "promoted" if result.promoted else "rejected")
    answer: dict[str, Any] = {"status": status, "version": result.version,
                              "reasons": result.reasons}
    measured = (result.gate or {}).get("measured") or {}
    sets = measured.get("evaluation_sets") or {}
    if not any("candidate" in s for s in sets.values()):
        if not result.already_champion:
            answer["not_measured"] = registry.NOT_MEASURED
    else:
        answer["measured_on"] = {
            name: {"rows": s.get("rows"), **{k: s["candidate"].get(k) for k in
                                              ("auc", "brier", "gate_converted")}}
            if "candidate" in s else s.get("not_measured") for name, s in sets.items()}
        decision = {name: s["champion"] for name, s in sets.items() if "champion" in s}
        if decision:
            answer["against_champion"] = decision
            answer["decision_rule"] = measured.get("decision_rule")
    if measured.get("schema_change"):
        answer["schema_change"] = measured["schema_change"]
    return answer


def health(root: ObjectStore, location_id: str | None) -> dict[str, Any]:
    """The last monitoring run as it concerns the agency, or one location: the model that
    served it, the scope, its drift (`leadscore.monitoring.job`'s record) and its page."""
    try:
        record = json.loads(root.get_bytes(monitoring.LATEST_KEY))
    except ObjectNotFound:
        record = None
    if location_id is None:
        champion = registry.get_champion(root)
        return {"champion": champion and champion.get("version"),
                "monitoring": record and {k: record.get(k) for k in (
                    "generated_at", "model_version", "drift", "confirmed_drift",
                    "resolved_rows")},
                "locations": (record or {}).get("locations") or {},
                "page": monitoring.page_key(monitoring.OVERALL)}
    own = registry.get_champion(location_store(root, location_id))
    entry = ((record or {}).get("locations") or {}).get(location_id)
    return {"location_id": location_id, "champion": own and own.get("version"),
            "monitoring": entry and {"generated_at": record.get("generated_at"), **entry},
            "page": monitoring.page_key(location_id)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    store = root = open_store(args.store)
    if args.location is not None:
        try:
            store = location_store(store, args.location)
        except ValueError as exc:
            print(f"modelctl: --location: {exc}", file=sys.stderr)
            return 2
    try:
        if args.command == "experiment":
            return experiment_commands.run(args, store, root)
        if args.command == "promote":
            if not args.bundle_dir.is_dir():
                print(f"modelctl: not a bundle directory: {args.bundle_dir}", file=sys.stderr)
                return 2
            rows = None
            if args.eval_file is not None:
                try:
                    rows = _eval_rows(args.eval_file, args.bundle_dir)
                except (OSError, ValueError) as exc:
                    print(f"modelctl: cannot read --eval {args.eval_file}: {exc}",
                          file=sys.stderr)
                    return 2
            result = registry.promote(
                args.bundle_dir, store, PromoteSettings.from_env(), force=args.force,
                source={"bundle_dir": str(args.bundle_dir.resolve())}, rows=rows,
                allow_schema_change=args.allow_schema_change,
            )
            _print(promote_answer(result))
            return 0 if result.promoted else 1
        if args.command == "list":
            _print(registry.list_versions(store))
            return 0
        if args.command == "rollback":
            restored = registry.rollback(store)
            _print({"status": "rolled-back", "version": restored["version"],
                    "rolled_back_from": restored.get("rolled_back_from")})
            return 0
        if args.command == "locations":
            _print(location_champions(store))
            return 0
        if args.command == "health":
            answer = health(root, args.location)
            _print(answer)
            return 0 if answer.get("monitoring") or answer.get("champion") else 1
        if args.command == "why-rejected":
            _print(registry.why_rejected(args.version, store))
            return 0
        champion = registry.get_champion(store)
        if champion is None:
            print("modelctl: no champion has been promoted yet", file=sys.stderr)
            return 1
        _print(champion)
        return 0
    except registry.RegistryError as exc:
        print(f"modelctl: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
