"""HighLevel's own OpenAPI description (the copy in ``highlevel/``) as a request and answer
checker: the contract tests and the fake HighLevel both judge by it.

``Spec.check_request(method, target, headers, body)`` finds the operation (path templates
such as ``/contacts/{contactId}/tags``) and returns every way the request breaks it: a
required header or query parameter missing, a value outside its enum, a body that does not
validate against the request schema, a body property the schema does not define (HighLevel
refuses those: its DTOs are whitelisted). ``check_response(method, target, status, body)``
says whether the status is one the operation declares and whether the body validates.
``scopes(method, target)`` are the scopes the operation's security requirement names.

Nothing here is AWS or product code: it only reads the JSON files next to it.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parent / "highlevel"
#: The specs of the endpoints this service calls.
SPEC_FILES = ("apps/oauth.json", "apps/contacts.json", "apps/locations.json",
              "apps/opportunities.json", "apps/conversations.json")
COMMON = "common/common-schemas.json"
_BASE = "https://highlevel.spec/"


@dataclass(frozen=True)
class Operation:
    file: str
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: Mapping[str, Any]

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.template}"


def _openapi_to_jsonschema(node: Any, base: str) -> Any:
    """OpenAPI 3.0 schema objects -> JSON Schema: ``nullable`` becomes a type, every ``$ref``
    absolute (so a schema validates wherever it is taken from)."""
    if isinstance(node, dict):
        out = {k: _openapi_to_jsonschema(v, base) for k, v in node.items()}
        if isinstance(out.get("$ref"), str):
            out["$ref"] = urllib.parse.urljoin(base, out["$ref"])
        if out.get("type") == "object" and isinstance(out.get("example"), int | float) and \
                not isinstance(out.get("example"), bool):
            # The spec's own example contradicts its type (contacts.json NumericField and
            # MonetoryField ``field_value``: type object, example 100 / 100.5): the example is
            # what HighLevel takes, so a number is accepted there too.
            out["type"] = ["object", "number"]
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else \
                [*out["type"], "null"]
        # OpenAPI "format: date-time" is advisory here (format is not asserted by default).
        return out
    if isinstance(node, list):
        return [_openapi_to_jsonschema(v, base) for v in node]
    return node


class Spec:
    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.docs: dict[str, Any] = {}
        resources = []
        for rel in (*SPEC_FILES, COMMON):
            doc = _openapi_to_jsonschema(json.loads((root / rel).read_text()), _BASE + rel)
            self.docs[rel] = doc
            resources.append((_BASE + rel, Resource.from_contents(doc, DRAFT202012)))
        self.registry: Registry[Any] = Registry().with_resources(resources)
        self.operations: list[Operation] = []
        for rel in SPEC_FILES:
            for template, item in self.docs[rel].get("paths", {}).items():
                regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template.rstrip("/")))
                for method, op in item.items():
                    if method in ("get", "post", "put", "delete", "patch"):
                        self.operations.append(Operation(rel, method, template,
                                                         re.compile(regex + "/?$"), op))
        # A literal path (/contacts/search) wins over a template (/contacts/{contactId}).
        self.operations.sort(key=lambda o: o.template.count("{"))

    # ----------------------------------------------------------------- lookup

    def operation(self, method: str, target: str) -> Operation | None:
        path = urllib.parse.urlsplit(target).path
        for op in self.operations:
            if op.method == method.lower() and op.pattern.match(path):
                return op
        return None

    def scopes(self, method: str, target: str) -> set[str]:
        """Scopes any one of the operation's security requirements accepts."""
        op = self.operation(method, target)
        found: set[str] = set()
        for requirement in (op.spec.get("security") or []) if op else []:
            for names in requirement.values():
                found.update(names)
        return found

    def _validator(self, op: Operation, schema: Mapping[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(dict(schema), registry=self.registry)

    def _resolve(self, op: Operation, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return schema
        return dict(self.registry.resolver().lookup(ref).contents)

    # ----------------------------------------------------------------- requests

    def check_request(self, method: str, target: str, headers: Mapping[str, str],
                      body: Any) -> list[str]:
        """Every way this request breaks the operation's description ([] = valid)."""
        op = self.operation(method, target)
        if op is None:
            return [f"{method} {urllib.parse.urlsplit(target).path}: no such operation"]
        problems: list[str] = []
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query,
                                            keep_blank_values=True))
        lowered = {k.lower(): v for k, v in headers.items()}
        for param in op.spec.get("parameters", []):
            where, name = param.get("in"), str(param.get("name"))
            if where == "header":
                value = lowered.get(name.lower())
            elif where == "query":
                value = query.get(name)
            else:
                continue
            if value is None:
                if param.get("required"):
                    problems.append(f"{where} parameter {name} is required")
                continue
            schema = param.get("schema") or {}
            if "enum" in schema and value not in [str(v) for v in schema["enum"]]:
                problems.append(f"{where} parameter {name}={value!r} is not one of "
                                f"{schema['enum']}")
            if schema.get("type") in ("number", "integer"):
                try:
                    float(value)
                except ValueError:
                    problems.append(f"query parameter {name}={value!r} is not a number")
            if schema.get("type") == "boolean" and value not in ("true", "false"):
                problems.append(f"query parameter {name}={value!r} is not true/false")
        declared = {p.get("name") for p in op.spec.get("parameters", []) if p.get("in") == "query"}
        for name in query:
            if name not in declared:
                problems.append(f"query parameter {name} is not defined")
        request_body = op.spec.get("requestBody")
        if request_body is None:
            if body not in (None, b"", {}):
                problems.append("the operation takes no body")
            return problems
        content = request_body.get("content", {})
        media = "application/x-www-form-urlencoded" \
            if "application/x-www-form-urlencoded" in content else "application/json"
        if media not in content:
            media = next(iter(content), media)
        content_type = (lowered.get("content-type") or "").split(";")[0].strip()
        if content_type != media:
            problems.append(f"Content-Type {content_type!r}, the operation takes {media}")
        if body is None:
            if request_body.get("required"):
                problems.append("a body is required")
            return problems
        schema = content.get(media, {}).get("schema") or {}
        problems += [f"body{_where(e.absolute_path)}: {e.message}"
                     for e in self._validator(op, schema).iter_errors(body)]
        problems += [f"body: property {name} should not exist"
                     for name in self.unknown_properties(op, schema, body)]
        return problems

    def unknown_properties(self, op: Operation, schema: Mapping[str, Any],
                           body: Any) -> list[str]:
        """Top-level body properties a schema with declared properties does not define (a
        schema without declared properties, e.g. ``SearchBodyV2DTO``, takes anything)."""
        resolved = self._resolve(op, schema)
        declared = resolved.get("properties") or {}
        if not declared or not isinstance(body, Mapping):
            return []
        return sorted(k for k in body if k not in declared)

    # ----------------------------------------------------------------- answers

    def check_response(self, method: str, target: str, status: int, body: Any) -> list[str]:
        op = self.operation(method, target)
        if op is None:
            return [f"{method} {target}: no such operation"]
        responses = op.spec.get("responses", {})
        declared = responses.get(str(status))
        if declared is None:
            # Answers HighLevel gives on every route without describing them: 429 (rate
            # limit), 403 (a token of another location: "The token does not have access to
            # this location"), 5xx (outage).
            if status in (403, 429) or status >= 500:
                return []
            return [f"{op.name}: status {status} is not one of {sorted(responses)}"]
        schema = (declared.get("content") or {}).get("application/json", {}).get("schema")
        if not schema:
            return []
        problems = [f"answer{_where(e.absolute_path)}: {e.message}"
                    for e in self._validator(op, schema).iter_errors(body)]
        if status >= 400:
            # Error DTOs declare their shape ({statusCode, message[, error]}) without marking
            # it required; an error body of another shape (OAuth's {"error": "invalid_grant"})
            # is not HighLevel's described answer.
            declared_props = self._resolve(op, schema).get("properties") or {}
            missing = [k for k in declared_props if not isinstance(body, Mapping) or k not in body]
            problems += [f"answer: error property {k} is missing" for k in missing]
        return problems


def _where(path: Iterable[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


@cache
def spec() -> Spec:
    return Spec()


def webhook_examples(event: str) -> list[dict[str, Any]]:
    """The official example payloads of one webhook event page (``docs/webhook events``)."""
    text = (ROOT / "docs" / "webhook events" / f"{event}.md").read_text()
    out = []
    for block in re.findall(r"```json\n(.*?)```", text, flags=re.S):
        parsed = json.loads(block)
        if isinstance(parsed, dict) and "type" in parsed and "properties" not in parsed:
            out.append(copy.deepcopy(parsed))
    return out
