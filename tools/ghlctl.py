"""Operator commands for HighLevel installations and parked deliveries.

    python -m tools.ghlctl list
    python -m tools.ghlctl add-pit LOCATION_ID --token-secret-arn ARN [--field-map JSON]
                                   [--thresholds JSON] [--no-discover]
    python -m tools.ghlctl add-pit LOCATION_ID --token pit-... (stores it as <stack>/ghl-pit/<id>)
    python -m tools.ghlctl disable LOCATION_ID [--reason TEXT]
    python -m tools.ghlctl enable LOCATION_ID
    python -m tools.ghlctl discover LOCATION_ID [--no-create] [--schema BUNDLE|schema.json]
    python -m tools.ghlctl pin-thresholds LOCATION_ID (--thresholds JSON | --clear)
    python -m tools.ghlctl pooling --location LOCATION_ID (--allow | --deny) [--columns a,b,c]
    python -m tools.ghlctl scope --location LOCATION_ID   which model scores it now, and why
    python -m tools.ghlctl parked
    python -m tools.ghlctl replay (PARKED_ID ... | --all)
    python -m tools.ghlctl secret (LOCATION_ID ... | --all)   a new workflow secret, shown once
    python -m tools.ghlctl api-key LOCATION_ID ...            a new /score key, shown once
    python -m tools.ghlctl purge (--location LOCATION_ID | --due) [--yes]

Configuration comes from the same environment variables as the functions (the stack's
outputs; docs/GHL_SETUP.md): INSTALLATIONS_TABLE, GHL_TOKEN_KEY_ID, GHL_OAUTH_SECRET_ARN,
GHL_API_BASE, PARKED_BUCKET, and for `replay` everything the scoring function reads
(MODEL_URI, CACHE_TABLE, WRITEBACK_QUEUE_URL, ...). `--stack NAME` names the PIT secrets.
Exit codes: 0 done, 1 refused or failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from leadscore.adapters.ghl_api import GhlApiClient
from leadscore.adapters.installations import (
    DynamoInstallations,
    installations_table,
)
from leadscore.classes import validate_thresholds
from leadscore.errors import InvalidInput
from leadscore.ghl.installations import SOURCE_PIT, SOURCE_SETTINGS, Installation
from leadscore.ghl.lifecycle import discover_fields
from leadscore.ghl.webhook import GhlDeps
from leadscore.settings import InstallSettings, ScoreSettings

ROOT = Path(__file__).resolve().parents[1]


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"{what} must be a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghlctl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="lead-scoring",
                        help="stack name (PIT secrets are <stack>/ghl-pit/<location>)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every installed location and its setup status (no tokens)")
    add = sub.add_parser("add-pit", help="add a location with a Private Integration Token")
    add.add_argument("location_id")
    token = add.add_mutually_exclusive_group(required=True)
    token.add_argument("--token-secret-arn", help="a Secrets Manager secret holding the PIT")
    token.add_argument("--token", help="the PIT itself: stored as <stack>/ghl-pit/<location>")
    add.add_argument("--field-map", default="{}",
                     help='JSON {"<field id | fieldKey | name>": "<flat feature name>"}')
    add.add_argument("--thresholds", default="",
                     help='JSON {"hot": 0.8, "warm": 0.6, "lukewarm": 0.4} for this location')
    add.add_argument("--no-discover", action="store_true",
                     help="do not look up / create the custom fields now")
    disable = sub.add_parser("disable", help="ignore a location from now on (tokens deleted)")
    disable.add_argument("location_id")
    disable.add_argument("--reason", default="disabled by operator")
    enable = sub.add_parser("enable", help="accept a location again")
    enable.add_argument("location_id")
    discover = sub.add_parser("discover", help="look up (and create) a location's fields again")
    discover.add_argument("location_id")
    discover.add_argument("--no-create", action="store_true",
                          help="report missing score/class fields instead of creating them")
    discover.add_argument("--schema", type=Path,
                          help="a team bundle's directory or its schema.json: match the fields "
                          "to its columns and say where each column is read from")
    pin = sub.add_parser("pin-thresholds",
                         help="keep a location's class thresholds whatever a promotion brings")
    pin.add_argument("location_id")
    pinned = pin.add_mutually_exclusive_group(required=True)
    pinned.add_argument("--thresholds", help='JSON {"hot": ..., "warm": ..., "lukewarm": ...}'
                        ' (a promotion that moves thresholds records the previous ones as '
                        'thresholds_moved.from in champion.json)')
    pinned.add_argument("--clear", action="store_true",
                        help="follow the served bundle's thresholds again")
    pooling = sub.add_parser(
        "pooling", help="may the agency's model (trained on pooled rows) score a location "
                        "without a model of its own? Off until allowed")
    pooling.add_argument("--location", dest="location_id", required=True)
    allowed = pooling.add_mutually_exclusive_group(required=True)
    allowed.add_argument("--allow", action="store_true")
    allowed.add_argument("--deny", action="store_true")
    pooling.add_argument("--columns", default=None,
                         help="the columns this location's leads carry, comma-separated, when "
                              "it is not on the real-estate preset ('' for the preset)")
    scope = sub.add_parser(
        "scope", help="which model scores a location now, and why: its own champion, the "
                      "agency's (pooling allowed, schema fits), the rules, or none")
    scope.add_argument("--location", dest="location_id", required=True)
    sub.add_parser("parked", help="deliveries kept because they could not be processed")
    replay = sub.add_parser("replay", help="process parked deliveries again")
    replay.add_argument("parked_ids", nargs="*")
    replay.add_argument("--all", action="store_true")
    secret = sub.add_parser("secret", help="a new workflow secret per location (the old one "
                                           "stops working); printed once, stored hashed")
    secret.add_argument("location_ids", nargs="*")
    secret.add_argument("--all", action="store_true",
                        help="every enabled location (moving off the stack's shared secret)")
    api_key = sub.add_parser("api-key", help="a new /score API key per location (the old one "
                                             "stops working); printed once, stored hashed")
    api_key.add_argument("location_ids", nargs="+")
    purge = sub.add_parser("purge", help="delete a location's data from the stack's stores")
    target = purge.add_mutually_exclusive_group(required=True)
    target.add_argument("--location", help="this location, now")
    target.add_argument("--due", action="store_true",
                        help="every uninstalled location whose grace period is over")
    purge.add_argument("--yes", action="store_true", help="do it (otherwise: what would go)")
    return parser


def _table(settings: InstallSettings) -> DynamoInstallations:
    if not settings.installations_table:
        raise SystemExit("INSTALLATIONS_TABLE is not set")
    return installations_table(settings)


def _summary(inst: Installation) -> dict[str, Any]:
    return {
        "location_id": inst.location_id, "company_id": inst.company_id,
        "enabled": inst.enabled, "token_source": inst.token_source,
        # how far an install's setup got: pending, token, fields, ready, not approved,
        # setup failed, reconnect needed (leadscore.ghl.agency)
        "status": inst.setup_status or ("ready" if inst.enabled else "disabled"),
        "score_field_id": inst.score_field_id, "class_field_id": inst.class_field_id,
        "mapped_fields": len(inst.field_map), "class_thresholds": inst.class_thresholds,
        "installed_at": inst.installed_at, "fields_discovered_at": inst.fields_discovered_at,
        "disabled_reason": inst.disabled_reason,
        "allow_pooling": inst.allow_pooling, "model_columns": list(inst.model_columns),
    }


def _discover(table: DynamoInstallations, settings: InstallSettings, inst: Installation,
              *, create: bool, schema_path: Path | None = None) -> dict[str, Any]:
    from leadscore.columns.schema import Schema
    from leadscore.ghl.fields import column_sources

    schema = None
    if schema_path is not None:
        path = schema_path / "schema.json" if schema_path.is_dir() else schema_path
        schema = Schema.from_dict(json.loads(path.read_text()))
    api = GhlApiClient(settings.api_base, lambda: table.access_token(inst.location_id))
    updated, unresolved = discover_fields(inst, api, create=create, schema=schema)
    table.save(updated)
    out = {**_summary(updated), "unresolved_field_map_keys": unresolved}
    if schema is not None:
        # where each column comes from: a field id, standard:<key>, engagement, "" (nowhere)
        out["columns"] = column_sources(schema, updated.field_map)
    return out


def _store_pit_secret(stack: str, location_id: str, token: str) -> str:
    from leadscore.adapters import client

    secrets = client("secretsmanager")
    name = f"{stack}/ghl-pit/{location_id}"
    try:
        return str(secrets.create_secret(Name=name, SecretString=token)["ARN"])
    except Exception as exc:
        if "ResourceExists" not in type(exc).__name__ and \
                "ResourceExists" not in str(getattr(exc, "response", "")):
            raise
        secrets.put_secret_value(SecretId=name, SecretString=token)
        return str(secrets.describe_secret(SecretId=name)["ARN"])


def _add_pit(args: argparse.Namespace, settings: InstallSettings) -> dict[str, Any]:
    table = _table(settings)
    field_map = _json_object(args.field_map, "--field-map")
    thresholds = None
    if args.thresholds:
        try:
            thresholds = validate_thresholds(_json_object(args.thresholds, "--thresholds"))
        except InvalidInput as exc:
            raise SystemExit(f"--thresholds: {exc.to_dict()}") from None
    arn = args.token_secret_arn or _store_pit_secret(args.stack, args.location_id, args.token)
    current = table.installation(args.location_id, fresh=True)
    base = current or Installation(location_id=args.location_id)
    inst = base.with_changes(token_source=SOURCE_PIT, pit_secret_arn=arn, enabled=True,
                             disabled_reason="", configured_map={str(k): str(v) for k, v in
                                                                 field_map.items()},
                             class_thresholds=thresholds)
    table.save(inst)
    if args.no_discover:
        return _summary(inst)
    return _discover(table, settings, inst, create=True)


def _pin_thresholds(args: argparse.Namespace, settings: InstallSettings) -> dict[str, Any]:
    table = _table(settings)
    inst = table.installation(args.location_id, fresh=True)
    if inst is None:
        raise ValueError(f"location {args.location_id} is not installed")
    thresholds = None
    if not args.clear:
        try:
            thresholds = validate_thresholds(_json_object(args.thresholds, "--thresholds"))
        except InvalidInput as exc:
            raise ValueError(f"--thresholds: {exc.to_dict()}") from None
    inst = inst.with_changes(class_thresholds=thresholds)
    table.save(inst)
    return _summary(inst)


def _pooling(args: argparse.Namespace, settings: InstallSettings) -> dict[str, Any]:
    table = _table(settings)
    inst = table.installation(args.location_id, fresh=True)
    if inst is None:
        raise ValueError(f"location {args.location_id} is not installed")
    changes: dict[str, Any] = {"allow_pooling": bool(args.allow)}
    if args.columns is not None:
        changes["model_columns"] = tuple(c.strip() for c in args.columns.split(",") if c.strip())
    inst = inst.with_changes(**changes)
    table.save(inst)
    return _summary(inst)


def _scope(args: argparse.Namespace, settings: InstallSettings) -> dict[str, Any]:
    """THE scope rule (`leadscore.scoring.scopes.choose_scope`) on the location's record as
    the table holds it and the champions MODEL_URI's store holds now."""
    from leadscore.scoring.scopes import LocationProfile, choose_scope
    from leadscore.wiring.scoring import location_champions, model_store

    score = ScoreSettings.from_env()
    if not score.model_uri:
        raise SystemExit("MODEL_URI is not set (the champion pointer, as the score function has)")
    inst = _table(settings).installation(args.location_id, fresh=True)
    profile = LocationProfile.of(args.location_id, inst)
    own = location_champions(score)(args.location_id)
    agency = model_store(score.model_uri, cache_dir=Path(score.model_cache_dir)).current()
    choice = choose_scope(profile, own, agency)
    return {"location_id": args.location_id, "installed": inst is not None,
            "allow_pooling": profile.allow_pooling, "model_columns": sorted(profile.columns),
            "location_models": score.location_models,
            "own_champion": own and own.version, "agency_champion": agency and agency.version,
            "model_scope": choice.scope,
            "model_version": choice.model.version if choice.model is not None else None,
            "reason": choice.reason or None,
            **({} if score.location_models else {"note": (
                "LOCATION_MODELS is off: the agency's champion scores every location")})}


def _settings_installation(settings: InstallSettings) -> Installation:
    """The single sub-account stack's location as a table record (its first record)."""
    return Installation(location_id=settings.location_id, token_source=SOURCE_SETTINGS,
                        pit_secret_arn=settings.token_secret_arn,
                        score_field_id=settings.score_field_id,
                        class_field_id=settings.class_field_id,
                        configured_map=dict(settings.field_map))


def _issue(args: argparse.Namespace, settings: InstallSettings, kind: str) -> list[dict[str, Any]]:
    from leadscore.ghl import credentials

    table = _table(settings)
    ids = list(args.location_ids)
    if getattr(args, "all", False):
        ids = [i.location_id for i in table.all_installations() if i.enabled]
        if settings.location_id and settings.location_id not in ids:
            ids.append(settings.location_id)
    if not ids:
        raise SystemExit("name location ids" + (" or --all" if kind == credentials.WORKFLOW
                                                 else ""))
    out = []
    for location_id in ids:
        base = _settings_installation(settings) if location_id == settings.location_id else None
        text = credentials.issue(table, location_id, kind, base=base)
        out.append({"location_id": location_id,
                    "workflow_secret" if kind == credentials.WORKFLOW else "api_key": text})
    return out


def _purge(args: argparse.Namespace, settings: InstallSettings) -> int:
    """Delete a location's data from every store of the stack (leadscore.loop.deletion);
    ``--due`` also rewrites the record files without the contacts HighLevel deleted."""
    import time

    from leadscore.adapters.ghl_parked import S3ParkedStore
    from leadscore.adapters.purge import DynamoItems, S3Objects
    from leadscore.ghl.auth import parse_timestamp
    from leadscore.loop.deletion import Eraser, compact, deleted_pairs
    from leadscore.wiring.loop import loop_settings

    table = _table(settings)
    score, loop = ScoreSettings.from_env(), loop_settings()
    if args.due:
        now = time.time()
        targets = [i.location_id for i in table.all_installations()
                   if not i.enabled and i.purge_after
                   and parse_timestamp(i.purge_after).timestamp() <= now]
    else:
        targets = [args.location]
    if not args.yes:
        _print({"would_purge": targets, "confirm_with": "--yes"})
        return 0
    cache_table = score.cache_table or score.webhook_dedup_table
    objects = S3Objects(loop.artifact_bucket) if loop.artifact_bucket else None
    eraser = Eraser(DynamoItems(cache_table) if cache_table else None,
                    installations=DynamoItems(settings.installations_table), objects=objects,
                    parked=S3ParkedStore(score.parked_bucket) if score.parked_bucket else None)
    results: list[dict[str, Any]] = [{"location_id": loc, **eraser.purge_location(loc)}
                                     for loc in targets]
    if args.due and objects is not None:
        pairs, _ = deleted_pairs(objects)
        by_location: dict[str, set[str]] = {}
        for loc, contact in pairs:
            by_location.setdefault(loc, set()).add(contact)
        for loc, contacts in sorted(by_location.items()):
            results.append({"location_id": loc, "deleted_contacts": len(contacts),
                            "record_lines_removed": compact(objects, loc, contacts)})
    _print(results)
    return 0


def webhook_deps() -> GhlDeps:
    """The webhook flow's own dependencies with the API's scorer, as the score function has
    them (leadscore.wiring), without the rest of its container."""
    from leadscore.wiring.ghl import ghl_deps
    from leadscore.wiring.loop import loop_hooks, loop_settings
    from leadscore.wiring.scoring import build_scoring

    settings = ScoreSettings.from_env()
    scoring = build_scoring(settings)
    loop = loop_hooks(loop_settings())
    return ghl_deps(settings, lambda: scoring.scorer, loop=loop,
                    sender=loop.recorder.sender if loop is not None else None,
                    memory_forget=scoring.cache.memory.forget_prefix)


def _replay(args: argparse.Namespace) -> tuple[int, list[dict[str, Any]]]:
    from leadscore.ghl.webhook import replay_parked

    deps = webhook_deps()
    if deps.parked is None:
        raise SystemExit("PARKED_BUCKET is not set")
    ids = [r.parked_id for r in deps.parked.list()] if args.all else args.parked_ids
    if not ids:
        raise SystemExit("name parked ids or --all")
    results, failed = [], 0
    for parked_id in ids:
        record = deps.parked.get(parked_id)
        outcome = replay_parked(record, deps)
        done = 200 <= outcome.status_code < 300 and outcome.body.get("status") != "parked"
        if done:
            deps.parked.delete(parked_id)
        else:
            failed += 1
        results.append({"parked_id": parked_id, "status_code": outcome.status_code,
                        "answer": outcome.body, "removed": done})
    return (1 if failed else 0), results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = InstallSettings.from_env()
    try:
        if args.command == "list":
            _print([_summary(i) for i in _table(settings).all_installations()])
        elif args.command == "add-pit":
            _print(_add_pit(args, settings))
        elif args.command == "disable":
            _table(settings).disable(args.location_id, args.reason)
            _print({"location_id": args.location_id, "enabled": False})
        elif args.command in ("enable", "discover"):
            table = _table(settings)
            inst = table.installation(args.location_id, fresh=True)
            if inst is None and args.location_id == settings.location_id:
                # The single sub-account stack: its first discovery writes a table record
                # (token from GHL_TOKEN_SECRET_ARN) that wins over the stack parameters.
                inst = Installation(location_id=settings.location_id,
                                    token_source=SOURCE_SETTINGS,
                                    pit_secret_arn=settings.token_secret_arn,
                                    score_field_id=settings.score_field_id,
                                    class_field_id=settings.class_field_id,
                                    configured_map=dict(settings.field_map))
                table.save(inst)
            if inst is None:
                print(f"location {args.location_id} is not installed", file=sys.stderr)
                return 1
            if args.command == "enable":
                inst = inst.with_changes(enabled=True, disabled_reason="")
                table.save(inst)
                _print(_summary(inst))
            else:
                _print(_discover(table, settings, inst, create=not args.no_create,
                                 schema_path=args.schema))
        elif args.command == "pin-thresholds":
            _print(_pin_thresholds(args, settings))
        elif args.command == "pooling":
            _print(_pooling(args, settings))
        elif args.command == "scope":
            _print(_scope(args, settings))
        elif args.command == "parked":
            from leadscore.adapters.ghl_parked import S3ParkedStore

            store = S3ParkedStore(ScoreSettings.from_env().parked_bucket)
            _print([{k: v for k, v in r.to_json().items() if k != "body_b64"}
                    for r in store.list()])
        elif args.command == "replay":
            code, results = _replay(args)
            _print(results)
            return code
        elif args.command in ("secret", "api-key"):
            from leadscore.ghl import credentials

            kind = credentials.WORKFLOW if args.command == "secret" else credentials.API_KEY
            print("Shown once: store it now (only its hash is kept).", file=sys.stderr)
            _print(_issue(args, settings, kind))
        elif args.command == "purge":
            return _purge(args, settings)
    except SystemExit:
        raise
    except Exception as exc:
        print(f"{args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
