"""A scoring request -> a lead score (docs/API.md). No AWS, no HTTP.

Request
-------
``{"contact_id": str, "features": {...raw lead...}}`` or
``{"contact_id": str, "feature_vector": [20 numbers] | {feature name: number}}`` for the
real-estate default, or ``{"contact_id": str, "fields": {column: value}}`` for a bundle trained
on a team's own columns (``leadscore.columns.schema``; the bundle's ``schema.json``). A form the
loaded model does not take is a 400 naming it; ``fields`` without a loaded model is a 503
(the rules score knows only the real-estate features).

- ``contact_id``: required, a non-empty (not only blanks) string of at most 128 characters.
- Exactly one of ``features`` / ``feature_vector``.
- Unknown top-level keys are **ignored** (callers and CRMs attach metadata such as
  ``location_id``); misspelling a required key still fails ("features or feature_vector is
  required"). Every problem of one lead is reported at once; paths are those of
  `leadscore.features` (``property_data.list_price``, ``feature_vector[3]``) plus
  ``contact_id``, ``features``, ``feature_vector`` and ``""`` for a request that is not an object.

Lead score (every field of the original ``LeadScorePrediction`` plus the additions of docs/API.md)
------------------------------------------------------------------------------------------
``contact_id``, ``predicted_score`` (0–1), ``confidence_interval`` [lo, hi],
``predicted_class``, ``model_agreement`` = clip(1 − std(base scores) / 0.5, 0, 1),
``feature_contributions`` {name: signed probability}, ``prediction_timestamp`` (ISO-8601 UTC,
when the score was computed — a cached answer keeps its original time), ``model_version``,
``cached``, ``base_scores`` {xgboost, lightgbm, neural_network}, ``baseline_score`` (the
reference the contributions are measured from: they add up to predicted_score −
baseline_score), ``top_positive_factors`` / ``top_negative_factors`` (up to 5 each:
``{"feature", "value", "contribution", "reason"}``), ``missing_fields``, ``composite_score``
(rules, 0–100), ``ml_score`` = round(100 · predicted_score, 1), ``should_prioritize``,
``feature_values`` (the 20 values the model saw), ``source`` and ``explained``.
Floats are plain Python floats rounded to 6 decimals.

A ``fields`` answer (custom schema) differs only where the real-estate contract cannot apply:
``feature_contributions`` and ``feature_values`` are keyed by the schema's columns (a one-hot
group and its missing indicator summed back to one column; values as read: a number, the
category's text, or null when missing), factors name columns and give reasons in the schema's
words, ``missing_fields`` lists schema columns without a usable value, ``unseen_categories``
lists ``{"column", "value"}`` scored as "other", and ``composite_score`` is null (the rules
score is defined on the real-estate features only).

``explain=False`` skips contributions and factors: ``feature_contributions`` is ``{}``, both
factor lists are ``[]`` and ``explained`` is ``false`` (so ``{}`` is never mistaken for "no
feature mattered").

Rules fallback (no usable model, or a model answer that is not a number)
--------------------------------------------------------------------------
A model whose score, base scores or interval for a lead is NaN, infinite or outside [0, 1]
does not answer for that lead: the rules do, exactly as when no model is loaded.
``source: "rules"``, ``model_version: "rules"``, ``predicted_score`` = the rules probability
(``composite_score / 100``), class and ``should_prioritize`` from it. Nothing model-based is
invented: ``confidence_interval``, ``model_agreement``, ``base_scores`` and
``baseline_score`` are ``null``, ``feature_contributions`` ``{}``, factors ``[]``,
``explained`` false. Rules answers are not cached (they are cheap, and the model should answer
as soon as it is back). A ``fields`` lead has no rules score (the rules read the real-estate
features): a model answer that is not a number is `NoModelForFields` (503) there.

Cache
-----
Key: `leadscore.scoring.cache.answer_key` (contact id + model version + a digest of the float32
vector and float64 values, the input form, the missing fields, the ``explain`` flag and, when
the answer quotes it, the raw ``features``):
a cached answer equals a fresh one apart from ``cached`` and ``prediction_timestamp``.

Limits (hostile input stays bounded)
-----------------
``comparables`` and ``price_drops`` hold at most ``max_list_items`` items (one error naming the
limit otherwise); a batch lists at most ``max_error_paths`` paths per invalid lead and
``BATCH_ERROR_PATHS_FACTOR`` × that in all, each lead with its ``error_count``.

Class thresholds: settings override > the bundle manifest's ``class_thresholds`` > defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import numpy as np

from leadscore import classes
from leadscore.columns.reasons import column_reason
from leadscore.columns.schema import Encoded, Schema
from leadscore.errors import MAX_ERROR_PATHS, FieldError, InvalidInput, capped_errors
from leadscore.explain import contributions as explain_contributions
from leadscore.features.contract import FEATURE_NAMES
from leadscore.features.nested import extract_features
from leadscore.features.vector import parse_feature_vector
from leadscore.identifiers import has_lone_surrogate
from leadscore.scoring import rules
from leadscore.scoring.cache import CachedScore, ScoreCache, answer_key
from leadscore.scoring.lead_score import (
    BatchAnswer,
    Explanation,
    Factor,
    LeadScore,
    not_explained,
)
from leadscore.scoring.reasons import reason_for
from leadscore.settings import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_LIST_ITEMS

if TYPE_CHECKING:
    from leadscore.bundle import LoadedModel
    from leadscore.scoring.model_store import ModelProvider

MAX_CONTACT_ID_LENGTH = 128
TOP_FACTORS = 5
BASE_MODEL_NAMES = ("xgboost", "lightgbm", "neural_network")
RULES_VERSION = "rules"
ROUND = 6
#: A batch lists at most this many times `max_error_paths` error paths in all.
BATCH_ERROR_PATHS_FACTOR = 100

_EXPLANATION_KEYS = ("feature_contributions", "top_positive_factors", "top_negative_factors")


class NoModelForFields(RuntimeError):
    """A ``fields`` request while no model is loaded (HTTP 503): rules cannot score it."""


class BatchTooLarge(ValueError):
    """More leads than the configured maximum (an HTTP 413)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"batch of {size} leads exceeds the limit of {limit} (MAX_BATCH_SIZE)")
        self.size = size
        self.limit = limit


class BatchErrors:
    """The ``errors`` list of a batch answer, bounded: each invalid lead lists its first
    `max_paths` paths (and its `error_count`), the whole batch at most
    `BATCH_ERROR_PATHS_FACTOR` × `max_paths` paths."""

    def __init__(self, max_paths: int) -> None:
        self.items: list[dict[str, Any]] = []
        self._max_paths = max_paths
        self._budget = max_paths * BATCH_ERROR_PATHS_FACTOR

    def add(self, index: int, exc: InvalidInput) -> None:
        listed = capped_errors(exc.errors, min(self._max_paths, self._budget))
        self._budget -= len(listed["errors"])
        self.items.append({"index": index, **listed})


@dataclass(frozen=True, slots=True)
class ParsedLead:
    contact_id: str
    form: str  # "features" | "feature_vector" | "fields": the answer depends on it
    values: np.ndarray  # float64 [20]
    x32: np.ndarray  # float32 [20], what the model sees and the cache key hashes
    missing_fields: list[str]
    raw_features: Mapping[str, Any] | None  # the `features` (or `fields`) object as sent
    encoded: Encoded | None = None  # the `fields` form (custom schema) as read


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rounded(x: float) -> float:
    return round(float(x), ROUND)


def parse_request(request: Any, max_list_items: int = DEFAULT_MAX_LIST_ITEMS,
                  schema: Schema | None = None) -> ParsedLead:
    """Validate one scoring request; raises `InvalidInput` listing every problem.

    ``schema`` is the loaded bundle's custom column schema (None: the real-estate contract).
    """
    if schema is not None or is_fields_form(request):
        return _parse_fields_request(request, schema)
    if not isinstance(request, Mapping):
        raise InvalidInput([FieldError("", "must be a JSON object")])
    contact_id = request.get("contact_id")
    errors: list[FieldError] = _contact_id_errors(contact_id)

    has_features = request.get("features") is not None
    has_vector = request.get("feature_vector") is not None
    values: np.ndarray | None = None
    missing: list[str] = []
    raw: Mapping[str, Any] | None = None
    if has_features and has_vector:
        errors.append(FieldError("feature_vector", "give either features or feature_vector"))
    elif has_features:
        features = request["features"]
        if not isinstance(features, Mapping):
            errors.append(FieldError("features", "must be an object"))
        else:
            try:
                extracted = extract_features(features, max_list_items=max_list_items)
                values, missing, raw = extracted.values, extracted.missing_fields, features
            except InvalidInput as exc:
                errors.extend(exc.errors)
    elif has_vector:
        try:
            values = parse_feature_vector(request["feature_vector"], "feature_vector")
        except InvalidInput as exc:
            errors.extend(exc.errors)
    else:
        errors.append(FieldError("features", "features or feature_vector is required"))

    if errors:
        raise InvalidInput(errors)
    assert values is not None and isinstance(contact_id, str)
    form = "features" if has_features else "feature_vector"
    return ParsedLead(contact_id, form, values, values.astype(np.float32), missing, raw)


def is_fields_form(request: Any) -> bool:
    """``fields`` given and neither real-estate form: a request for a custom-schema bundle.
    (A ``fields`` key next to ``features`` stays an ignored unknown key, as it always was.)"""
    return (isinstance(request, Mapping) and request.get("fields") is not None
            and request.get("features") is None and request.get("feature_vector") is None)


def checked_contact_id(request: Any) -> str:
    """The request's contact id, checked as every form checks it (raises `InvalidInput`);
    the rest of the request is left to the model that will read it."""
    if not isinstance(request, Mapping):
        raise InvalidInput([FieldError("", "must be a JSON object")])
    errors = _contact_id_errors(request.get("contact_id"))
    if errors:
        raise InvalidInput(errors)
    return str(request["contact_id"])


def _contact_id_errors(contact_id: Any) -> list[FieldError]:
    if contact_id is None:
        return [FieldError("contact_id", "is required")]
    if not isinstance(contact_id, str):
        return [FieldError("contact_id", "must be a string")]
    if not contact_id.strip():
        return [FieldError("contact_id", "must not be empty")]
    if len(contact_id) > MAX_CONTACT_ID_LENGTH:
        return [FieldError("contact_id", f"must be at most {MAX_CONTACT_ID_LENGTH} characters")]
    if has_lone_surrogate(contact_id) or not contact_id.isprintable():
        # it is part of every cache key and log line: text that cannot be written is refused
        return [FieldError("contact_id", "must be printable Unicode text")]
    return []


def _parse_fields_request(request: Any, schema: Schema | None) -> ParsedLead:
    """The ``fields`` form, validated against a custom schema."""
    if not isinstance(request, Mapping):
        raise InvalidInput([FieldError("", "must be a JSON object")])
    errors = _contact_id_errors(request.get("contact_id"))
    encoded: Encoded | None = None
    if schema is None:
        errors.append(FieldError("fields", "the loaded model scores the real-estate features: "
                                 "send features or feature_vector"))
    elif request.get("features") is not None or request.get("feature_vector") is not None:
        key = "features" if request.get("features") is not None else "feature_vector"
        errors.append(FieldError(key, "the loaded model scores the team's own columns: send "
                                 "fields {column: value}"))
    elif request.get("fields") is None:
        errors.append(FieldError("fields", "is required (an object {column: value})"))
    else:
        try:
            # a date's age is measured from the day of the request (a schema's as_of is the
            # day training measured from: an age from it would not move with time, and a lead
            # created after training would be scored with a negative age)
            encoded = schema.encode_fields(request["fields"], today=datetime.now(UTC).date())
        except InvalidInput as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors)
    assert encoded is not None
    contact_id = str(request["contact_id"])
    fields = request["fields"]
    return ParsedLead(contact_id, "fields", encoded.values, encoded.values.astype(np.float32),
                      list(encoded.missing), fields, encoded)


def model_agreement(base_scores: Sequence[float] | np.ndarray) -> float:
    """clip(1 − std(base scores) / 0.5, 0, 1), as in the original system (population std).

    Plain floats: three numbers do not pay numpy's per-call overhead on every request."""
    values = [float(v) for v in base_scores]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return float(min(1.0, max(0.0, 1.0 - std / 0.5)))


class Scorer(Protocol):
    """What the webhook and write-back flows need from scoring (`ScoringService` is one)."""

    def score(self, request: Mapping[str, Any], *, explain: bool = True) -> LeadScore: ...


def scorer_schema(scorer: Any) -> Schema | None:
    """The columns a scorer reads (its ``custom_schema()``), None for the real-estate contract.

    The one rule the webhook flow and the backfill use to decide between a ``fields`` and a
    ``features`` request; every scorer the stack serves through has the method (test doubles
    may not: they score the real-estate contract)."""
    custom = getattr(scorer, "custom_schema", None)
    found = custom() if callable(custom) else None
    return found if isinstance(found, Schema) else None


class ScoringService:
    """One per container: parse, cache, predict (one ONNX call per request/batch), explain."""

    def __init__(
        self,
        provider: ModelProvider,
        cache: ScoreCache | None = None,
        *,
        class_thresholds: Mapping[str, float] | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_list_items: int = DEFAULT_MAX_LIST_ITEMS,
        max_error_paths: int = MAX_ERROR_PATHS,
        now: Callable[[], str] = _now_iso,
    ) -> None:
        self.provider = provider
        self.cache = cache
        self.class_thresholds_override = (
            dict(class_thresholds) if class_thresholds is not None else None
        )
        self.max_batch_size = max_batch_size
        self.max_list_items = max_list_items
        self.max_error_paths = max_error_paths
        self._now = now
        self._thresholds_for: dict[str, Mapping[str, float]] = {}

    # -- public interface ---------------------------------------------------------------------

    def score(
        self, request: Mapping[str, Any], *, explain: bool = True,
        use: LoadedModel | Literal["rules"] | None = None,
    ) -> LeadScore:
        """One lead score; raises `InvalidInput` (and `NoModelForFields` for ``fields``).
        ``use`` answers with another model or the rules instead of the champion (experiment
        variants, `leadscore.experiments`)."""
        model = self.provider.current() if use is None else None if isinstance(use, str) else use
        if model is None and is_fields_form(request):
            raise NoModelForFields("no model is loaded; the rules score cannot read fields")
        lead = parse_request(request, self.max_list_items, schema_of(model))
        if model is None:
            return self._rules_score(lead)
        key = self._key(lead, model, explain)
        hit = self._cache_get(key)
        if hit is not None:
            return hit
        out = model.predict(lead.x32.reshape(1, -1))
        result = self._model_score(model, lead, out.score[0], out.base_scores[0],
                                   out.interval[0], explain)
        if result["source"] != "rules":
            self._cache_put(key, result)
        return result

    def score_batch(self, leads: Sequence[Any], *, explain: bool = True) -> BatchAnswer:
        """``{"results": [...], "errors": [{"index", "errors": [...]}]}``.

        Results are the valid leads' scores in request order; a bad lead is reported by index
        and does not fail the others. All cache misses are scored in ONE model call.
        """
        if len(leads) > self.max_batch_size:
            raise BatchTooLarge(len(leads), self.max_batch_size)
        batch_errors = BatchErrors(self.max_error_paths)
        errors = batch_errors.items
        parsed: list[tuple[int, ParsedLead]] = []
        model = self.provider.current()
        if model is None and any(is_fields_form(r) for r in leads):
            raise NoModelForFields("no model is loaded; the rules score cannot read fields")
        schema = schema_of(model)
        for index, request in enumerate(leads):
            try:
                parsed.append((index, parse_request(request, self.max_list_items, schema)))
            except InvalidInput as exc:
                batch_errors.add(index, exc)
        if model is None:
            return BatchAnswer(
                results=[self._rules_score(lead) for _, lead in parsed], errors=errors
            )

        results: list[LeadScore | None] = [None] * len(parsed)
        keys: list[str | None] = []
        todo: list[int] = []
        for slot, (_, lead) in enumerate(parsed):
            key = self._key(lead, model, explain)
            keys.append(key)
            hit = self._cache_get(key)
            if hit is None:
                todo.append(slot)
            else:
                results[slot] = hit
        if todo:
            x = np.stack([parsed[slot][1].x32 for slot in todo])
            out = model.predict(x)
            for row, slot in enumerate(todo):
                result = self._model_score(
                    model, parsed[slot][1], out.score[row], out.base_scores[row],
                    out.interval[row], explain,
                )
                if result["source"] != "rules":
                    self._cache_put(keys[slot], result)
                results[slot] = result
        return BatchAnswer(
            results=[result for result in results if result is not None], errors=errors
        )

    def custom_schema(self) -> Schema | None:
        """The served bundle's custom column schema; None for the real-estate default."""
        return schema_of(self.provider.current())

    # -- building answers ---------------------------------------------------------------------

    def thresholds(self, model: LoadedModel | None) -> Mapping[str, float]:
        """The stack's setting, else the bundle's, else the defaults (`classes.
        effective_thresholds`; a location's own override is applied where the score is
        written to HighLevel)."""
        if model is None:
            return classes.effective_thresholds(stack=self.class_thresholds_override)
        found = self._thresholds_for.get(model.version)
        if found is None:
            found = classes.effective_thresholds(
                stack=self.class_thresholds_override,
                bundle=classes.bundle_thresholds(model.manifest))
            self._thresholds_for[model.version] = found
        return found

    def _answer(
        self,
        lead: ParsedLead,
        probability: float,
        thresholds: Mapping[str, float],
        *,
        source: Literal["ensemble", "rules"],
        model_version: str,
        confidence_interval: list[float] | None,
        model_agreement: float | None,
        base_scores: dict[str, float] | None,
        baseline_score: float | None,
        explanation: Explanation,
    ) -> LeadScore:
        predicted_class = classes.classify(probability, thresholds)
        if lead.encoded is not None:  # a custom column schema: no rules score, columns as given
            composite_score: float | None = None
            feature_values = {k: _shown(v) for k, v in lead.encoded.shown.items()}
        else:
            composite_score = _rounded(rules.composite_score(lead.values))
            feature_values = {
                name: round(v, ROUND)
                for name, v in zip(FEATURE_NAMES, lead.x32.tolist(), strict=True)
            }
        answer = LeadScore(
            contact_id=lead.contact_id,
            predicted_score=_rounded(probability),
            predicted_class=predicted_class,
            ml_score=round(100.0 * probability, 1),
            should_prioritize=classes.should_prioritize(predicted_class),
            composite_score=composite_score,
            missing_fields=list(lead.missing_fields),
            feature_values=feature_values,
            prediction_timestamp=self._now(),
            cached=False,
            confidence_interval=confidence_interval,
            model_agreement=model_agreement,
            base_scores=base_scores,
            baseline_score=baseline_score,
            model_version=model_version,
            source=source,
            feature_contributions=explanation["feature_contributions"],
            top_positive_factors=explanation["top_positive_factors"],
            top_negative_factors=explanation["top_negative_factors"],
            explained=explanation["explained"],
        )
        if lead.encoded is not None:
            answer["unseen_categories"] = [dict(u) for u in lead.encoded.unseen]
        return answer

    def _rules_score(self, lead: ParsedLead) -> LeadScore:
        """Nothing model-based is invented: interval, agreement, base scores are null."""
        return self._answer(
            lead,
            rules.rules_probability(lead.values),
            self.thresholds(None),
            source="rules",
            model_version=RULES_VERSION,
            confidence_interval=None,
            model_agreement=None,
            base_scores=None,
            baseline_score=None,
            explanation=not_explained(),
        )

    def _model_score(
        self,
        model: LoadedModel,
        lead: ParsedLead,
        score_raw: Any,
        base_raw: np.ndarray,
        interval_raw: np.ndarray,
        explain: bool,
    ) -> LeadScore:
        score = float(score_raw)
        base = [float(b) for b in base_raw]
        lo, hi = (float(v) for v in interval_raw)
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (score, *base, lo, hi)):
            # A model that answers NaN/inf (or outside [0, 1]) is not an answer: the rules
            # score the lead (source "rules", which the RulesFallback metric counts), so every
            # response stays valid JSON with a number in it. Not cached.
            if lead.encoded is not None:
                # the rules read only the real-estate features, never a team's columns
                raise NoModelForFields("the model's answer for this lead is not a number; "
                                       "the rules score cannot read fields")
            return self._rules_score(lead)
        baseline_score = float(model.manifest.get("baseline_score", math.nan))
        explainer = model.explainer
        if explain and explainer is not None and math.isfinite(baseline_score):
            contrib = explain_contributions(explainer, lead.x32, score, baseline_score)
            schema = schema_of(model)
            if schema is not None and lead.encoded is not None:
                explanation = _column_explanation(schema, lead.encoded, contrib,
                                                  _baseline_values(model))
            else:
                explanation = self._explanation(lead, contrib)
        else:
            explanation = not_explained()
        return self._answer(
            lead,
            score,
            self.thresholds(model),
            source="ensemble",
            model_version=model.version,
            confidence_interval=[_rounded(min(lo, hi)), _rounded(max(lo, hi))],
            model_agreement=_rounded(model_agreement(base)),
            base_scores={n: _rounded(b) for n, b in zip(BASE_MODEL_NAMES, base, strict=True)},
            baseline_score=_rounded(baseline_score) if math.isfinite(baseline_score) else None,
            explanation=explanation,
        )

    @staticmethod
    def _explanation(lead: ParsedLead, contrib: np.ndarray) -> Explanation:
        values = lead.x32.tolist()
        contributions = contrib.tolist()
        rounded = [round(v, ROUND) for v in contributions]  # floats already: no float() each
        order = np.argsort(contrib, kind="stable").tolist()

        def factor(i: int) -> Factor:
            name = FEATURE_NAMES[i]
            return Factor(
                feature=name,
                value=round(values[i], ROUND),
                contribution=rounded[i],
                reason=reason_for(name, values[i], contributions[i], lead.raw_features),
            )

        return Explanation(
            feature_contributions=dict(zip(FEATURE_NAMES, rounded, strict=True)),
            top_positive_factors=[
                factor(i) for i in order[::-1][:TOP_FACTORS] if rounded[i] > 0
            ],
            top_negative_factors=[factor(i) for i in order[:TOP_FACTORS] if rounded[i] < 0],
            explained=True,
        )

    # -- cache --------------------------------------------------------------------------------

    @staticmethod
    def _key(lead: ParsedLead, model: LoadedModel, explain: bool) -> str | None:
        # Only the reasons (and a `fields` answer's values as read) quote the raw lead; an
        # unexplained real-estate answer is a function of the numbers, hashed as they are.
        reads_raw = explain or lead.encoded is not None
        return answer_key(
            lead.contact_id, lead.x32, model.version, form=lead.form,
            raw=lead.raw_features if reads_raw else None, missing=lead.missing_fields,
            explain=explain, values=lead.values,
        )

    def _cache_get(self, key: str | None) -> LeadScore | None:
        if self.cache is None or key is None:
            return None
        entry = self.cache.get(key)
        if entry is None:
            return None
        # Entries are lead scores this service put (the remote tier round-trips their JSON).
        result = cast(LeadScore, dict(entry.score))
        result["cached"] = True
        return result

    def _cache_put(self, key: str | None, result: LeadScore) -> None:
        if self.cache is not None and key is not None:
            # a copy: callers may add keys to the answer they got
            self.cache.put(key, CachedScore(score=dict(result), explained=result["explained"]))


# -- custom schemas (the ``fields`` form) -------------------------------------------------------


def schema_of(model: LoadedModel | None) -> Schema | None:
    """The loaded bundle's custom schema; None for the real-estate default (or no model).

    ``getattr``: a benchmark's native twin of LoadedModel has no schema attribute."""
    schema = getattr(model, "schema", None)
    return schema if isinstance(schema, Schema) else None


def _shown(value: Any) -> Any:
    return _rounded(value) if isinstance(value, float) else value


def _baseline_values(model: LoadedModel) -> Mapping[str, Any]:
    """The typical value per column (the manifest's readable baseline)."""
    readable = model.manifest.get("baseline_columns")
    return readable if isinstance(readable, Mapping) else {}


def _column_explanation(schema: Schema, encoded: Encoded, contrib: np.ndarray,
                        typical: Mapping[str, Any]) -> Explanation:
    """Contributions per schema column (one-hot groups summed back), factors and reasons."""
    per_column = schema.group_contributions(contrib)
    names = list(per_column)
    column_contributions = np.asarray([per_column[n] for n in names])
    order = np.argsort(column_contributions, kind="stable")
    rounded = [_rounded(v) for v in column_contributions]
    unseen = {u["column"] for u in encoded.unseen}

    def factor(i: int) -> Factor:
        col = schema.columns[i]
        value = encoded.shown.get(col.name)
        return Factor(
            feature=col.name,
            value=_shown(value),
            contribution=rounded[i],
            reason=column_reason(col, value, float(column_contributions[i]),
                                 typical.get(col.name), unseen=col.name in unseen),
        )

    return Explanation(
        feature_contributions={name: _rounded(v) for name, v in per_column.items()},
        top_positive_factors=[
            factor(int(i)) for i in order[::-1][:TOP_FACTORS] if rounded[int(i)] > 0
        ],
        top_negative_factors=[
            factor(int(i)) for i in order[:TOP_FACTORS] if rounded[int(i)] < 0
        ],
        explained=True,
    )
