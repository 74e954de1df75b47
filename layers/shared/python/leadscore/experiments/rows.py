"""The rows an experiment is judged on: the loop's point-in-time labelled rows.

Each resolved contact contributes the latest snapshot scored before its outcome
(`leadscore.loop.labelling`), with the experiment and variant that answered it. Rows whose
latest pre-outcome snapshot was not scored in the experiment do not count for it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from leadscore.bundle import experiment_record_key
from leadscore.columns.labels import DEFAULT_RULE
from leadscore.experiments import results
from leadscore.experiments.definition import Experiment
from leadscore.identifiers import is_safe_id
from leadscore.loop.labelling import LabelWindow
from leadscore.registry.locations import location_store

if TYPE_CHECKING:
    from leadscore.registry.store import ObjectStore


class QueryRunner(Protocol):
    def query(self, sql: str) -> list[dict[str, Any]]: ...

#: Experiments are judged on every outcome the tables hold up to now (no rolling window).
EPOCH_DT = "1970-01-01"


def experiment_rows_sql(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    window = LabelWindow(window_start_ms=0, cutoff_ms=int(moment.timestamp() * 1000),
                         cutoff_dt=moment.strftime("%Y-%m-%d"), snapshot_since_dt=EPOCH_DT)
    return window.labelled_rows_sql()


def resolved(rows: Iterable[Mapping[str, Any]], experiment: Experiment
             ) -> list[results.ResolvedLead]:
    """The rows scored in this experiment by one of its variants, as resolved leads."""
    out = []
    for row in rows:
        variant = row.get("variant")
        if row.get("experiment") != experiment.name or variant not in experiment.variants:
            continue
        converted = DEFAULT_RULE.label(row.get("converted"))
        if converted is None:  # not resolved yet: it cannot judge a variant
            continue
        out.append(results.ResolvedLead(
            variant=str(variant), score=float(row["predicted_score"]),
            predicted_class=str(row.get("predicted_class") or ""),
            converted=bool(converted)))
    return out


def in_scope(rows: Iterable[Mapping[str, Any]], location_id: str | None,
             own_experiment_locations: Collection[str] = ()) -> list[Mapping[str, Any]]:
    """The rows an experiment of one scope may be judged on. A location's own experiment
    (``location_id``): that location's leads only, so another location's experiment of the
    same name never counts for it. The agency's (None): every lead but those of the locations
    whose own experiment bears the same name (``own_experiment_locations``: their arms were
    that experiment's). A row without ``location_id`` (a hand-made rows file) is kept."""
    if location_id is not None:
        return [r for r in rows if r.get("location_id") in (None, location_id)]
    excluded = set(own_experiment_locations)
    return [r for r in rows if r.get("location_id") not in excluded] if excluded else list(rows)


def locations_with_experiment(root: ObjectStore, name: str,
                              rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The locations among ``rows``' (those with a row of an experiment named ``name``) whose
    own experiments include one of that name. Only the rows' locations are asked, each with
    one read of its own folder: the functions may not list the store's ``locations/``."""
    candidates = {r.get("location_id") for r in rows if r.get("experiment") == name}
    return sorted(location_id for location_id in candidates
                  if isinstance(location_id, str) and is_safe_id(location_id)
                  and location_store(root, location_id).exists(experiment_record_key(name)))


def results_for(experiment: Experiment, rows: Iterable[Mapping[str, Any]]
                ) -> tuple[results.ExperimentResults, list[results.ResolvedLead]]:
    leads = resolved(rows, experiment)
    return results.summarise(experiment.name, list(experiment.variants), leads,
                             metric=experiment.metric), leads


def scope_results(store: ObjectStore, runner: QueryRunner, now: datetime
                  ) -> Callable[[str | None], dict[str, Any] | None]:
    """Each scope's running experiment results as JSON-ready records (the health pages):
    ``None`` the agency's, a location id that location's own (`in_scope`). The loop's rows
    are queried once, when the first scope with a running experiment asks."""
    from leadscore.experiments.store import running

    queried: list[list[dict[str, Any]]] = []

    def results_of(location_id: str | None) -> dict[str, Any] | None:
        where = store if location_id is None else location_store(store, location_id)
        experiment = running(where)
        if experiment is None:
            return None
        if not queried:
            queried.append(runner.query(experiment_rows_sql(now)))
        rows = queried[0]
        others = locations_with_experiment(store, experiment.name, rows) \
            if location_id is None else ()
        return results_for(experiment, in_scope(rows, location_id, others))[0].to_record()

    return results_of
