"""The labelled export: point-in-time rows of a rolling window -> ``training-data/auto/``.

Run by a schedule (EventBridge Scheduler, daily by default) or by hand. One run:

1. counts the terminal outcomes received since the last export's cutoff
   (``NEW_OUTCOMES_SQL``); fewer than ``min_new_outcomes`` -> nothing is written;
2. runs ``LABELLED_ROWS_SQL`` (the point-in-time join) for the window
   [cutoff - window_days, cutoff];
3. keeps the most recently resolved rows back (``holdout_fraction`` of them, at most
   ``holdout_max_rows``) as the platform-held evaluation set (``registry/holdout.py``): a
   temporal hold-out no candidate trains on, on which the promote gate measures every
   candidate and the champion;
4. writes the older rows as JSON Lines to
   ``training-data/auto/<cutoff date>/labelled-<h>.jsonl`` where ``h`` is the sha256 of the
   rows: the same rows give the same key, and a key that exists is not written again. That
   upload starts the ordinary retraining path;
5. records the cutoff in ``loop/exports/state.json`` (a conditional write: two runs at once
   cannot both move it).

A re-run right after an export therefore writes nothing (no new outcomes; and if forced, the
same rows -> the same existing key). Everything AWS is behind ``QueryRunner`` (Athena or
DuckDB) and ``ObjectStore`` (S3 or a directory).

**A team's own columns.** When the stack serves a bundle trained on a team's schema (or one is
set for the stack: `stack_schema`), the export writes the team's own layout instead: a CSV
``labelled-<h>.csv`` with ``contact_id`` and ``scored_at`` (the export's own columns), every
column the snapshots carry (the schema's export columns first) and the schema's target spelled
in its own words (`Schema.target_text`), and beside it, written first,
``labelled-<h>.schema.json``: the schema as a person writes it (`Schema.unfitted`: target,
positive and negative values, exclusions, kinds, directions; ``scored_at`` excluded), which
the retrain function hands to the training job, so retraining reproduces the schema with
nothing done by hand. The platform-held rows keep ``{"fields": {...}, <target>: ...}`` lines
(what the gate reads). Rows scored in the other form (before a switch of contract) are left
out and counted (``left_out``).

**The history the champion learned from.** A stack's first model is usually trained on the
team's own upload of past leads, which the loop never recorded. An export in the real-estate
layout carries those rows too (`stack_history`): the training part of the upload the serving
champion learned from (``jobs/<job>/input/train.jsonl``, found through the champion's job and
its split record; for a champion trained on an earlier export, through the
``labelled-<h>.history.json`` that export wrote beside itself). The rows are copied byte for
byte after the loop's own rows, so the split places each on the side it was on before: the
training side, never the gate part (a row the split would now send to the gate is left out,
since the champion was trained on it). A history row of a contact the loop labelled itself
(the newer, point-in-time row wins) or of a deleted contact or location is left out too. The
platform-held rows are the loop's alone. As a location's retraining keeps the backfill its
first model learned from (`leadscore.loop.location_export`), the candidate then learns from
the history and the new outcomes together instead of from the new outcomes alone.

**The history a refused first model waits with.** While no model serves, the history is the
upload behind the stack's last job that produced no model (`bundle.WAITING_HISTORY_KEY`: it
failed or the gate refused its candidate), in either layout: a team whose past leads hold too
few conversions (the job refuses fewer than 120 of each outcome), or too little signal on
their own, gets its first model from those leads and the outcomes that came since together,
instead of waiting for the loop alone. In the team's layout the
history (a CSV) is rewritten in the export's columns (`team_history`); a row naming no
contact is given a ``history-<n>`` id the split keeps on the training side.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from leadscore.bundle import (
    CHAMPION_POINTER_KEY,
    MANIFEST_FILE,
    REFUSED_SCHEMA_KEY,
    SCHEMA_FILE,
    WAITING_HISTORY_KEY,
)
from leadscore.columns.csv_reader import CsvReader, EmptyCsv
from leadscore.columns.keys import normalise_key
from leadscore.columns.personal import derived_values, is_personal_column
from leadscore.columns.schema import PROVENANCE_REASON, Schema, SchemaError
from leadscore.loop.deletion import Deleted, deleted_pairs, without_deleted
from leadscore.loop.labelling import LABELLED_COLUMNS, LabelWindow, new_outcomes_sql
from leadscore.loop.records import day, iso_ms
from leadscore.loop.snapshots import team_fields
from leadscore.registry.holdout import write_holdout
from leadscore.registry.locations import location_of_upload
from leadscore.registry.retraining import (
    SCHEMA_SUFFIX,
    part_extension,
    schema_key_beside,
    split_record_key,
    train_part_key,
)
from leadscore.registry.split import goes_to_gate, jsonl_goes_to_gate, split_key
from leadscore.registry.store import ConcurrentUpdate, ObjectNotFound, ObjectStore

EXPORT_PREFIX = "training-data/auto/"
STATE_KEY = "loop/exports/state.json"
DAY_MS = 24 * 3600 * 1000
MIN_TRAINING_ROWS = 100  # training/train_data.py refuses fewer; do not start a job that must fail
CHAMPION_KEY = CHAMPION_POINTER_KEY


class QueryRunner(Protocol):
    def query(self, sql: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ExportConfig:
    window_days: int = 365
    snapshot_lookback_days: int = 365
    min_new_outcomes: int = 200
    include_backfilled: bool = False
    # the newest resolved leads kept back from training for the promote gate
    holdout_fraction: float = 0.2
    holdout_max_rows: int = 5000


@dataclass(frozen=True)
class ExportState:
    cutoff_ms: int = 0
    key: str = ""
    rows: int = 0
    exported_at: str = ""

    @classmethod
    def parse(cls, data: bytes) -> ExportState:
        value = json.loads(data)
        if not isinstance(value, Mapping):
            raise ValueError("export state must be a JSON object")
        return cls(
            cutoff_ms=int(value.get("cutoff_ms", 0)),
            key=str(value.get("key", "")),
            rows=int(value.get("rows", 0)),
            exported_at=str(value.get("exported_at", "")),
        )


@dataclass(frozen=True)
class ExportResult:
    status: str  # exported | not_enough_outcomes | too_few_rows | unchanged | lost_race
    new_outcomes: int
    rows: int = 0  # written for training (the platform-held rows not included)
    key: str = ""
    cutoff_ms: int = 0
    holdout_rows: int = 0
    left_out: int = 0  # labelled rows scored in the other form than the export's layout
    schema_key: str = ""  # the team's schema written beside the rows (team layout only)
    history_rows: int = 0  # the team's uploaded rows the champion learned from, carried
    history_left_out: int = 0  # history rows not carried (`stack_history`, `team_history`)
    history_key: str = ""  # where the carried history rows were read from

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_line(row: Mapping[str, Any]) -> dict[str, Any]:
    """One labelled row -> one training line (training/train_data.load_jsonl reads
    ``features`` and ``converted``; the rest says where the row came from)."""
    return {
        "contact_id": row["contact_id"],
        "location_id": row["location_id"],
        "features": json.loads(row["inputs"]),
        "converted": int(row["converted"]),
        "snapshot_id": row["snapshot_id"],
        "model_version": row["model_version"],
        "scored_at": iso_ms(int(row["scored_at_ms"])),
        "outcome_at": iso_ms(int(row["outcome_at_ms"])),
        "point_in_time": bool(row["snapshot_point_in_time"]),
    }


def render_rows(rows: Sequence[Mapping[str, Any]]) -> bytes:
    lines = [json.dumps(export_line(r), sort_keys=True, separators=(",", ":")) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def team_line(row: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """One labelled row of a team's schema as a JSON Lines record the gate reads: the raw
    ``fields`` and the target in the schema's own words, plus where the row came from."""
    converted = int(row["converted"])
    return {
        "contact_id": row["contact_id"],
        "location_id": row["location_id"],
        "fields": team_fields(row) or {},
        schema.target: schema.target_text(bool(converted)),
        "snapshot_id": row["snapshot_id"],
        "model_version": row["model_version"],
        "scored_at": iso_ms(int(row["scored_at_ms"])),
        "outcome_at": iso_ms(int(row["outcome_at_ms"])),
        "point_in_time": bool(row["snapshot_point_in_time"]),
    }


def render_team_lines(rows: Sequence[Mapping[str, Any]], schema: Schema) -> bytes:
    lines = [json.dumps(team_line(r, schema), sort_keys=True, separators=(",", ":"))
             for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


#: the export's own columns of a team's layout: who and when (the leak audit reads them);
#: the schema written beside the rows excludes them from training
PROVENANCE = ("contact_id", "scored_at")


def team_header(rows: Sequence[Mapping[str, Any]], schema: Schema) -> list[str]:
    """``contact_id`` and ``scored_at``, the schema's export columns, every other column the
    rows carry (sorted; never a personal identifier), the target last."""
    reserved = {*PROVENANCE, schema.target}
    listed = [c for c in schema.export_columns() if c not in reserved]
    seen = set(listed)
    others: set[str] = set()
    for row in rows:
        others.update(k for k in (team_fields(row) or {}) if k not in seen)
    extra = sorted(k for k in others if k not in reserved and not is_personal_column(k))
    return [*PROVENANCE, *listed, *extra, schema.target]


def written_schema(schema: Schema) -> dict[str, Any]:
    """The schema beside an export: as a person writes it (`Schema.unfitted`), the export's
    own columns excluded with their reason."""
    out = schema.unfitted().to_dict()
    out["exclude"] = {**out["exclude"],
                      **{c: PROVENANCE_REASON for c in PROVENANCE if c != "contact_id"}}
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render_team_csv(rows: Sequence[Mapping[str, Any]], schema: Schema) -> bytes:
    """The team's own layout as CSV (what training on a team's columns reads)."""
    header = team_header(rows, schema)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        fields = team_fields(row) or {}
        values = {**fields, "contact_id": row["contact_id"],
                  "scored_at": iso_ms(int(row["scored_at_ms"])),
                  schema.target: schema.target_text(bool(int(row["converted"])))}
        writer.writerow([_cell(values.get(name)) for name in header])
    return out.getvalue().encode("utf-8")


def export_key(cutoff_ms: int, body: bytes, extension: str = ".jsonl",
               prefix: str = EXPORT_PREFIX) -> str:
    digest = hashlib.sha256(body).hexdigest()[:16]
    return f"{prefix}{day(cutoff_ms)}/labelled-{digest}{extension}"


def _hyperparameter(value: str | None) -> str:
    """SageMaker hyperparameters are text, JSON-encoded by some callers ("\"output\"")."""
    if value is None:
        return ""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value.strip()
    return str(decoded).strip() if isinstance(decoded, str | int | float) else value.strip()


def trained_target(hyperparameters: Mapping[str, str] | None) -> Schema | None:
    """The layout the stack's training jobs read when they name a target (a team trains on
    its own export, the schema inferred by the job) but no model or schema says the columns:
    the target and its positive values only (no columns: nothing is written beside the rows,
    the job infers them as it did for the team's first upload). None without a target."""
    given = hyperparameters or {}
    target = _hyperparameter(given.get("target"))
    if not target:
        return None
    positive = tuple(p.strip() for p in _hyperparameter(given.get("positive")).split(",")
                     if p.strip())
    negative = tuple(p.strip() for p in _hyperparameter(given.get("negative")).split(",")
                     if p.strip())
    return Schema(columns=(), target=target, positive=positive, negative=negative)


def stack_schema(store: ObjectStore, configured_key: str = "",
                 hyperparameters: Mapping[str, str] | None = None) -> Schema | None:
    """The team schema the loop exports in: the one set for the stack (an object key, a
    hand-edited schema), else the serving champion's own, else (no model promoted yet) the
    columns the refused candidate was trained on, else the target the stack's training jobs
    are given (`trained_target`); None for the real-estate contract.
    A configured schema that cannot be read raises `SchemaError` (the run fails loudly rather
    than exporting in the wrong layout)."""
    if configured_key:
        try:
            return Schema.from_dict(json.loads(store.get_bytes(configured_key)))
        except (ObjectNotFound, FileNotFoundError) as exc:
            raise SchemaError(f"the stack's schema {configured_key} does not exist") from exc
        except ValueError as exc:
            raise SchemaError(f"the stack's schema {configured_key} is unusable: {exc}") from exc
    try:
        pointer = json.loads(store.get_bytes(CHAMPION_KEY))
    except (ObjectNotFound, FileNotFoundError):
        # No model promoted yet: the columns the refused candidate was trained on, if it was
        # trained on a team's (the leads that came meanwhile were kept in them).
        return _refused_schema(store) or trained_target(hyperparameters)
    except ValueError:
        return None
    try:
        prefix = str(pointer.get("prefix") or "").rstrip("/")
        manifest = json.loads(store.get_bytes(f"{prefix}/{MANIFEST_FILE}")) if prefix else {}
        # only a bundle that lists schema.json has one (a real-estate champion never does; a
        # read of a key that is not there would be a 403 for a role that cannot list)
        if SCHEMA_FILE not in (manifest.get("files") or {}):
            return None
        return Schema.from_dict(json.loads(store.get_bytes(f"{prefix}/{SCHEMA_FILE}")))
    except (ObjectNotFound, FileNotFoundError, ValueError, AttributeError, TypeError):
        return None  # no champion yet, or one whose files cannot be read as a schema


def _refused_schema(store: ObjectStore) -> Schema | None:
    """The refused candidate's target and its values, not its columns: what it dropped was
    decided on the past contacts alone (a column constant there, such as a previous campaign's
    outcome before any previous campaign, may carry the signal in the leads that came since),
    so the next job infers the columns again on the new rows (its leak guard included)."""
    try:
        refused = Schema.from_dict(json.loads(store.get_bytes(REFUSED_SCHEMA_KEY)))
    except (ObjectNotFound, FileNotFoundError, ValueError, TypeError):
        return None
    return Schema(columns=(), target=refused.target, positive=refused.positive,
                  negative=refused.negative)


#: beside an export that carries history: where its history rows were read from
HISTORY_SUFFIX = ".history.json"
#: a bigger history is not carried: the export holds its rows in memory (the function's
#: 1,024 MB, beside up to ~100k labelled rows), and a real-estate line is ~0.5-1.5 KB
HISTORY_MAX_ROWS = 100_000


def history_key_beside(key: str) -> str:
    """``labelled-<h>.history.json`` beside the export ``labelled-<h>.jsonl``."""
    return schema_key_beside(key)[: -len(SCHEMA_SUFFIX)] + HISTORY_SUFFIX


@dataclass(frozen=True)
class History:
    """The history rows an export carries: verbatim lines of ``key``."""

    key: str
    lines: tuple[bytes, ...]
    left_out: int = 0

    def body(self) -> bytes:
        return b"".join(line + b"\n" for line in self.lines)


def _json_at(store: ObjectStore, key: str) -> dict[str, Any] | None:
    try:
        value = json.loads(store.get_bytes(key))
    except (ObjectNotFound, FileNotFoundError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def history_part(store: ObjectStore, extension: str = ".jsonl") -> str | None:
    """The training part of the team's upload (``extension``: the export's layout, ``.jsonl``
    or ``.csv``) an export carries, or None.

    With a champion: the upload it learned from, in the real-estate layout only (a team's
    first model from its own CSV learned its columns there; its retraining learns from the
    loop's rows); none for one promoted by hand (no job), a location's upload (another
    business's leads) or a training part of more than `HISTORY_MAX_ROWS` rows. A champion
    trained on a loop export learned from the history that export carried (its
    ``.history.json``); an export that carried none gives none.
    Without one: the upload behind the stack's last job that produced no model
    (`bundle.WAITING_HISTORY_KEY`), in either layout: the next job learns from that history
    and the outcomes that came since together."""
    champion = _json_at(store, CHAMPION_KEY)
    if champion is None:
        waiting = _json_at(store, WAITING_HISTORY_KEY)
        job = str((waiting or {}).get("job") or "")
        return _job_history(store, job, extension, direct=True) if job else None
    source = champion.get("source")
    job = str(source.get("job_name") or "") if isinstance(source, dict) else ""
    if not job:
        return None
    return _job_history(store, job, extension, direct=extension == ".jsonl")


def _job_history(store: ObjectStore, job: str, extension: str, *, direct: bool) -> str | None:
    """The history `job` learned from: its upload's training part (``direct``: a team's own
    upload is carried) or what the export it trained on carried."""
    record = _json_at(store, split_record_key(job))
    upload = str((record or {}).get("source_key") or "")
    if not upload or location_of_upload(upload) is not None:
        return None
    if upload.startswith(EXPORT_PREFIX):
        carried = _json_at(store, history_key_beside(upload))
        key = str((carried or {}).get("history_key") or "")
        return key if key and part_extension(key) == extension else None
    train = (record or {}).get("train")
    rows = train.get("rows") if isinstance(train, dict) else None
    if not direct or part_extension(upload) != extension or not isinstance(rows, int) \
            or rows > HISTORY_MAX_ROWS:
        return None
    return train_part_key(job, upload)


def stack_history(store: ObjectStore, labelled: Sequence[Mapping[str, Any]],
                  deleted: Deleted) -> History | None:
    """The history rows (`history_part`) an export in the real-estate layout carries, read
    line by line and kept verbatim, but for a line that is not a JSON object, one of a
    contact in ``labelled`` (the loop's own rows, held ones included: its newer, point-in-time
    row wins and the lead stays on one side of the split), one of a deleted contact or
    location, and one the split would send to the gate part (the champion trained on it)."""
    key = history_part(store)
    if key is None:
        return None
    try:
        raw = store.get_bytes(key)
    except (ObjectNotFound, FileNotFoundError):
        return None
    pairs, locations = deleted
    # the loop's own rows (their point-in-time label wins) and deleted contacts
    left_contacts = {str(r["contact_id"]) for r in labelled} | {c for _, c in pairs}
    kept: list[bytes] = []
    left_out = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        contact = str(row.get("contact_id") or "") if isinstance(row, dict) else ""
        if (not isinstance(row, dict) or (contact and contact in left_contacts)
                or str(row.get("location_id") or "") in locations
                or jsonl_goes_to_gate(line)):
            left_out += 1
            continue
        kept.append(line)
    return History(key, tuple(kept), left_out)


#: the lead id a carried history row without one is given (``history-<n>``): HighLevel's ids
#: have no hyphen, so none is ever a contact's; only ids the split keeps on the training side
HISTORY_ID_PREFIX = "history-"


def _history_ids() -> Iterator[str]:
    """``history-0``, ``history-1``, ... but for those the split would send to a gate part: a
    row the next candidate trains on, or the champion learned from, is never evidence."""
    for n in itertools.count():
        lead = f"{HISTORY_ID_PREFIX}{n}"
        if not goes_to_gate(split_key(b"", lead)):
            yield lead


def team_history(store: ObjectStore, header: Sequence[str], schema: Schema,
                 labelled: Sequence[Mapping[str, Any]], deleted: Deleted) -> History | None:
    """The history rows (`history_part`, a CSV) an export in the team's layout carries,
    written in the export's ``header``: the columns both have (by name, or by the field key
    HighLevel derives from it; an export column the history lacks is empty, a history column
    the export lacks is not carried; of a value only what a snapshot would keep: an e-mail as
    its domain, nothing personal), the target in the schema's own words (read by its label
    rule; an unreadable one is left out). A row
    naming a contact keeps its id and is left out when the loop labelled that contact itself,
    it was deleted, or the split would send it to a gate part; a row naming none is given a
    ``history-<n>`` id the split keeps for training. None when the history's columns are not
    the export's (less than half of them, or no target): another layout, not this team's."""
    key = history_part(store, ".csv")
    if key is None:
        return None
    try:
        reader = CsvReader(store.get_bytes(key).splitlines(keepends=True), key)
    except (ObjectNotFound, FileNotFoundError, EmptyCsv):
        return None
    # a history column is an export column of the same name, or of the same field key
    # (``MOSTYPE`` in the team's file is the field ``contact.mostype`` the loop records)
    features = [c for c in header if c not in (*PROVENANCE, schema.target)]
    export_of: dict[str, str] = {c: c for c in features}
    for c in features:
        export_of.setdefault(normalise_key(c), c)

    def column_of(name: str) -> str | None:
        return export_of.get(name) or export_of.get(normalise_key(name))

    given = list(reader.header)
    target_at = next((i for i, name in enumerate(given) if name == schema.target), None)
    if target_at is None:
        target_at = next((i for i, name in enumerate(given)
                          if normalise_key(name) == normalise_key(schema.target)), None)
    shared = {column_of(name) for name in given} - {None}
    if target_at is None or 2 * len(shared) < len(features):
        return None
    lead_at = given.index("contact_id") if "contact_id" in given else None
    # what a snapshot may keep of a value is what history may carry (an e-mail as its domain,
    # nothing personal), and only where the export has the column
    carried = [(i, name) for i, name in enumerate(given) if i not in (target_at, lead_at)]
    rule = schema.label_rule()
    pairs, _ = deleted
    left_contacts = {str(r["contact_id"]) for r in labelled} | {c for _, c in pairs}
    ids = _history_ids()
    kept: list[bytes] = []
    left_out = 0
    for record in reader.records():
        cells = record.cells
        label = rule.label(cells[target_at]) if target_at < len(cells) else None
        lead = cells[lead_at].strip() if lead_at is not None and lead_at < len(cells) else ""
        if label is None or (lead and (lead in left_contacts
                                       or goes_to_gate(split_key(b"", lead)))):
            left_out += 1
            continue
        values: dict[str, Any] = {}
        for i, name in carried:
            if i < len(cells) and cells[i] != "":
                for kept_name, value in derived_values(name, cells[i]).items():
                    column = column_of(kept_name)
                    if column is not None:
                        values.setdefault(column, value)
        values["contact_id"] = lead or next(ids)
        values[schema.target] = schema.target_text(bool(label))
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow([_cell(values.get(c)) for c in header])
        kept.append(out.getvalue().encode("utf-8"))
    return History(key, tuple(kept), left_out)


def split_holdout(rows: Sequence[Mapping[str, Any]], config: ExportConfig
                  ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(training rows, platform-held rows): the most recently resolved leads are held back, so
    the hold-out is later in time than anything a candidate from this export trains on."""
    ordered = sorted(rows, key=lambda r: (int(r["outcome_at_ms"]), str(r["snapshot_id"])))
    held = min(int(len(ordered) * config.holdout_fraction), config.holdout_max_rows)
    if held <= 0:
        return list(ordered), []
    return list(ordered[:-held]), list(ordered[-held:])


def write_export(store: ObjectStore, held_store: ObjectStore, prefix: str,
                 rows: Sequence[Mapping[str, Any]], held: Sequence[Mapping[str, Any]],
                 schema: Schema | None, *, now_ms: int,
                 history: History | None = None) -> tuple[str, str, str]:
    """Write one export's rows under ``prefix`` (the training upload) and its platform-held
    rows into ``held_store``'s evaluation set; (``exported`` | ``unchanged``, key, schema key).
    A key that exists is not written again (the same rows give the same key). ``history``
    (`stack_history`, `team_history`): lines written after the rows, for training only."""
    if schema is None:
        body, held_body = render_rows(rows), render_rows(held)
        extension, content_type = ".jsonl", "application/x-ndjson"
    else:
        body, held_body = render_team_csv(rows, schema), render_team_lines(held, schema)
        extension, content_type = ".csv", "text/csv"
    if history is not None:
        body += history.body()
    key = export_key(now_ms, body, extension, prefix=prefix)
    # a target-only layout has no columns to write down: the job infers them
    schema_key = schema_key_beside(key) if schema is not None and schema.columns else ""
    status = "unchanged" if store.exists(key) else "exported"
    if status == "exported":
        if held:  # first: the upload starts a job whose gate must already see the new set
            write_holdout(held_store, held_body, {
                "rows": len(held), "converted": sum(int(r["converted"]) for r in held),
                "from_ms": int(held[0]["outcome_at_ms"]),
                "to_ms": int(held[-1]["outcome_at_ms"]), "written_at": iso_ms(now_ms)})
        if history is not None:
            # before the rows: the export after a candidate trained on them reads it
            store.put_bytes(history_key_beside(key), json.dumps({
                "history_key": history.key, "rows": len(history.lines),
                "left_out": history.left_out}).encode("utf-8"), "application/json")
        # before the rows: their upload starts the job that reads it
        if schema is not None and schema_key:
            store.put_bytes(schema_key, json.dumps(written_schema(schema), indent=2)
                            .encode("utf-8"), "application/json")
        store.put_bytes(key, body, content_type)
    return status, key, schema_key


def read_state(store: ObjectStore, state_key: str = STATE_KEY
                ) -> tuple[ExportState, str | None]:
    try:
        data, tag = store.get_tagged(state_key)
    except (FileNotFoundError, KeyError):
        return ExportState(), None
    return ExportState.parse(data), tag


def window_for(now_ms: int, config: ExportConfig) -> LabelWindow:
    lookback_days = config.window_days + config.snapshot_lookback_days
    return LabelWindow(
        window_start_ms=now_ms - config.window_days * DAY_MS,
        cutoff_ms=now_ms,
        cutoff_dt=day(now_ms),
        snapshot_since_dt=day(now_ms - lookback_days * DAY_MS),
        include_backfilled=config.include_backfilled,
    )


def labelled_rows(runner: QueryRunner, window: LabelWindow) -> list[dict[str, Any]]:
    rows = runner.query(window.labelled_rows_sql())
    for row in rows:
        missing = [c for c in LABELLED_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"labelling query answered without columns {missing}")
    return rows


def run_export(
    runner: QueryRunner,
    store: ObjectStore,
    config: ExportConfig,
    *,
    now_ms: int,
    force: bool = False,
    schema: Schema | None = None,
    unscored: bool = True,
) -> ExportResult:
    """One export run (see the module docstring). ``force`` skips the new-outcomes minimum
    (``leadscore-loop export --force``), never the idempotence. ``schema``: the team's schema
    (`stack_schema`) to export in its own layout; None: the real-estate JSON Lines.
    ``unscored``: whether rows no model scored are exported (False with a model per
    location: `leadscore.loop.location_export` exports them for their own location)."""
    state, tag = read_state(store)
    since_ms = state.cutoff_ms
    count_rows = runner.query(
        new_outcomes_sql(since_ms, day(max(since_ms, 0)), now_ms, day(now_ms))
    )
    new_outcomes = int(count_rows[0]["new_outcomes"]) if count_rows else 0
    if new_outcomes < config.min_new_outcomes and not force:
        return ExportResult("not_enough_outcomes", new_outcomes, cutoff_ms=since_ms)
    window = window_for(now_ms, config)
    # Deleted contacts and purged locations never train again (their records may still be
    # in files a compaction has not rewritten yet).
    deleted = deleted_pairs(store)
    everything = without_deleted(labelled_rows(runner, window), store, deleted=deleted)
    if not unscored:
        # With a model per location, a row no model scored is a location's history kept for
        # its own first model (it has none and does not pool): never the agency's to train on.
        everything = [r for r in everything if r.get("model_version")]
    # One layout per export: rows scored in the other form cannot be written in it.
    same_form = [r for r in everything if (team_fields(r) is not None) == (schema is not None)]
    left_out = len(everything) - len(same_form)
    rows, held = split_holdout(same_form, config)
    if len(rows) < MIN_TRAINING_ROWS:
        return ExportResult("too_few_rows", new_outcomes, rows=len(rows), cutoff_ms=since_ms,
                            left_out=left_out)
    history = (stack_history(store, everything, deleted) if schema is None else
               team_history(store, team_header(rows, schema), schema, everything, deleted))
    status, key, schema_key = write_export(store, store, EXPORT_PREFIX, rows, held, schema,
                                           now_ms=now_ms, history=history)
    carried: dict[str, Any] = {} if history is None else {
        "history_rows": len(history.lines), "history_left_out": history.left_out,
        "history_key": history.key}
    new_state = ExportState(cutoff_ms=now_ms, key=key, rows=len(rows), exported_at=iso_ms(now_ms))
    try:
        store.replace_if(
            STATE_KEY, json.dumps(asdict(new_state)).encode(), "application/json", tag
        )
    except ConcurrentUpdate:
        return ExportResult("lost_race", new_outcomes, rows=len(rows), key=key, cutoff_ms=now_ms,
                            holdout_rows=len(held), left_out=left_out, schema_key=schema_key,
                            **carried)
    return ExportResult(status, new_outcomes, rows=len(rows), key=key, cutoff_ms=now_ms,
                        holdout_rows=len(held), left_out=left_out, schema_key=schema_key,
                        **carried)
