"""`make simulate DATA=a.csv,b.csv TARGET=t1,t2 POSITIVE=p1,p2 [EXCLUDE=x,y;z]`: several teams'
CSVs played as an agency's locations, each learning a model of its own, through the real
handlers (tools/simulate.py's world: moto, the fake HighLevel, local training jobs).

Per file (same order in DATA, TARGET, POSITIVE; EXCLUDE a ``;``-separated list per file):

- one location whose custom fields are the file's columns (the install discovers them);
- the file's rows in a seeded random order (a file's own order can be a time order with a
  regime change: in the bank data the first 30 % carry no signal without ``duration``), at
  most ``max_rows`` of them; the first ``past_share`` are past contacts, in HighLevel with
  their fields and a won / lost opportunity, the rest arrive over ``weeks`` weeks as
  ContactCreate / ContactUpdate webhooks and resolve as OpportunityStatusUpdate deliveries
  (`sim_csv.plan_csv` / `week_events`);
- the install's backfill with its outcomes: nothing may score the location yet (no model of
  its own, no pooling), so each closed contact is kept in its own fields; the backfill's end
  asks for the location's export, which uploads its first training set once its resolved
  leads hold enough conversions (`leadscore.loop.location_export`); the retrain function
  trains it (schema inferred, leak guard on), the promote function gates it on the job's gate
  part and the location's own held-out rows and promotes it for that location alone.

Two small locations are added: ``<first file>-small`` (the first file's columns, too few
conversions for a model, pooling allowed for those columns) is served by the agency's model,
trained on the first location's past contacts (that location allows pooling); and
``<second file>-small`` (too few conversions, no pooling) is answered "unscored".

Every week: the resolved leads of each location are scored through ``POST /score/batch``
(each lead naming its location) before their outcomes arrive, next to a default LightGBM
fitted on exactly the rows that location's latest training job trained on; then the
webhooks, the write-back, and the export (the agency's and every location's).
results.json ``locations``: {location: {model_scope, served_auc, baseline_auc, leads}} over the
last ``last_weeks`` weeks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tools.sim_csv import (
    DAY,
    WEEK,
    CsvContact,
    CsvPlan,
    fit_baseline,
    plan_csv,
    read_csv,
    read_table,
    send_contact_event,
    week_events,
)

#: the small locations' rows: too few conversions for a first model at the default threshold
SMALL_ROWS = 300


@dataclass
class LocationSource:
    name: str
    path: Path
    target: str
    positive: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    rows: list[int] = field(default_factory=list)  # which data rows, in play order
    pooling: bool = False
    past_share: float = 0.7


@dataclass
class Played:
    """One location of the run."""

    source: LocationSource
    location_id: str
    plan: CsvPlan
    field_ids: dict[str, str]  # column -> the location's custom field id
    baseline: Any = None
    baseline_job: str = ""
    names: dict[str, str] = field(default_factory=dict)  # column -> the name the install read

    def fields(self, values: dict[str, str]) -> dict[str, str]:
        """A contact's values by the names the location's fields are read as (its field map,
        discovered at install): what its webhooks, exports and models use."""
        return {self.names.get(k, k): v for k, v in values.items()}


def _split(text: str, sep: str = ",") -> list[str]:
    return [p.strip() for p in text.split(sep)]


def sources(data: str, target: str, positive: str, exclude: str, *, seed: int,
            max_rows: int | str) -> list[LocationSource]:
    """The DATA / TARGET / POSITIVE / EXCLUDE lists -> one source per file, plus the two small
    locations. POSITIVE may give several values of one file with ``|`` (``yes|Yes``)."""
    files, targets, positives = _split(data), _split(target), _split(positive)
    excludes = _split(exclude, ";") if exclude else [""] * len(files)
    if not len(files) == len(targets) == len(positives) == len(excludes) or len(files) < 2:
        raise ValueError("DATA, TARGET and POSITIVE need one entry per file (at least two "
                         "files), EXCLUDE one ';'-separated entry per file when given")
    caps = [int(n) for n in _split(str(max_rows))]
    caps = caps * len(files) if len(caps) == 1 else caps
    if len(caps) != len(files):
        raise ValueError("MAX_ROWS needs one figure, or one entry per file")
    rng = np.random.default_rng(seed)
    out: list[LocationSource] = []
    smalls: list[LocationSource] = []
    for i, (path, tgt, pos, exc) in enumerate(zip(files, targets, positives, excludes,
                                                   strict=True)):
        _, rows = read_csv(Path(path))
        order = [int(k) for k in rng.permutation(len(rows))]
        main = order[:min(caps[i], len(order) - SMALL_ROWS)]
        src = LocationSource(Path(path).stem, Path(path), tgt,
                             tuple(p for p in pos.split("|") if p),
                             tuple(c for c in exc.split(",") if c), main, pooling=i == 0)
        out.append(src)
        if i < 2:  # the rows the big location never sees
            smalls.append(replace(src, name=f"{src.name}-small", rows=order[-SMALL_ROWS:],
                                  pooling=i == 0, past_share=0.5))
    return [*out, *smalls]


def setup(world: Any, srcs: list[LocationSource]) -> list[Played]:
    """The stack, one location per source with its custom fields and past contacts (each with
    its won / lost opportunity), the installations (fields discovered; pooling where the
    source allows it), per-location models on."""
    from leadscore.columns.keys import normalise_key

    from tests.fixtures.fake_highlevel import ghl_id
    from tools import simulate

    cfg = world.config
    public_pem = simulate.setup_aws(world)
    fake = world.fake
    played: list[Played] = []
    for src in srcs:
        header, rows = read_csv(src.path)
        plan = plan_csv(header, [rows[k] for k in src.rows], target=src.target,
                        positive=src.positive, weeks=cfg.weeks, past_share=src.past_share,
                        seed=cfg.seed, contact_id=ghl_id)
        loc = fake.add_location(name=src.name).id
        fake.locations[loc].rate.burst_max = 100_000
        fake.locations[loc].rate.daily_max = 10_000_000
        ids = {c: fake.add_field(loc, c, "TEXT", field_key=f"contact.{normalise_key(c)}").id
               for c in plan.columns}
        world.aws.setdefault("score_fields", {})[loc] = (
            fake.add_field(loc, "Lead Score", "NUMERICAL").id,
            fake.add_field(loc, "Lead Class", "TEXT").id)
        closed_at = world.clock.start - 10 * DAY
        for c in plan.contacts:
            c.location_id = loc
        for c in plan.past:
            fake.add_contact(loc, contact_id=c.contact_id, created_at=world.clock.start - 60 * DAY,
                             custom_fields={ids[k]: v for k, v in c.values.items()})
            fake.add_opportunity(loc, c.contact_id, status="won" if c.converted else "lost",
                                 created_at=closed_at)
        played.append(Played(src, loc, plan, ids))
    world.locations = [p.location_id for p in played]
    world.contacts = [c for p in played for c in p.plan.contacts]
    world.by_id = {c.contact_id: c for c in world.contacts}
    world.aws["played"] = played
    world.env.update(LOCATION_MODELS="true", EXPORT_FUNCTION_NAME="simulate-export")
    simulate.install_locations(world, public_pem, {p.location_id: None for p in played}, {})
    for p in played:
        discovered = world.aws.get("discovered", {}).get(p.location_id, {})
        p.names = {c: discovered[fid] for c, fid in p.field_ids.items() if fid in discovered}
    _set_pooling(world, played)
    world.results["data"] = [{
        "location": p.source.name, "location_id": p.location_id, "file": p.source.path.name,
        "rows": len(p.plan.contacts), "past_contacts": len(p.plan.past),
        "past_conversions": sum(c.converted for c in p.plan.past),
        "arriving": len(p.plan.arriving), "target": p.source.target,
        "positive": list(p.source.positive), "exclude": list(p.source.exclude),
        "pooling": p.source.pooling} for p in played]
    return played


def _set_pooling(world: Any, played: list[Played]) -> None:
    """What `ghlctl pooling --location L --allow|--deny --columns ...` records: each
    location's own columns (a location without them is taken for the real-estate preset),
    pooling where the source allows it."""
    from leadscore.adapters.installations import (
        installation_to_item,
        item_to_installation,
        location_key,
    )

    ddb, table = world.aws["ddb"], world.aws["installations"]
    for p in played:
        key = {"pk": {"S": location_key(p.location_id)}}
        item = ddb.get_item(TableName=table, Key=key)["Item"]
        inst = replace(item_to_installation(item), allow_pooling=p.source.pooling,
                       model_columns=tuple(p.fields({c: "" for c in p.plan.columns})))
        ddb.put_item(TableName=table, Item={**key, **installation_to_item(inst)})


def bootstrap_agency(world: Any, first: Played) -> list[dict[str, Any]]:
    """The agency's model: the pooling location's past contacts (its own export, the file's
    columns), trained and promoted as the stack's champion, as `sim_csv.bootstrap` does."""
    from tools import simulate
    from tools.sim_csv import past_upload

    cfg = world.config
    hyper = dict(cfg.training_hyperparameters)
    hyper.update(target=first.source.target, positive=",".join(first.source.positive))
    if first.source.exclude:
        hyper["exclude"] = ",".join(first.source.exclude)
    _set_hyperparameters(world, hyper)
    key = "training-data/bootstrap/agency.csv"
    world.aws["s3"].put_object(Bucket=world.aws["bucket"], Key=key,
                               Body=past_upload(first.plan))
    return simulate.train_and_promote(world, key)


def _set_hyperparameters(world: Any, hyper: dict[str, Any]) -> None:
    import os

    from tools import simulate

    world.config.training_hyperparameters = hyper
    world.env["TRAINING_HYPERPARAMETERS"] = json.dumps(
        {k: json.dumps(v) for k, v in hyper.items()})
    os.environ.update(world.env)
    world.handlers["retrain"].set_container(None)
    simulate.refresh_model(world)


def fresh_scorers(world: Any) -> None:
    """A promotion just happened: the score function and the backfill start again from the
    store (a location's pointer is otherwise re-read on a background thread on the real
    clock, which the simulated weeks outrun)."""
    from tools import simulate

    simulate.wire_clock(world, world.handlers)
    world.handlers["backfill"]._scorer.set(None)


def train_exports(world: Any, exported: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Each exported key through retrain -> job -> promote; the scorers see the result."""
    from tools import simulate

    outcomes: list[dict[str, Any]] = []
    for location, key in exported:
        for answer in simulate.train_and_promote(world, key):
            outcomes.append({**answer, "location_id": location})
    if outcomes:
        fresh_scorers(world)
        fit_baselines(world)
    return outcomes


def _exported(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(loc, r["key"]) for loc, r in (answer.get("locations") or {}).items()
            if r.get("status") == "exported"]


def phase_backfill(world: Any, played: list[Played]) -> dict[str, Any]:
    """Each location's install backfill with its outcomes; the export it asks for at its end
    (the first model when the history is enough), trained and promoted."""
    from tools import simulate
    from tools.lambda_context import lambda_context

    backfill = world.handlers["backfill"]
    pending: list[dict[str, Any]] = []
    exports: list[dict[str, Any]] = []
    backfill.invoke_again = lambda event, name: (
        exports if name == "simulate-export" else pending).append(dict(event))
    answers: dict[str, Any] = {}
    first_models: dict[str, Any] = {}
    for p in played:
        pending.append({"location_id": p.location_id, "job_id": "install", "outcomes": True})
        while pending:
            short = lambda_context("BackfillFunction", timeout_ms=20_000)
            answers[p.source.name] = backfill.lambda_handler(pending.pop(0), short)
            with simulate.timed(world, "writeback"):
                simulate.drain_writeback(world)
        backfill.recorder().flush()
        world.clock.now += 60.0  # the export runs after the backfill's last record
        while exports:
            event = {**exports.pop(0), "now_ms": int(world.clock() * 1000)}
            answer = world.handlers["export"].lambda_handler(event, world.ctx)
            first_models[p.source.name] = {
                "export": answer["locations"].get(p.location_id),
                "training": train_exports(world, _exported(answer))}
    return {"jobs": answers, "first_models": first_models}


def fit_baselines(world: Any) -> None:
    """For each location, a default LightGBM on the rows of its newest training job (the
    job's channel), on the columns its own model reads (else the file's columns)."""
    from leadscore.registry import retraining
    from leadscore.registry.locations import location_of_upload

    s3, bucket = world.aws["s3"], world.aws["bucket"]
    by_location = {p.location_id: p for p in world.aws["played"]}
    for job in sorted(world.seen_jobs):
        record = json.loads(s3.get_object(Bucket=bucket, Key=retraining.split_record_key(job))
                            ["Body"].read())
        p = by_location.get(location_of_upload(str(record.get("source_key"))) or "")
        if p is None or (p.baseline_job >= job and p.baseline is not None):
            continue
        body = s3.get_object(Bucket=bucket, Key=retraining.train_part_key(
            job, str(record["source_key"])))["Body"].read()
        header, rows = read_table(body)
        columns = own_columns(world, p.location_id) or list(p.fields(
            {c: "" for c in p.plan.columns}))
        target = "outcome" if "outcome" in header else p.plan.target
        positive = ("won",) if target == "outcome" else p.plan.positive
        p.baseline = fit_baseline(header, rows, columns, target, positive)
        p.baseline_job = job


def own_columns(world: Any, location_id: str) -> list[str] | None:
    """The columns the location's own champion reads (None: it has none)."""
    from leadscore.adapters.s3_store import S3ObjectStore
    from leadscore.columns.schema import Schema
    from leadscore.registry import get_champion
    from leadscore.registry.locations import location_store

    store = location_store(S3ObjectStore(world.aws["bucket"]), location_id)
    champion = get_champion(store)
    if not champion:
        return None
    raw = store.get_bytes(f"models/{champion['version']}/schema.json")
    return list(Schema.from_dict(json.loads(raw)).column_names)


def evaluate(world: Any, p: Played, resolved: list[CsvContact]) -> dict[str, Any]:
    """The location's resolved leads through POST /score/batch (each naming its location),
    and its baseline's scores, before their outcomes arrive."""
    from tools.api_event import api_event

    scopes: Counter[str] = Counter()
    scores: list[float | None] = []
    errors: list[Any] = []
    for start in range(0, len(resolved), 500):
        chunk = resolved[start:start + 500]
        body = json.dumps({"leads": [{"contact_id": c.contact_id, "location_id": p.location_id,
                                      "fields": p.fields(c.values)} for c in chunk]}).encode()
        answer = world.handlers["score"].lambda_handler(
            api_event("/score/batch", body, {}), world.ctx)
        parsed = json.loads(answer["body"])
        if answer["statusCode"] != 200:
            raise RuntimeError(f"scoring {p.source.name}'s leads failed: {answer['body'][:500]}")
        # a lead the served model cannot read (400 for that lead) is counted, not scored
        skipped = {u["index"]: "none" for u in parsed.get("unscored", [])}
        for e in parsed.get("errors", []):
            skipped[e["index"]] = "invalid"
            errors.append(e)
        results = iter(parsed["results"])
        for i in range(len(chunk)):
            if i in skipped:
                scopes[skipped[i]] += 1
                scores.append(None)
                continue
            result = next(results)
            scopes[str(result.get("model_scope"))] += 1
            scores.append(float(result["predicted_score"]))
    base = (p.baseline.scores([p.fields(c.values) for c in resolved])
            if p.baseline is not None and resolved else None)
    return {"scopes": dict(scopes), "scores": scores, "errors": errors[:3],
            "baseline_scores": [] if base is None else [float(v) for v in base],
            "converted": [c.converted for c in resolved]}


def phase_week(world: Any, played: list[Played], week: int) -> dict[str, Any]:
    from tools import simulate

    events: list[tuple[float, str, CsvContact, Played]] = []
    evaluations: dict[str, Any] = {}
    for p in played:
        mine = week_events(p.plan, week)
        events += [(at, kind, c, p) for at, kind, c in mine]
        evaluations[p.source.name] = evaluate(
            world, p, [c for _, kind, c in mine if kind == "outcome"])
    events.sort(key=lambda e: (e[0], e[1] != "create"))
    counts: Counter[str] = Counter()
    drained = 0
    with simulate.timed(world, "webhooks"):
        for n, (at, kind, c, p) in enumerate(events):
            if simulate.drain_due(world, n):
                with simulate.timed(world, "writeback"):
                    drained += simulate.drain_writeback(world)
            world.clock.at(at)
            counts[kind] += 1
            send_contact_event(world, kind, c, {p.field_ids[k]: v for k, v in c.values.items()})
    world.clock.at((week + 1) * WEEK)
    world.handlers["score"].container().recorder.flush()
    with simulate.timed(world, "writeback"):
        drained += simulate.drain_writeback(world)
    # Each location's own export (what the daily run does per location). The agency's own
    # retraining is left out: here its model only serves the small pooled location.
    exported: list[tuple[str, str]] = []
    answers: dict[str, Any] = {}
    with simulate.timed(world, "export"):
        for p in played:
            export = world.handlers["export"].lambda_handler(
                {"location_id": p.location_id, "now_ms": int(world.clock() * 1000)}, world.ctx)
            answers[p.source.name] = export["locations"].get(p.location_id)
            exported += _exported(export)
    training = train_exports(world, exported)
    export = answers
    return {"week": week, "events": dict(counts), "evaluations": evaluations,
            "writebacks": drained, "export": export, "training": training}


def _auc(y: list[int], scores: list[Any]) -> float | None:
    from leadscore.metrics import auc

    pairs = [(t, s) for t, s in zip(y, scores, strict=False) if s is not None]
    ys = np.array([t for t, _ in pairs])
    if len(pairs) < 20 or ys.min() == ys.max():
        return None
    return float(auc(ys, np.array([s for _, s in pairs], dtype=np.float64)))


def audit(world: Any, played: list[Played], weeks: list[dict[str, Any]]) -> dict[str, Any]:
    from tools import simulate
    from tools.sim_csv import exported_rows

    cfg = world.config
    last = weeks[-cfg.last_weeks:]
    locations: dict[str, Any] = {}
    for p in played:
        name = p.source.name
        evals = [w["evaluations"][name] for w in last]
        y = [t for e in evals for t in e["converted"]]
        served = [s for e in evals for s in e["scores"]]
        base = [s for e in evals for s in e["baseline_scores"]]
        scopes: Counter[str] = Counter()
        for e in evals:
            scopes.update(e["scopes"])
        locations[name] = {
            "location_id": p.location_id,
            "model_scope": scopes.most_common(1)[0][0] if scopes else None,
            "scopes": dict(scopes),
            "served_auc": _auc(y, served),
            "baseline_auc": _auc(y, base) if len(base) == len(y) else None,
            "leads": len(y), "conversions": int(sum(y)),
            "auc_by_week": [_auc(w["evaluations"][name]["converted"],
                                 w["evaluations"][name]["scores"]) for w in weeks],
            "own_columns": own_columns(world, p.location_id),
            "invalid_examples": [x for e in evals for x in e["errors"]][:3],
        }
    big = [p.source.name for p in played if not p.source.name.endswith("-small")]
    first_small, second_small = (p.source.name for p in played
                                 if p.source.name.endswith("-small"))
    dead = simulate.dead_letters(world)
    rows = exported_rows(world)
    checks: dict[str, Any] = {f"{n}_served_by_its_own_model":
                              locations[n]["model_scope"] == "location" for n in big}
    for n in big:
        s, b = locations[n]["served_auc"], locations[n]["baseline_auc"]
        checks[f"{n}_within_0.01_of_its_baseline"] = None if s is None or b is None \
            else s >= b - 0.01
    checks[f"{first_small}_served_by_the_agency_model"] = \
        locations[first_small]["scopes"].keys() == {"agency"}
    checks[f"{second_small}_unscored"] = locations[second_small]["scopes"].keys() == {"none"}
    checks["dead_letters_is_0"] = dead == 0
    return {"checks": checks, "locations": locations, "dead_letters": dead,
            "labelled_rows": len(rows), "promotions": world.promotions,
            "webhook_answers": world.webhook_answers, "weeks": cfg.weeks,
            "config": {k: v for k, v in vars(cfg).items()}}


def run(world: Any, say: Callable[[str], None]) -> dict[str, Any]:
    from tools import simulate

    cfg = world.config
    srcs = sources(cfg.data, cfg.target, cfg.positive, cfg.exclude, seed=cfg.seed,
                   max_rows=cfg.max_rows)
    with simulate.timed(world, "setup"):
        played = setup(world, srcs)
    described = [f"{d['location']} ({d['past_contacts']} past, {d['past_conversions']} "
                 "converted)" for d in world.results["data"]]
    say(f"setup: {', '.join(described)}")
    with simulate.timed(world, "bootstrap"):
        world.results["agency_bootstrap"] = bootstrap_agency(world, played[0])
    say(f"agency model: {[o.get('status') for o in world.results['agency_bootstrap']]}")
    fresh_scorers(world)
    with simulate.timed(world, "backfill"):
        world.results["backfill"] = phase_backfill(world, played)
    for name, first in world.results["backfill"]["first_models"].items():
        say(f"{name}: export {first['export'] and first['export']['status']}, "
            f"{[t.get('status') for t in first['training']]}")
    weeks = []
    for week in range(cfg.weeks):
        with simulate.timed(world, f"week {week}"):
            weeks.append(phase_week(world, played, week))
        w = weeks[-1]
        line = ", ".join(
            f"{n} {_auc(e['converted'], e['scores']) or float('nan'):.3f}"
            f"/{_auc(e['converted'], e['baseline_scores']) or float('nan'):.3f} {e['scopes']}"
            for n, e in w["evaluations"].items())
        say(f"week {week} (served/baseline AUC): {line}; trained "
            f"{[t.get('status') for t in w['training']]}; "
            f"{world.timings[f'week {week}']:.1f} s")
    results = audit(world, played, weeks)
    results["data"] = world.results["data"]
    results["agency_bootstrap"] = world.results["agency_bootstrap"]
    results["backfill"] = world.results["backfill"]
    results["weekly"] = [{k: v for k, v in w.items() if k != "evaluations"} |
                         {"scopes": {n: e["scopes"] for n, e in w["evaluations"].items()}}
                         for w in weeks]
    return results


def print_summary(results: dict[str, Any]) -> None:
    print("\nlocation                 scope     leads  served AUC  baseline AUC")
    for name, r in results["locations"].items():
        s, b = r["served_auc"], r["baseline_auc"]
        print(f"{name:<24} {r['model_scope'] or '-':<8} {r['leads']:>6}  "
              f"{'-' if s is None else f'{s:.3f}':>10}  {'-' if b is None else f'{b:.3f}':>12}")
    print(f"dead letters {results['dead_letters']}, {results['seconds']:.0f} s")
