"""Where experiments live: next to the champion pointer, in the same store.

    models/experiment.json            the current experiment (running or last stopped)
    models/experiments/<name>.json    every experiment ever created, as last written

One experiment runs at a time: the scoring side reads one small object when it refreshes the
champion pointer, and "which variant did this contact get" has a single answer. The current
record is switched with the store's conditional write, so a create racing a stop cannot
silently undo the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from leadscore.bundle import (
    EXPERIMENT_KEY,
    EXPERIMENTS_PREFIX,
    MANIFEST_FILE,
    experiment_record_key,
    version_prefix,
)
from leadscore.errors import InvalidInput
from leadscore.experiments.definition import DEFAULT_METRIC, Experiment, parse_experiment
from leadscore.registry.store import ConcurrentUpdate, ObjectNotFound, ObjectStore, RegistryError

# the store layout is the bundle module's (one copy for promotion, serving, experiments)
CURRENT_KEY = EXPERIMENT_KEY
HISTORY_PREFIX = EXPERIMENTS_PREFIX

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _encode(experiment: Experiment) -> bytes:
    return json.dumps(experiment.to_record(), indent=2, sort_keys=True).encode()


def _current_tagged(store: ObjectStore) -> tuple[Experiment | None, str | None]:
    try:
        raw, tag = store.get_tagged(CURRENT_KEY)
    except ObjectNotFound:
        return None, None
    return parse_experiment(json.loads(raw)), tag


def current(store: ObjectStore) -> Experiment | None:
    """The current experiment record (running or stopped), or None if there never was one."""
    return _current_tagged(store)[0]


def running(store: ObjectStore) -> Experiment | None:
    experiment = current(store)
    return experiment if experiment is not None and experiment.running else None


def get(store: ObjectStore, name: str) -> Experiment:
    try:
        return parse_experiment(json.loads(store.get_bytes(experiment_record_key(name))))
    except ObjectNotFound:
        raise RegistryError(f"no experiment named {name!r}") from None


def _write(store: ObjectStore, experiment: Experiment, expected_tag: str | None) -> None:
    data = _encode(experiment)
    store.put_bytes(experiment_record_key(experiment.name), data, "application/json")
    try:
        store.replace_if(CURRENT_KEY, data, "application/json", expected_tag)
    except ConcurrentUpdate:
        raise RegistryError("the current experiment changed meanwhile; run the command again") \
            from None


def create(
    store: ObjectStore, name: str, variants: Sequence[str], allocation: Sequence[int],
    shadow: str | None = None, *, metric: str = DEFAULT_METRIC, clock: Clock = _now,
) -> Experiment:
    """Start an experiment; refused while another one runs or when the name was used."""
    experiment = parse_experiment({
        "name": name, "variants": list(variants), "allocation": list(allocation),
        "shadow": shadow, "status": "running", "created_at": _iso(clock()), "metric": metric,
    })
    active, tag = _current_tagged(store)
    if active is not None and active.running:
        raise RegistryError(f"experiment {active.name!r} is running; stop it first")
    if store.exists(experiment_record_key(name)):
        raise RegistryError(f"an experiment named {name!r} already exists")
    missing = [v for v in experiment.model_versions()
               if not store.exists(version_prefix(v) + MANIFEST_FILE)]
    if missing:
        raise RegistryError(f"no stored bundle for {', '.join(missing)}")
    _write(store, experiment, tag)
    return experiment


def stop(
    store: ObjectStore, name: str, *, winner: str | None = None, clock: Clock = _now
) -> Experiment:
    active, tag = _current_tagged(store)
    if active is None or active.name != name or not active.running:
        raise RegistryError(f"experiment {name!r} is not running")
    record = active.to_record() | {"status": "stopped", "stopped_at": _iso(clock()),
                                   "winner": winner}
    try:
        stopped = parse_experiment(record)
    except InvalidInput as exc:
        raise RegistryError(str(exc)) from None
    _write(store, stopped, tag)
    return stopped


def history(store: ObjectStore) -> list[Experiment]:
    keys = [k for k in store.list(HISTORY_PREFIX) if k.endswith(".json")]
    found = [parse_experiment(json.loads(store.get_bytes(k))) for k in keys]
    return sorted(found, key=lambda e: e.created_at)
