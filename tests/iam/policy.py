"""Each function's IAM policy, read from the TRANSFORMED template, and a small evaluator.

The statements come from what CloudFormation deploys: `tools/sam_transform.py` runs
aws-sam-translator, so SAM policy templates (`DynamoDBCrudPolicy`, ...) and the managed
policies SAM attaches are expanded exactly as in the stack. Intrinsic functions are resolved
against the test world: pseudo parameters as in `tests.fixtures.aws.PSEUDO`, parameters at
their defaults, `Ref`/`GetAtt` of a resource to the physical name(s) the tests give it
(`tests.fixtures.aws.physical_names`), `Fn::If` by evaluating the template's conditions.

The evaluator covers the statement shapes this stack uses and refuses the rest loudly:
Effect Allow/Deny, Action/NotAction and Resource with IAM's `*`/`?` wildcards, and the
condition operators in `_OPERATORS` (with `ForAllValues:`/`ForAnyValue:` and `IfExists`).
An explicit Deny wins; otherwise one matching Allow grants.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.iam.calls import ConditionValue

# The statements of the AWS managed policies SAM attaches (policy documents as published by
# AWS). Only those our functions get: basic logging, X-Ray, and the SQS event source.
MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                       "logs:PutLogEvents"], "Resource": "*"},
    ],
    "AWSXrayWriteOnlyAccess": [
        {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords",
                                       "xray:GetSamplingRules", "xray:GetSamplingTargets",
                                       "xray:GetSamplingStatisticSummaries"], "Resource": "*"},
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage",
                                       "sqs:GetQueueAttributes", "logs:CreateLogGroup",
                                       "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": "*"},
    ],
}


class UnsupportedPolicy(Exception):
    """A statement shape the evaluator does not know: extend it rather than guess."""


@dataclass(frozen=True)
class Statement:
    sid: str
    effect: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: Mapping[str, Mapping[str, list[str]]]
    policy: str  # "inline:<PolicyName>" or "managed:<name>"

    def grants(self) -> list[tuple[str, str]]:
        return [(a, r) for a in self.actions for r in self.resources]

    def label(self) -> str:
        return f"{self.policy}/{self.sid or '(no Sid)'}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    statement: Statement | None = None
    reason: str = ""


@dataclass
class Resolver:
    """Resolves CloudFormation intrinsics to lists of strings (a resource may have aliases)."""

    template: Mapping[str, Any]
    pseudo: Mapping[str, str]
    physical_names: Callable[[str], Sequence[str]]
    parameters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, spec in (self.template.get("Parameters") or {}).items():
            self.parameters.setdefault(name, str(spec.get("Default", "")))

    # -- attributes of resources ------------------------------------------------------------
    def _arns(self, logical_id: str) -> list[str]:
        resource = self.template["Resources"][logical_id]
        kind = resource["Type"]
        region, account = self.pseudo["AWS::Region"], self.pseudo["AWS::AccountId"]
        names = self.physical_names(logical_id)
        by_type = {
            "AWS::S3::Bucket": "arn:aws:s3:::{}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{region}:{account}:table/{{}}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{region}:{account}:{{}}",
            "AWS::IAM::Role": f"arn:aws:iam::{account}:role/{{}}",
            "AWS::SNS::Topic": f"arn:aws:sns:{region}:{account}:{{}}",
            "AWS::KMS::Key": f"arn:aws:kms:{region}:{account}:key/{{}}",
            # AWS appends 6 random characters to a secret's name in its ARN.
            "AWS::SecretsManager::Secret":
                f"arn:aws:secretsmanager:{region}:{account}:secret:{{}}-??????",
            "AWS::KinesisFirehose::DeliveryStream":
                f"arn:aws:firehose:{region}:{account}:deliverystream/{{}}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{region}:{account}:function:{{}}",
            "AWS::Athena::WorkGroup": f"arn:aws:athena:{region}:{account}:workgroup/{{}}",
        }
        if kind not in by_type:
            raise UnsupportedPolicy(f"no ARN shape for {kind} ({logical_id})")
        return [by_type[kind].format(n) for n in names]

    def get_att(self, logical_id: str, attribute: str) -> list[str]:
        if attribute == "Arn":
            return self._arns(logical_id)
        if attribute in ("QueueName", "Name", "StreamName"):
            return list(self.physical_names(logical_id))
        raise UnsupportedPolicy(f"Fn::GetAtt {logical_id}.{attribute}")

    def ref(self, name: str) -> list[str]:
        if name in self.pseudo:
            return [self.pseudo[name]]
        if name in self.parameters:
            return [self.parameters[name]]
        if name in self.template.get("Resources", {}):
            resource = self.template["Resources"][name]
            if resource["Type"] == "AWS::SecretsManager::Secret":  # Ref of a secret: its ARN
                return self._arns(name)
            if resource["Type"] == "AWS::SQS::Queue":  # Ref of a queue is its URL
                region, account = self.pseudo["AWS::Region"], self.pseudo["AWS::AccountId"]
                return [f"https://sqs.{region}.amazonaws.com/{account}/{n}"
                        for n in self.physical_names(name)]
            return list(self.physical_names(name))
        raise UnsupportedPolicy(f"Ref {name}")

    # -- conditions (template) -------------------------------------------------------------
    def condition(self, name: str) -> bool:
        return self._truth(self.template["Conditions"][name])

    def _truth(self, expr: Any) -> bool:
        if isinstance(expr, Mapping) and len(expr) == 1:
            (fn, arg), = expr.items()
            if fn == "Fn::Equals":
                left, right = (self.value(a) for a in arg)
                return left == right
            if fn == "Fn::Not":
                return not self._truth(arg[0])
            if fn == "Fn::And":
                return all(self._truth(a) for a in arg)
            if fn == "Fn::Or":
                return any(self._truth(a) for a in arg)
            if fn == "Condition":
                return self.condition(str(arg))
        raise UnsupportedPolicy(f"condition {expr!r}")

    def value(self, expr: Any) -> str:
        values = self.values(expr)
        if len(values) != 1:
            raise UnsupportedPolicy(f"{expr!r} has {len(values)} values where one is needed")
        return values[0]

    # -- values ----------------------------------------------------------------------------
    def values(self, expr: Any) -> list[str]:
        if isinstance(expr, str | int | float | bool):
            return [str(expr).lower() if isinstance(expr, bool) else str(expr)]
        if isinstance(expr, Mapping) and len(expr) == 1:
            (fn, arg), = expr.items()
            if fn == "Ref":
                return self.ref(str(arg))
            if fn == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(logical_id, attribute)
            if fn == "Fn::Sub":
                return self._sub(arg)
            if fn == "Fn::If":
                name, if_true, if_false = arg
                return self.values(if_true if self.condition(name) else if_false)
            if fn == "Fn::Join":
                sep, parts = arg
                choices = [self.values(p) for p in parts]
                return [str(sep).join(c) for c in itertools.product(*choices)]
            if fn == "Fn::Select":
                position, items = arg
                chosen = self.values(items) if not isinstance(items, list) else [
                    v for item in items for v in self.values(item)]
                return [chosen[int(self.value(position))]]
            if fn == "Fn::Split":
                sep, text = arg
                return [part for whole in self.values(text) for part in whole.split(str(sep))]
            if fn == "Fn::FindInMap":
                mapping, key, attr = (self.value(a) for a in arg)
                return [str(self.template["Mappings"][mapping][key][attr])]
        raise UnsupportedPolicy(f"cannot resolve {expr!r}")

    def _sub(self, arg: Any) -> list[str]:
        if isinstance(arg, list):
            text, variables = arg
        else:
            text, variables = arg, {}
        pieces = re.split(r"(\$\{[^}!]+\})", str(text))
        choices: list[list[str]] = []
        for piece in pieces:
            match = re.fullmatch(r"\$\{([^}]+)\}", piece)
            if not match:
                choices.append([piece])
                continue
            name = match.group(1)
            if name in variables:
                choices.append(self.values(variables[name]))
            elif "." in name and name.split(".", 1)[0] in self.template.get("Resources", {}):
                choices.append(self.get_att(*name.split(".", 1)))
            else:
                choices.append(self.ref(name))
        return ["".join(c) for c in itertools.product(*choices)]

    def list_of(self, expr: Any) -> list[str]:
        items = expr if isinstance(expr, list) else [expr]
        out: list[str] = []
        for item in items:
            if isinstance(item, Mapping) and set(item) == {"Ref"} and item["Ref"] == "AWS::NoValue":
                continue
            out += self.values(item)
        return out


def _statements_of(
    document: Mapping[str, Any], resolver: Resolver, policy: str
) -> list[Statement]:
    raw = document.get("Statement", [])
    raw = raw if isinstance(raw, list) else [raw]
    out: list[Statement] = []
    for st in raw:
        if isinstance(st, Mapping) and set(st) == {"Fn::If"}:
            name, if_true, if_false = st["Fn::If"]
            chosen = if_true if resolver.condition(name) else if_false
            if isinstance(chosen, Mapping) and chosen.get("Ref") == "AWS::NoValue":
                continue
            st = chosen
        unknown = set(st) - {"Sid", "Effect", "Action", "NotAction", "Resource", "Condition"}
        if unknown or "NotResource" in st or "Principal" in st:
            raise UnsupportedPolicy(f"{policy}: statement keys {sorted(set(st))}")
        conditions: dict[str, dict[str, list[str]]] = {}
        for operator, block in (st.get("Condition") or {}).items():
            for key, value in block.items():
                conditions.setdefault(operator, {})[key] = resolver.list_of(value)
        out.append(Statement(
            sid=str(st.get("Sid", "")),
            effect=str(st["Effect"]),
            actions=tuple(resolver.list_of(st["Action"])) if "Action" in st else (),
            not_actions=tuple(resolver.list_of(st["NotAction"])) if "NotAction" in st else (),
            resources=tuple(resolver.list_of(st["Resource"])),
            conditions=conditions,
            policy=policy,
        ))
    return out


def role_of_function(transformed: Mapping[str, Any], function_id: str) -> str:
    """The logical id of the IAM role the transformed function runs as."""
    role = transformed["Resources"][function_id]["Properties"]["Role"]
    if isinstance(role, Mapping) and "Fn::GetAtt" in role:
        target = role["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else str(target).split(".")[0])
    raise UnsupportedPolicy(f"{function_id}: role {role!r} is not a role of the stack")


def role_statements(
    transformed: Mapping[str, Any], role_id: str, resolver: Resolver
) -> list[Statement]:
    """Every statement of a role: inline policies and the managed policies SAM attached."""
    props = transformed["Resources"][role_id]["Properties"]
    out: list[Statement] = []
    for policy in props.get("Policies", []):
        out += _statements_of(policy["PolicyDocument"], resolver,
                              f"inline:{policy.get('PolicyName', '?')}")
    for arn in resolver.list_of(props.get("ManagedPolicyArns", [])):
        name = arn.rsplit("/", 1)[-1]
        if name not in MANAGED_POLICIES:
            raise UnsupportedPolicy(f"{role_id}: managed policy {arn} is not described")
        out += _statements_of({"Statement": MANAGED_POLICIES[name]}, resolver, f"managed:{name}")
    return out


# -- matching --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    # IAM wildcards: * any run of characters (also "/"), ? exactly one; nothing else is special.
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def wildcard_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    return bool(_glob(pattern, case_sensitive).match(value))


def _string_equals(pattern: str, value: str) -> bool:
    return pattern == value


def _string_like(pattern: str, value: str) -> bool:
    return wildcard_match(pattern, value)


def _bool(pattern: str, value: str) -> bool:
    return pattern.lower() == value.lower()


_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": _string_equals,
    "StringLike": _string_like,
    "ArnEquals": _string_equals,
    "ArnLike": _string_like,
    "Bool": _bool,
}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike",
            "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def _condition_holds(operator: str, key: str, wanted: list[str],
                     context: Mapping[str, ConditionValue]) -> bool:
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    negated = operator in _NEGATED
    base = _NEGATED.get(operator, operator)
    if base not in _OPERATORS:
        raise UnsupportedPolicy(f"condition operator {operator}")
    match = _OPERATORS[base]
    present = key in context
    raw = context.get(key)
    values = [] if raw is None else ([raw] if isinstance(raw, str) else list(raw))

    def one(value: str) -> bool:
        hit = any(match(p, value) for p in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)  # an absent or empty key holds (as in IAM)
    if qualifier == "ForAnyValue":
        return any(one(v) for v in values)
    if qualifier:
        raise UnsupportedPolicy(f"condition qualifier {qualifier}")
    if not present:
        return if_exists or negated
    return any(one(v) for v in values)


def _statement_matches(st: Statement, action: str, resource: str,
                       context: Mapping[str, ConditionValue]) -> bool:
    if st.actions and not any(wildcard_match(a, action, case_sensitive=False)
                              for a in st.actions):
        return False
    if st.not_actions and any(wildcard_match(a, action, case_sensitive=False)
                              for a in st.not_actions):
        return False
    if not any(wildcard_match(r, resource) for r in st.resources):
        return False
    return all(_condition_holds(op, key, wanted, context)
               for op, block in st.conditions.items() for key, wanted in block.items())


def evaluate(statements: Iterable[Statement], action: str, resource: str,
             context: Mapping[str, ConditionValue]) -> Decision:
    allow: Statement | None = None
    for st in statements:
        if _statement_matches(st, action, resource, context):
            if st.effect == "Deny":
                return Decision(False, st, f"explicitly denied by {st.label()}")
            if allow is None:
                allow = st
    if allow is None:
        return Decision(False, None, "no statement allows it")
    return Decision(True, allow)

