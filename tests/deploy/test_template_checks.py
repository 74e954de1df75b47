"""What CloudFormation receives (the transformed template) is checked, not only template.yaml:
no dependency cycle, cfn-lint and checkov findings fixed or accepted in template-skips.yaml
with a reason, and `make validate` / `make scan` run those checks on the transformed file."""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.aws import load_template
from tools import check_template, sam_transform

ROOT = Path(__file__).resolve().parents[2]
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def _references(node: Any, resources: set[str]) -> Iterator[str]:
    """Logical ids of resources a template fragment refers to (Ref, GetAtt, Sub)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str) and value in resources:
                yield value
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                if target in resources:
                    yield target
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                for name in re.findall(r"\$\{([^}!][^}]*)\}", str(text)):
                    if name.split(".")[0] in resources:
                        yield name.split(".")[0]
                if isinstance(value, list):
                    yield from _references(value[1], resources)
            else:
                yield from _references(value, resources)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item, resources)


def dependency_cycles(template: dict[str, Any]) -> list[list[str]]:
    """Strongly connected groups of more than one resource (or a resource on itself)."""
    res = template["Resources"]
    names = set(res)
    edges: dict[str, set[str]] = {}
    for name, body in res.items():
        depends = body.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else depends
        edges[name] = set(_references(body.get("Properties") or {}, names)) | set(depends)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges[node]:
                cycles.append(sorted(group))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    return cycles


def _with_the_old_redirect_uri() -> dict[str, Any]:
    """template.yaml as it was: the function told its own API's URL (a cycle through SAM's
    generated alias and API definition)."""
    template = copy.deepcopy(load_template())
    env = template["Resources"]["ScoreFunction"]["Properties"]["Environment"]["Variables"]
    env["GHL_OAUTH_REDIRECT_URI"] = {"Fn::Sub": "https://${ScoreApi}.execute-api.${AWS::Region}"
                                                ".${AWS::URLSuffix}/Prod/oauth/callback"}
    return template


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return sam_transform.transformed(sam_transform.TEMPLATE)


def test_what_cloudformation_receives_has_no_dependency_cycle(
    transformed: dict[str, Any]
) -> None:
    assert dependency_cycles(transformed) == []


def test_the_cycle_check_finds_the_old_redirect_uri_cycle() -> None:
    old = sam_transform.transform(sam_transform.packaged(_with_the_old_redirect_uri()))
    (cycle,) = dependency_cycles(old)
    assert {"ScoreApi", "ScoreFunction", "ScoreFunctionAliaslive"} <= set(cycle), cycle


def test_the_function_is_not_told_its_own_api_url() -> None:
    env = load_template()["Resources"]["ScoreFunction"]["Properties"]["Environment"]["Variables"]
    assert env["GHL_OAUTH_REDIRECT_URI"] == {"Ref": "GhlOAuthRedirectUrl"}


def _write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "transformed.json"
    path.write_text(json.dumps(document, indent=1, sort_keys=True))
    return path


@pytest.mark.slow
def test_cfn_lint_with_the_skip_list_passes_the_template_and_fails_a_cycle(
    tmp_path: Path, transformed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """What `make validate` runs (the same cfn-lint version: requirements/dev.txt pins it)."""
    assert CFN_LINT.exists(), "cfn-lint belongs in .venv (requirements/dev.txt)"
    good = _write(tmp_path, transformed)
    assert check_template.main([str(good), "--cfn-lint", str(CFN_LINT)]) == 0, (
        capsys.readouterr().err)
    old = sam_transform.transform(sam_transform.packaged(_with_the_old_redirect_uri()))
    bad = _write(tmp_path, old)
    assert check_template.main([str(bad), "--cfn-lint", str(CFN_LINT)]) == 1
    err = capsys.readouterr().err
    assert "FINDING cfn-lint E3004 on ScoreFunction" in err, err


def test_make_validate_and_make_scan_check_the_transformed_template() -> None:
    makefile = (ROOT / "Makefile").read_text()

    def recipe(target: str) -> str:
        match = re.search(rf"^{target}:.*\n((?:\t.*\n|#.*\n)+)", makefile, re.M)
        assert match, target
        return match.group(1)

    validate, scan = recipe("validate"), recipe("scan")
    assert "tools/sam_transform.py" in validate and "--out $(TRANSFORMED)" in validate
    assert "tools/check_template.py $(TRANSFORMED)" in validate
    assert "--cfn-lint" in validate and "--checkov" in validate
    assert "tools/check_template.py $(TRANSFORMED)" in scan and "--checkov" in scan
    assert "TRANSFORMED := .build/transformed.json" in makefile
    assert "-f template.yaml" not in scan  # checkov on the transformed template only
    dev = (ROOT / "requirements" / "dev.txt").read_text()
    tools_pin = re.search(r"^CFN_LINT_VERSION := (\S+)$", makefile, re.M)
    assert tools_pin and f"cfn-lint=={tools_pin.group(1)}" in dev


def test_skips_live_only_in_the_list() -> None:
    template = load_template()
    assert check_template.inline_skips(template) == [], "move them to template-skips.yaml"
    skips = check_template.load_skips()
    assert skips and all(len(s.reason.split()) >= 5 for s in skips)


CHECKOV_ANSWER = {  # the shape of `checkov -o json --quiet` (3.3.30), cut to what is read
    "check_type": "cloudformation",
    "results": {"failed_checks": [
        {"check_id": "CKV_AWS_76", "check_name": "Ensure API Gateway has Access Logging enabled",
         "resource": "AWS::ApiGateway::Stage.ScoreApiProdStage"},
        {"check_id": "CKV_AWS_117", "check_name": "Ensure that AWS Lambda function is "
         "configured inside a VPC", "resource": "AWS::Lambda::Function.NewFunction"},
    ]},
    "summary": {"failed": 2},
}


def test_findings_not_on_the_list_fail_and_stale_skips_are_named(
    tmp_path: Path
) -> None:
    findings = check_template.checkov_findings(json.dumps(CHECKOV_ANSWER))
    assert [(f.id, f.resource) for f in findings] == [("CKV_AWS_76", "ScoreApiProdStage"),
                                                      ("CKV_AWS_117", "NewFunction")]
    skips = [
        check_template.Skip("checkov", "CKV_AWS_76", ("ScoreApiProdStage",), "a reason"),
        check_template.Skip("checkov", "CKV_AWS_18", ("ArtifactBucket",), "a reason"),
        check_template.Skip("cfn-lint", "W1020", ("Layer*",), "a reason"),
    ]
    unlisted, stale = check_template.judge(findings, skips, ["checkov"])
    assert [f.resource for f in unlisted] == ["NewFunction"]
    assert [s.id for s in stale] == ["CKV_AWS_18"]  # cfn-lint did not run: not judged
    lint = check_template.cfn_lint_findings(json.dumps([
        {"Rule": {"Id": "W1020"}, "Location": {"Path": ["Resources", "Layer0f2a", "Properties"]},
         "Message": "m"},
        {"Rule": {"Id": "W2001"}, "Location": {"Path": ["Parameters", "ApiRateLimit"]},
         "Message": "m"}]))
    assert [(f.id, f.resource) for f in lint] == [("W1020", "Layer0f2a"),
                                                  ("W2001", "Parameters/ApiRateLimit")]
    assert check_template.judge(lint, skips, ["cfn-lint"])[0] == lint[1:]
    bad = tmp_path / "skips.yaml"
    bad.write_text("- {tool: checkov, id: CKV_AWS_1, resources: [X], reason: ok}\n")
    with pytest.raises(check_template.CheckError, match="reason in words"):
        check_template.load_skips(bad)
