"""The real SAM transform (aws-sam-translator, as CloudFormation runs it) accepts template.yaml,
and the API key wiring it produces is the one the issue asks for."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.aws import load_template
from tools import sam_transform

ROOT = Path(__file__).resolve().parents[2]

# Routes that need the x-api-key header (the usage plan's clients).
KEY_ROUTES = {("/score", "post"), ("/score/batch", "post"), ("/model", "get")}
# Routes open at API Gateway, each with the reason it is safe. HighLevel cannot send our key:
# its routes authenticate by signature or shared secret in the function.
OPEN_ROUTES = {
    ("/health", "get"): "reveals only whether a model is loaded and its version",
    ("/webhooks/ghl", "post"): "HighLevel webhooks: Ed25519/RSA signature or shared secret",
    ("/oauth/callback", "get"): "HighLevel's OAuth redirect of the installing user's browser: "
                                "the one-time code is exchanged with the app's client secret",
}


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return sam_transform.transformed(sam_transform.TEMPLATE)


def test_the_translator_is_the_one_the_deployment_pins() -> None:
    pins = (ROOT / "requirements" / "dev.txt").read_text()
    pinned = re.search(r"^aws-sam-translator==(\S+)$", pins, re.M)
    assert pinned, "requirements/dev.txt must pin aws-sam-translator"
    assert sam_transform.translator_version() == pinned.group(1)
    makefile = (ROOT / "Makefile").read_text()
    # make validate compares the SAM CLI's own translator with the same pin.
    assert "--expect-translator" in makefile and "aws-sam-translator==" in makefile


def test_packaging_replaces_every_local_artifact_path() -> None:
    packaged = sam_transform.packaged(load_template())
    for logical_id, res in packaged["Resources"].items():
        for prop in ("CodeUri", "ContentUri", "DefinitionUri"):
            value = (res.get("Properties") or {}).get(prop)
            if value is not None:
                assert str(value).startswith("s3://"), (logical_id, prop, value)
    assert load_template()["Resources"]["ScoreFunction"]["Properties"]["CodeUri"] == (
        "functions/score")  # the original is untouched


def test_template_passes_the_real_transform(transformed: dict[str, Any]) -> None:
    kinds = {res["Type"] for res in transformed["Resources"].values()}
    assert not any(k.startswith("AWS::Serverless::") for k in kinds)
    assert {"AWS::Lambda::Function", "AWS::ApiGateway::RestApi", "AWS::ApiGateway::ApiKey",
            "AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::UsagePlanKey",
            "AWS::IAM::Role"} <= kinds


def _old_wiring() -> dict[str, Any]:
    """The API key wiring before the fix: the API says false, the open routes say false."""
    template = copy.deepcopy(load_template())
    template["Resources"]["ScoreApi"]["Properties"]["Auth"]["ApiKeyRequired"] = False
    events = template["Resources"]["ScoreFunction"]["Properties"]["Events"]
    for name in ("Health", "GhlWebhook"):
        events[name]["Properties"]["Auth"] = {"ApiKeyRequired": False}
    for name in ("Score", "ScoreBatch", "Model"):
        events[name]["Properties"]["Auth"] = {"ApiKeyRequired": True}
    return template


def test_the_old_api_key_wiring_is_refused() -> None:
    with pytest.raises(sam_transform.InvalidTemplate) as refused:
        sam_transform.transform(sam_transform.packaged(_old_wiring()))
    assert any("Unable to set ApiKeyRequired [False]" in m for m in refused.value.messages)


def test_the_command_line_fails_on_an_invalid_document(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    bad = tmp_path / "template.yaml"
    bad.write_text(yaml.safe_dump(_old_wiring(), sort_keys=False))
    assert sam_transform.main([str(bad)]) == 1
    assert "ApiKeyRequired" in capsys.readouterr().err
    assert sam_transform.main([str(sam_transform.TEMPLATE), "--expect-translator", "0.0.0"]) == 1


def _routes(transformed: dict[str, Any]) -> dict[tuple[str, str], list[Any]]:
    api = transformed["Resources"]["ScoreApi"]["Properties"]["Body"]
    return {(path, verb): spec.get("security", [])
            for path, methods in api["paths"].items() for verb, spec in methods.items()}


def test_api_keys_on_the_scoring_routes_and_only_there(transformed: dict[str, Any]) -> None:
    routes = _routes(transformed)
    for route, security in routes.items():
        needs_key = {"api_key": []} in security
        if route in KEY_ROUTES:
            assert needs_key, f"{route} must require the API key"
        else:
            assert route in OPEN_ROUTES, f"{route} is open: add it to OPEN_ROUTES with a reason"
            assert not needs_key, f"{route} is called by HighLevel or monitors: no API key"
    assert KEY_ROUTES | set(OPEN_ROUTES) == set(routes)


def test_the_key_belongs_to_the_usage_plan_of_the_stage(transformed: dict[str, Any]) -> None:
    res = transformed["Resources"]
    plan = res["ScoreApiUsagePlan"]["Properties"]
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "ScoreApi"},
                                  "Stage": {"Ref": "ScoreApiProdStage"}}]
    assert set(plan["Throttle"]) == {"RateLimit", "BurstLimit"}
    link = res["ScoreApiUsagePlanKey"]["Properties"]
    assert link["KeyId"] == {"Ref": "ScoreApiApiKey"}
    assert link["UsagePlanId"] == {"Ref": "ScoreApiUsagePlan"}
