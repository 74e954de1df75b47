"""`make iam-report`: permissions granted but never called, from a recorded test run.

    LEADSCORE_IAM_REPORT=.build/iam-calls.json python -m pytest -q
    python -m tests.iam.report .build/iam-calls.json

For every function role (its inline statements in the transformed template) each granted
(action, resource) pair, and each value of a multi-valued condition, is matched against the
calls the function's code made during the tests (handler-attributed, checked against the
repository's template). What nothing used is listed: remove it, or say in template.yaml
why it stays (a call the tests cannot make). Exit status 0: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.fixtures import aws as template_aws
from tests.fixtures import iam
from tests.iam import policy


def _calls(path: Path) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(path.read_text())
    return [c for c in loaded if not c.get("against_override")]


def unused_grants(calls: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Function -> readable lines for grants and condition values no call used."""
    by_function: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        if call["kind"] == "handler" and call["allowed"]:
            by_function[call["functions"][0]].append(call)
    out: dict[str, list[str]] = {}
    for function in sorted(template_aws.resources("AWS::Serverless::Function")):
        lines: list[str] = []
        used = by_function.get(function, [])
        for st in iam.statements_of(function):
            if st.policy.startswith("managed:") or st.effect != "Allow":
                continue
            mine = [c for c in used if c["granted_by"].get(function) == st.label()]
            for action, resource in st.grants():
                hit = [c for c in mine
                       if policy.wildcard_match(action, c["action"], case_sensitive=False)
                       and policy.wildcard_match(resource, c["resource"])]
                if not hit:
                    lines.append(f"{st.sid or '(no Sid)'}: {action} on {resource}")
            for operator, block in st.conditions.items():
                for key, values in block.items():
                    if len(values) < 2:
                        continue
                    for value in values:
                        seen = [c for c in mine if key in c["context"] and any(
                            policy.wildcard_match(value, v) for v in (
                                [c["context"][key]] if isinstance(c["context"][key], str)
                                else c["context"][key]))]
                        if not seen:
                            lines.append(f"{st.sid or '(no Sid)'}: condition {operator} "
                                         f"{key} value {value!r}")
        out[function] = lines
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("calls", type=Path)
    args = parser.parse_args(argv)
    calls = _calls(args.calls)
    handler = [c for c in calls if c["kind"] == "handler"]
    print(f"{len(handler)} AWS calls of function code checked "
          f"({sum(not c['allowed'] for c in handler)} denied)")
    per_function: dict[str, set[str]] = defaultdict(set)
    for c in handler:
        per_function[c["functions"][0]].add(c["action"])
    for function in sorted(template_aws.resources("AWS::Serverless::Function")):
        actions = ", ".join(sorted(per_function.get(function, set()))) or "none"
        print(f"  {function}: {actions}")
    print("\nGranted but never called (remove, or say why it stays):")
    any_unused = False
    for function, lines in unused_grants(calls).items():
        for line in lines:
            any_unused = True
            print(f"  {function}: {line}")
    if not any_unused:
        print("  nothing")
    module_denied = sorted({f"{c['origin']}: {c['action']} on {c['resource']}"
                            for c in calls if c["kind"] == "module" and not c["allowed"]})
    if module_denied:
        print("\nCalls from unit tests of shared modules that no importing function may make "
              "(test keys, or a permission missing where the module is used):")
        for line in module_denied[:50]:
            print(f"  {line}")
    print("\nNot exercised by the tests: SageMakerTrainingRole (used by SageMaker's training "
          "container, not by our functions); the managed policies SAM attaches.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
