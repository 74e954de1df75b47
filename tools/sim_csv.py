"""`make simulate DATA=file.csv TARGET=col POSITIVE=value [EXCLUDE=a,b]`: a team's own CSV played
as one HighLevel location, rows in file order, through the real handlers (tools/simulate.py).

- Every column but the target becomes a custom field of the location (name = the column,
  fieldKey ``contact.<column>``); the installation's field map is discovered, as an install
  does (`leadscore.ghl.lifecycle.discover_fields`), never written by hand.
- The first ``past_share`` of the rows are past contacts: in HighLevel with their custom
  fields, each with a won/lost opportunity, and uploaded once as the team's export (the CSV's
  own rows and columns: the stack trains with the ``target`` / ``positive`` hyperparameters,
  so the schema is inferred by the training job, the leak guard included).
- The rest arrive over ``weeks`` weeks in file order, evenly spread: a ContactCreate webhook
  carrying ``customFields`` as HighLevel sends them (``[{"id", "value"}]``), a ContactUpdate
  some hours later, and the outcome as an OpportunityStatusUpdate (won when the target holds
  a positive value) ``outcome_days`` later; outcomes past the last week never arrive.
- Every week: the export -> retrain -> promote loop, the monitor, and the served model's AUC on
  the week's resolved leads next to a default LightGBM fitted on exactly the labelled rows
  the latest retrain trained on (its job's training channel), scoring the same leads.

The truth is the file: a lead's outcome is its own row's target. Pure planning in
`plan_csv` (cheap to test); the rest drives a `simulate.World`.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

WEEK = 7 * 24 * 3600.0
DAY = 24 * 3600.0
HOUR = 3600.0


@dataclass
class CsvContact:
    contact_id: str
    row: int  # position in the file
    values: dict[str, str]  # column -> cell as the file holds it (target left out)
    converted: int
    created_week: int  # -1: a past contact
    arrive_at: float = 0.0  # simulation seconds (webhook arrivals only)
    resolve_at: float = 0.0  # when its outcome happened; 0: not within the simulation
    location_id: str = ""
    target_text: str = ""  # the target cell as the file spells it


@dataclass
class CsvPlan:
    header: list[str]
    target: str
    positive: tuple[str, ...]
    columns: list[str]  # the location's custom fields: every column but the target
    past: list[CsvContact] = field(default_factory=list)
    arriving: list[CsvContact] = field(default_factory=list)

    @property
    def contacts(self) -> list[CsvContact]:
        return [*self.past, *self.arriving]


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """The file through the product's one CSV reader (what training reads)."""
    from leadscore.columns.csv_reader import read_bytes

    header, rows = read_bytes(path.read_bytes(), str(path))
    return list(header), [list(r) for r in rows]


def plan_csv(header: Sequence[str], rows: Sequence[Sequence[str]], *, target: str,
             positive: Sequence[str], weeks: int, past_share: float = 0.3,
             outcome_days: tuple[float, float] = (1.0, 10.0), seed: int = 14,
             contact_id: Any = None) -> CsvPlan:
    """Which rows are past contacts, when the others arrive and resolve (file order)."""
    from leadscore.columns.labels import LabelRule

    if target not in header:
        raise ValueError(f"the file has no {target!r} column (columns: {', '.join(header)})")
    rule = LabelRule.of([str(p) for p in positive])
    at = list(header).index(target)
    columns = [c for c in header if c != target]
    rng = np.random.default_rng(seed)
    new_id = contact_id or (lambda: uuid.uuid4().hex[:20])
    plan = CsvPlan(list(header), target, tuple(str(p) for p in positive), columns)
    usable = [r for r in rows if len(r) == len(header) and rule.label(r[at]) is not None]
    n_past = int(len(usable) * past_share)
    arriving = len(usable) - n_past
    horizon = weeks * WEEK
    for i, cells in enumerate(usable):
        values = {c: v for c, v in zip(header, cells, strict=True) if c != target}
        converted = int(rule.label(cells[at]) or 0)
        contact = CsvContact(new_id(), i, values, converted, -1, target_text=cells[at])
        if i < n_past:
            plan.past.append(contact)
            continue
        k = i - n_past
        contact.arrive_at = horizon * k / max(arriving, 1)
        contact.created_week = int(contact.arrive_at // WEEK)
        resolve = contact.arrive_at + DAY * float(rng.uniform(*outcome_days))
        contact.resolve_at = resolve if resolve < horizon else 0.0
        plan.arriving.append(contact)
    return plan


def past_upload(plan: CsvPlan) -> bytes:
    """The team's export of its past contacts: the file's own columns and rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(plan.header)
    for c in plan.past:
        writer.writerow([c.target_text if h == plan.target else c.values.get(h, "")
                         for h in plan.header])
    return out.getvalue().encode()


def week_events(plan: CsvPlan, week: int) -> list[tuple[float, str, CsvContact]]:
    """A week's deliveries in time order: (simulation seconds, kind, contact)."""
    lo, hi = week * WEEK, (week + 1) * WEEK
    events: list[tuple[float, str, CsvContact]] = []
    for c in plan.arriving:
        if lo <= c.arrive_at < hi:
            events.append((c.arrive_at, "create", c))
            if c.arrive_at + 2 * HOUR < hi:
                events.append((c.arrive_at + 2 * HOUR, "update", c))
        if c.resolve_at and lo <= c.resolve_at < hi:
            events.append((c.resolve_at, "outcome", c))
    events.sort(key=lambda e: (e[0], e[1] != "create"))
    return events


# --------------------------------------------------------------------------- the baseline


def read_table(data: bytes) -> tuple[list[str], list[list[str]]]:
    from leadscore.columns.csv_reader import read_bytes

    header, rows = read_bytes(data, "training part")
    return list(header), [list(r) for r in rows]


def _frame(records: Sequence[Mapping[str, Any]], columns: Sequence[str],
           categories: Mapping[str, list[str]] | None = None) -> tuple[Any, dict[str, list[str]]]:
    """A pandas frame for LightGBM: numbers where every filled cell is one, else categories
    (those seen in fitting; `categories` given: scoring with the fitted ones)."""
    import pandas as pd

    frame = pd.DataFrame({c: [str(r.get(c, "") or "") for r in records] for c in columns})
    cats: dict[str, list[str]] = {}
    for c in columns:
        text = frame[c].str.strip()
        numeric = pd.to_numeric(text.replace("", np.nan), errors="coerce")
        if categories is not None:
            is_category = c in categories
        else:
            is_category = bool((numeric.isna() & text.ne("")).any())
        if not is_category:
            frame[c] = numeric
            continue
        levels = list(categories[c]) if categories is not None else sorted(set(text))
        cats[c] = levels
        frame[c] = pd.Categorical(text.where(text.isin(levels)), categories=levels)
    return frame, cats


@dataclass
class Baseline:
    """A default LightGBM on the rows one retrain trained on (the same kept columns)."""

    model: Any
    columns: list[str]
    categories: dict[str, list[str]]
    rows: int

    def scores(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        from leadscore.columns.keys import by_key

        # a record by field key: the file says ``MOSTYPE``, a loop export ``mostype``
        frame, _ = _frame([by_key(r) for r in records], self.columns, self.categories)
        return np.asarray(self.model.predict_proba(frame)[:, 1], dtype=np.float64)


def fit_baseline(header: Sequence[str], rows: Sequence[Sequence[str]], columns: Sequence[str],
                 target: str, positive: Sequence[str]) -> Baseline:
    import lightgbm as lgb
    from leadscore.columns.keys import by_key, normalise_key
    from leadscore.columns.labels import LabelRule

    rule = LabelRule.of([str(p) for p in positive])
    at = next(i for i, h in enumerate(header)
              if h == target or normalise_key(h) == normalise_key(target))
    records, y = [], []
    for cells in rows:
        label = rule.label(cells[at]) if len(cells) == len(header) else None
        if label is None:
            continue
        records.append(by_key(dict(zip(header, cells, strict=True))))
        y.append(label)
    in_header = {normalise_key(h) for h in header}
    kept = list(dict.fromkeys(k for k in (normalise_key(c) for c in columns) if k in in_header))
    frame, cats = _frame(records, kept)
    model = lgb.LGBMClassifier(verbose=-1, n_jobs=1, random_state=0)
    model.fit(frame, np.asarray(y))
    return Baseline(model, kept, cats, len(records))


# --------------------------------------------------------------------------- the run


@dataclass
class CsvSource:
    path: Path
    target: str
    positive: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    past_share: float = 0.3


def setup(world: Any, source: CsvSource) -> None:
    """The stack (simulate.setup_aws), one location whose custom fields are the file's
    columns, its past contacts, the installation with its fields discovered."""
    from leadscore.columns.keys import normalise_key

    from tests.fixtures.fake_highlevel import ghl_id
    from tools import simulate

    cfg = world.config
    public_pem = simulate.setup_aws(world)
    header, rows = read_csv(source.path)
    plan = plan_csv(header, rows, target=source.target, positive=source.positive,
                    weeks=cfg.weeks, past_share=source.past_share, seed=cfg.seed,
                    contact_id=ghl_id)
    fake = world.fake
    loc = fake.add_location(name="Team CSV").id
    fake.locations[loc].rate.burst_max = 100_000
    fake.locations[loc].rate.daily_max = 10_000_000
    world.locations = [loc]
    field_ids: dict[tuple[str, str], str] = {}
    for column in plan.columns:
        f = fake.add_field(loc, column, "TEXT", field_key=f"contact.{normalise_key(column)}")
        field_ids[(loc, column)] = f.id
    world.aws["field_ids"] = field_ids
    world.aws["score_fields"] = {loc: (fake.add_field(loc, "Lead Score", "NUMERICAL").id,
                                       fake.add_field(loc, "Lead Class", "TEXT").id)}
    for c in plan.contacts:
        c.location_id = loc
    for c in plan.past:
        fake.add_contact(loc, contact_id=c.contact_id, created_at=world.clock.start - 30 * DAY,
                         custom_fields={field_ids[(loc, k)]: v for k, v in c.values.items()})
    world.contacts = plan.contacts
    world.by_id = {c.contact_id: c for c in plan.contacts}
    world.aws["plan"] = plan
    world.results["data"] = {"file": source.path.name, "rows": len(rows),
                             "past_contacts": len(plan.past), "arriving": len(plan.arriving),
                             "target": source.target, "positive": list(source.positive),
                             "exclude": list(source.exclude)}
    hyper = dict(cfg.training_hyperparameters)
    hyper.update(target=source.target, positive=",".join(source.positive))
    if source.exclude:
        hyper["exclude"] = ",".join(source.exclude)
    cfg.training_hyperparameters = hyper
    simulate.install_locations(world, public_pem, {loc: None}, {})
    discovered = world.aws.get("discovered", {}).get(loc, {})
    world.results["fields_mapped"] = sum(1 for fid in discovered
                                         if (loc, discovered[fid]) in field_ids)


def bootstrap(world: Any) -> None:
    """The team's export of its past contacts -> retrain -> training job -> gate -> promote."""
    from tools import simulate

    key = "training-data/bootstrap/leads.csv"
    world.aws["s3"].put_object(Bucket=world.aws["bucket"], Key=key,
                               Body=past_upload(world.aws["plan"]))
    outcomes = simulate.train_and_promote(world, key)
    world.results["bootstrap"] = outcomes
    after_training(world)


def after_training(world: Any) -> None:
    """Once a model serves: the baseline beside it for every new job, and the experiment
    from the first promotion on."""
    if not world.promotions:
        return
    fit_new_baselines(world)
    if "experiment_started" not in world.results:
        start_experiment(world)


#: The first model against whatever the loop promotes after it, 50/50, from the first
#: promotion on (as an operator would start it with `modelctl experiment create`).
EXPERIMENT = "first-model-vs-champion"


def start_experiment(world: Any) -> None:
    from leadscore.experiments import store as experiment_store

    first = str(world.promotions[0].get("version"))
    experiment = experiment_store.create(_store(world), EXPERIMENT, [first, "champion"],
                                         [50, 50], metric="auc")
    world.results["experiment_started"] = experiment.to_record()


def champion_scores(world: Any, contacts: Sequence[CsvContact]) -> list[float]:
    """The champion's own answers for leads the experiment gave another variant (one batch
    call, as POST /score/batch scores them)."""
    if not contacts:
        return []
    service = world.handlers["score"].container().service
    answer = service.score_batch([{"contact_id": c.contact_id, "fields": c.values}
                                  for c in contacts], explain=False)
    if answer["errors"] or len(answer["results"]) != len(contacts):
        raise RuntimeError(f"the champion did not score every lead: {answer['errors'][:3]}")
    return [float(r["predicted_score"]) for r in answer["results"]]


def _store(world: Any) -> Any:
    from leadscore.adapters.s3_store import S3ObjectStore

    return S3ObjectStore(world.aws["bucket"])


def served_schema(world: Any) -> Any:
    """The champion's schema (the columns the served model reads); with nothing promoted,
    the refused candidate's; None when no job trained a model at all (too few conversions)."""
    from leadscore.bundle import REFUSED_SCHEMA_KEY
    from leadscore.columns.schema import Schema
    from leadscore.registry import ObjectNotFound, get_champion

    store = _store(world)
    champion = get_champion(store)
    if champion is None:  # nothing promoted: the columns the refused candidate read
        try:
            return Schema.from_dict(json.loads(store.get_bytes(REFUSED_SCHEMA_KEY)))
        except ObjectNotFound:
            return None
    raw = store.get_bytes(f"models/{champion['version']}/schema.json")
    return Schema.from_dict(json.loads(raw))


def fit_new_baselines(world: Any) -> None:
    """A default LightGBM on each new job's training channel (its rows exactly), on the
    columns the model serving after it reads."""
    s3, plan = world.aws["s3"], world.aws["plan"]
    done: set[str] = world.aws.setdefault("baselined", set())
    schema = served_schema(world)
    columns = schema.column_names if schema is not None else plan.columns
    sagemaker = world.aws["sagemaker"]
    # oldest first, so the baseline left is the latest retrain's (job names are hashes: their
    # order says nothing)
    new = sorted(world.seen_jobs - done, key=lambda name: sagemaker.describe_training_job(
        TrainingJobName=name)["CreationTime"])
    for job in new:
        done.add(job)
        described = sagemaker.describe_training_job(TrainingJobName=job)
        channel = next(c for c in described["InputDataConfig"] if c["ChannelName"] == "training")
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"][len("s3://"):]
        bucket, _, prefix = uri.partition("/")
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            if not item["Key"].endswith(".csv"):
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            header, rows = read_table(body)
            world.aws["baseline"] = fit_baseline(header, rows, columns, plan.target,
                                                 plan.positive)


def evaluate(world: Any, resolved: list[CsvContact]) -> dict[str, Any]:
    """The served model's scores (POST /score/batch, the real handler) and the baseline's on
    the leads resolved this week, against their outcomes."""
    from leadscore.metrics import auc

    from tools.api_event import api_event

    if len(resolved) < 20:
        return {"n": len(resolved)}
    if not world.promotions:
        # nothing serves yet (the first model was refused): these leads waited unscored
        return {"n": len(resolved), "converted": int(sum(c.converted for c in resolved)),
                "served": False}
    scores: list[float] = []
    classes: list[str] = []
    for start in range(0, len(resolved), 500):
        chunk = resolved[start:start + 500]
        body = json.dumps({"leads": [{"contact_id": c.contact_id, "fields": c.values}
                                     for c in chunk]}).encode()
        answer = world.handlers["score"].lambda_handler(
            api_event("/score/batch", body, {}), world.ctx)
        parsed = json.loads(answer["body"])
        if answer["statusCode"] != 200 or parsed.get("errors"):
            raise RuntimeError(f"scoring the resolved leads failed: {answer['body'][:500]}")
        # Under the experiment half the answers are the first model's: the served model is
        # judged on the champion's own scores for every lead.
        chunk_scores = [float(r["predicted_score"]) for r in parsed["results"]]
        other = [i for i, r in enumerate(parsed["results"])
                 if r.get("variant") not in (None, "champion")]
        for i, score in zip(other, champion_scores(world, [chunk[i] for i in other]),
                            strict=True):
            chunk_scores[i] = score
        scores += chunk_scores
        classes += [str(r.get("predicted_class")) for r in parsed["results"]]
    y = np.array([c.converted for c in resolved])
    baseline = world.aws.get("baseline")
    base = baseline.scores([c.values for c in resolved]) if baseline is not None else None
    return {
        "n": len(resolved),
        "converted": int(y.sum()),
        "auc": float(auc(y, np.array(scores))),
        "baseline_auc": float(auc(y, base)) if base is not None else None,
        "baseline_rows": baseline.rows if baseline is not None else None,
        "model_version": world.handlers["score"].container().store.status().model_version,
        "scores": scores,
        "baseline_scores": [] if base is None else [float(v) for v in base],
        "classes": classes,
    }


def send_contact_event(world: Any, kind: str, c: CsvContact, custom: dict[str, Any]) -> None:
    """One planned event as HighLevel sends it: a new contact (added to the fake HighLevel
    with its custom fields, then its ContactCreate), a ContactUpdate, or its outcome as an
    OpportunityStatusUpdate stamped when it happened. ``custom``: {field id: value}."""
    from tests.fixtures.ghl_payloads import contact_event, opportunity_event
    from tools import simulate

    if kind == "create":
        world.fake.add_contact(c.location_id, contact_id=c.contact_id,
                               created_at=world.clock(), custom_fields=custom)
    if kind in ("create", "update"):
        simulate.send_webhook(world, contact_event(
            "ContactCreate" if kind == "create" else "ContactUpdate",
            location_id=c.location_id, contact_id=c.contact_id, custom_fields=custom,
            timestamp=world.clock()))
    else:
        simulate.send_webhook(world, opportunity_event(
            "OpportunityStatusUpdate", location_id=c.location_id,
            contact_id=c.contact_id, status="won" if c.converted else "lost",
            timestamp=world.clock.start + c.resolve_at))


def phase_week(world: Any, week: int) -> dict[str, Any]:
    from tools import simulate

    plan: CsvPlan = world.aws["plan"]
    ids = world.aws["field_ids"]
    events = week_events(plan, week)
    resolved = [c for _, kind, c in events if kind == "outcome"]
    evaluation = evaluate(world, resolved)
    counts: dict[str, int] = {}
    drained = 0
    world.results["current_week"] = week
    with simulate.timed(world, "webhooks"):
        for n, (at, kind, c) in enumerate(events):
            if simulate.drain_due(world, n):
                with simulate.timed(world, "writeback"):
                    drained += simulate.drain_writeback(world)
            world.clock.at(at)
            counts[kind] = counts.get(kind, 0) + 1
            send_contact_event(world, kind, c,
                               {ids[(c.location_id, k)]: v for k, v in c.values.items()})
    world.clock.at((week + 1) * WEEK)
    world.handlers["score"].container().recorder.flush()
    with simulate.timed(world, "writeback"):
        drained += simulate.drain_writeback(world)
    with simulate.timed(world, "export"):
        export = world.handlers["export"].lambda_handler(
            {"now_ms": int(world.clock() * 1000)}, world.ctx)
    trained = []
    if export.get("status") == "exported":
        trained = simulate.train_and_promote(world, export["key"])
        after_training(world)
    return {"week": week, "events": counts, "resolved": len(resolved),
            "evaluation": {k: v for k, v in evaluation.items()
                           if k not in ("scores", "baseline_scores", "classes")},
            "scores": evaluation.get("scores", []),
            "baseline_scores": evaluation.get("baseline_scores", []),
            "classes": evaluation.get("classes", []),
            "resolved_ids": [c.contact_id for c in resolved],
            "writebacks": drained, "export": export, "training": trained}


def exported_rows(world: Any) -> list[dict[str, Any]]:
    """Every labelled row the loop exported: the team-layout CSVs and the held-set lines."""
    s3, bucket = world.aws["s3"], world.aws["bucket"]
    rows: list[dict[str, Any]] = []
    for prefix in ("training-data/auto/", "evaluation/holdout/"):
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            key = item["Key"]
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if key.endswith(".csv"):
                header, table = read_table(body)
                rows += [dict(zip(header, r, strict=True), export_key=key) for r in table]
            elif key.endswith(".jsonl"):
                rows += [dict(json.loads(line), export_key=key)
                         for line in body.decode().splitlines() if line.strip()]
    return rows


def _is_history(row: Mapping[str, Any]) -> bool:
    from leadscore.loop.export import HISTORY_ID_PREFIX

    return str(row.get("contact_id") or "").startswith(HISTORY_ID_PREFIX)


def history_leaked(world: Any, rows: list[dict[str, Any]]) -> int:
    """Carried history rows (the team's upload, re-written in an export's columns) that are
    not one of the past contacts with its own label: a history row may carry what the team
    uploaded, nothing else."""
    from leadscore.columns.keys import normalise_key
    from leadscore.columns.labels import LabelRule

    plan: CsvPlan = world.aws["plan"]
    rule = LabelRule.of(list(plan.positive))
    # the export names a column by its field key (``mostype`` for the file's ``MOSTYPE``)
    column_of = {normalise_key(c): c for c in plan.columns}
    count = 0
    by_header: dict[tuple[str, ...], dict[tuple[str, ...], set[int]]] = {}
    for row in rows:
        shared = tuple(sorted(k for k in row if normalise_key(k) in column_of
                              and k not in ("contact_id", "scored_at", plan.target)))
        if not shared:
            count += 1  # nothing to tell it by: not one of the past contacts
            continue
        if shared not in by_header:
            index: dict[tuple[str, ...], set[int]] = {}
            for c in plan.past:
                index.setdefault(tuple(c.values.get(column_of[normalise_key(k)], "")
                                       for k in shared), set()).add(c.converted)
            by_header[shared] = index
        labels = by_header[shared].get(tuple(str(row[k]) for k in shared), set())
        if rule.label(row.get(plan.target)) not in labels:
            count += 1
    return count


def history_in_gate_parts(world: Any) -> int:
    """Carried history rows found in any job's gate part or the platform-held set: each
    would be a lead a candidate, or the champion that learned from it, is measured on."""
    s3, bucket = world.aws["s3"], world.aws["bucket"]
    found = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                              Prefix="evaluation/"):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/gate.csv") or key.startswith("evaluation/holdout/"):
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
                found += sum(1 for line in body.splitlines() if "history-" in line)
    return found


def leaked(world: Any, rows: list[dict[str, Any]]) -> int:
    """Rows labelled without their contact having resolved, with another label than the file's,
    or (where the row says when it was scored) scored at or after the outcome happened.
    Carried history rows are judged by `history_leaked`."""
    from leadscore.columns.labels import LabelRule
    from leadscore.ghl.auth import parse_timestamp

    plan: CsvPlan = world.aws["plan"]
    rule = LabelRule.of(list(plan.positive))
    count = history_leaked(world, [r for r in rows if _is_history(r)])
    for row in rows:
        if _is_history(row):
            continue
        c = world.by_id.get(row.get("contact_id"))
        if c is None or not c.resolve_at:
            count += 1
            continue
        if rule.label(row.get(plan.target)) != c.converted:
            count += 1
            continue
        if row.get("scored_at"):
            scored = parse_timestamp(row["scored_at"]).timestamp()
            if scored >= world.clock.start + c.resolve_at:
                count += 1
    return count


def audit(world: Any, weeks: list[dict[str, Any]]) -> dict[str, Any]:
    from leadscore.metrics import auc

    from tools import simulate

    cfg = world.config
    rows = exported_rows(world)
    # the last weeks a model served (a week whose leads waited unscored has no scores)
    last = [w for w in weeks[-cfg.last_weeks:] if w["scores"]]
    ids = [i for w in last for i in w["resolved_ids"]]
    y = np.array([world.by_id[i].converted for i in ids])
    served = np.array([s for w in last for s in w["scores"]])
    base = np.array([s for w in last for s in w["baseline_scores"]])
    served_auc = float(auc(y, served)) if len(ids) else None
    baseline_auc = float(auc(y, base)) if len(ids) and base.size == len(ids) else None
    classes: dict[str, dict[str, int]] = {}
    for w in weeks:
        for cls, cid in zip(w["classes"], w["resolved_ids"], strict=False):
            entry = classes.setdefault(cls, {"leads": 0, "conversions": 0})
            entry["leads"] += 1
            entry["conversions"] += world.by_id[cid].converted
    schema = served_schema(world)
    excluded = excluded_columns(world, schema)
    leaks = leaked(world, rows)
    dead = simulate.dead_letters(world)
    history_in_gates = history_in_gate_parts(world)
    checks = {
        "leaked_rows_is_0": leaks == 0,
        "dead_letters_is_0": dead == 0,
        "history_never_in_a_gate_part": history_in_gates == 0,
        "last_weeks_within_0.01_of_baseline": None if served_auc is None or baseline_auc is None
        else served_auc >= baseline_auc - 0.01,
    }
    return {
        "checks": checks,
        "weeks": cfg.weeks,
        "auc_by_week": [w["evaluation"].get("auc") for w in weeks],
        "baseline_auc_by_week": [w["evaluation"].get("baseline_auc") for w in weeks],
        "resolved_by_week": [w["resolved"] for w in weeks],
        "labelled_rows": sum(1 for r in rows if r["export_key"].startswith("training-data/")
                             and not _is_history(r)),
        "history_rows": sum(1 for r in rows if _is_history(r)),
        "history_rows_in_gate_parts": history_in_gates,
        "leaked_rows": leaks,
        "promotions": len(world.promotions),
        "promotion_log": world.promotions,
        "dead_letters": dead,
        "last_weeks": {"leads": len(ids), "served_auc": served_auc,
                       "baseline_auc": baseline_auc},
        "schema": {"kept": list(schema.column_names) if schema is not None else [],
                   "excluded": excluded},
        "classes": classes,
        "webhook_answers": world.webhook_answers,
        "config": {k: v for k, v in vars(cfg).items()},
    }


def excluded_columns(world: Any, schema: Any) -> dict[str, str]:
    """{column: reason} for every column of the file the served schema does not read: the
    training report's reasons where it gives one (the champion's manifest)."""
    plan: CsvPlan = world.aws["plan"]
    from leadscore.registry import get_champion

    store = _store(world)
    champion = get_champion(store) or {}
    reasons: dict[str, str] = {}
    try:
        manifest = json.loads(store.get_bytes(f"models/{champion['version']}/manifest.json"))
    except Exception:  # the reasons are a courtesy; the kept list is what decides
        manifest = {}
    _collect_reasons(manifest, reasons)
    if schema is None:
        return {c: "no model was trained (too few conversions)" for c in plan.columns}
    from leadscore.columns.keys import normalise_key

    for column, reason in dict(schema.exclude).items():
        reasons.setdefault(column, reason)
    # a model retrained on the loop's export names a column by its field key (``mostype``)
    reasons.update({normalise_key(c): r for c, r in list(reasons.items())
                    if normalise_key(c) not in reasons})
    kept = {normalise_key(c) for c in schema.column_names}
    return {c: reasons.get(c, reasons.get(normalise_key(c), "not in the served schema"))
            for c in plan.columns if normalise_key(c) not in kept}


def _collect_reasons(node: Any, out: dict[str, str]) -> None:
    """Every {"column": ..., "reason": ...} entry and every ``*_excluded`` {column: reason}
    map in the manifest, wherever training put it."""
    if isinstance(node, Mapping):
        if isinstance(node.get("column"), str) and isinstance(node.get("reason"), str):
            out.setdefault(node["column"], node["reason"])
        for key, value in node.items():
            if str(key).endswith("excluded") and isinstance(value, Mapping):
                for column, reason in value.items():
                    if isinstance(reason, str):
                        out.setdefault(str(column), reason)
            _collect_reasons(value, out)
    elif isinstance(node, list):
        for item in node:
            _collect_reasons(item, out)


def run_weeks(world: Any, say: Callable[[str], None]) -> dict[str, Any]:
    """Everything after the setup, monitoring each week; `say` tells the person running it."""
    from tools import sim_monitoring, simulate

    with simulate.timed(world, "bootstrap"):
        bootstrap(world)
    if world.promotions:
        first = served_schema(world)
        say(f"bootstrap: done ({world.timings['bootstrap']:.1f} s); the first model reads "
            f"{', '.join(first.column_names)}; excluded: {excluded_columns(world, first)}")
        with simulate.timed(world, "backfill"):
            simulate.phase_backfill(world)
        say(f"backfill: done ({world.timings['backfill']:.1f} s)")
    else:
        # The gate refused the first model. The team's leads still come: each is kept as it
        # came (parked until a model serves, then replayed) and its inputs are recorded
        # unscored, so the loop's exports can train a model on what arrives. Nothing scores
        # the past contacts on day one: no backfill.
        world.results["first_model_refused"] = world.results["bootstrap"]
        say(f"bootstrap: the first model was refused ({world.timings['bootstrap']:.1f} s): "
            f"{[o.get('reasons') for o in world.results['bootstrap']]}; the weeks run "
            "with the leads waiting for a model")
    weeks, monitoring = [], []
    for week in range(world.config.weeks):
        with simulate.timed(world, f"week {week}"):
            weeks.append(phase_week(world, week))
        with simulate.timed(world, "monitor"):
            monitoring.append(sim_monitoring.monitor_week(world, week))
        w = weeks[-1]
        e = w["evaluation"]
        say(
            f"week {week}: {w['resolved']} resolved, AUC {e.get('auc') or float('nan'):.3f} "
            f"(baseline {e.get('baseline_auc') or float('nan'):.3f}), export "
            f"{w['export'].get('status')} ({w['export'].get('rows', 0)} rows), "
            f"{world.timings[f'week {week}']:.1f} s")
    results = audit(world, weeks)
    results["drift"] = {"weekly": monitoring}
    # the experiment starts with the first promotion: none, no experiment
    results["experiment"] = (sim_monitoring.experiment_results(world, EXPERIMENT)
                             if "experiment_started" in world.results else None)
    results["weekly"] = [{k: v for k, v in w.items() if k not in (
        "scores", "baseline_scores", "classes", "resolved_ids")} for w in weeks]
    return results
