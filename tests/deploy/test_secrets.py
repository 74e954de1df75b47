"""No secret in a plain environment variable: the workflow secret lives in Secrets Manager,
is read with Powertools Parameters (cached), and every "no secrets" checkov skip is true."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from leadscore.settings import ScoreSettings

from tests.fixtures import aws as template_aws
from tests.fixtures import iam
from tests.fixtures.ghl import api_event
from tests.fixtures.scoring import load_event
from tools.lambda_context import lambda_context

SECRET_LIKE = re.compile(r"SECRET|TOKEN|PASSWORD|PASSPHRASE|PRIVATE|CREDENTIAL", re.I)
REFERENCE = re.compile(r"_(ARN|ID|NAME)$")  # a pointer to a secret, not its value


def _secret_variables(function: str) -> list[str]:
    env = template_aws.function_environment(function)
    return [name for name in env if SECRET_LIKE.search(name) and not REFERENCE.search(name)]


@pytest.mark.parametrize("function", sorted(template_aws.resources("AWS::Serverless::Function")))
def test_no_function_environment_holds_a_secret(function: str) -> None:
    assert _secret_variables(function) == []
    template = template_aws.load_template()
    no_echo = {name for name, p in template["Parameters"].items() if p.get("NoEcho")}
    env = template_aws.function_environment(function)
    assert not [k for k, v in env.items() if v in ({"Ref": p} for p in no_echo)]


def test_every_no_secrets_skip_is_true() -> None:
    from tools.check_template import load_skips

    skipped = 0
    for skip in load_skips():  # template-skips.yaml, the one list of accepted findings
        if skip.id == "CKV_AWS_173":  # "Lambda environment variables not encrypted"
            assert "no secrets" in skip.reason
            for name in skip.resources:
                skipped += 1
                assert _secret_variables(name) == [], name
    assert skipped >= 4


@pytest.fixture
def workflow_world(template_resources: Any, trained_bundle: Path, score_app: Any,
                   tmp_path: Path) -> dict[str, Any]:
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # type: ignore[no-untyped-call]
    secrets = boto3.client("secretsmanager", region_name=template_aws.REGION)
    arn = secrets.create_secret(Name=template_aws.template_name("GhlWorkflowSecret"),
                                SecretString="s3cr3t-from-secrets-manager")["ARN"]
    settings = replace(ScoreSettings(), model_uri=trained_bundle.as_uri(),
                       model_cache_dir=str(tmp_path), ghl_webhook_secret_arn=arn,
                       writeback_queue_url=template_resources.queue_url,
                       cache_table=template_resources.table,
                       webhook_dedup_table=template_resources.table)
    score_app.set_container(score_app.build_container(settings))
    return {"arn": arn, "secrets": secrets}


def _workflow_call(score_app: Any, secret: str, contact: str) -> int:
    body = (f'{{"contact_id": "{contact}", "location": {{"id": "loc-1"}}, '
            f'"customData": {{"list_price": "800000"}}}}').encode()
    answer = score_app.app.resolve(api_event(body, {"x-leadscore-secret": secret}), None)
    return int(answer["statusCode"])


def _secret_reads(request: pytest.FixtureRequest) -> int:
    return sum(1 for c in iam.RECORDER.calls if c.test == request.node.nodeid
               and c.action == "secretsmanager:GetSecretValue")


def test_the_workflow_secret_is_read_from_secrets_manager_once_and_cached(
    workflow_world: dict[str, Any], score_app: Any, request: pytest.FixtureRequest,
) -> None:
    assert _workflow_call(score_app, "s3cr3t-from-secrets-manager", "c-1") == 200
    assert _workflow_call(score_app, "s3cr3t-from-secrets-manager", "c-2") == 200
    assert _workflow_call(score_app, "wrong", "c-3") == 401
    assert _secret_reads(request) == 1  # Powertools' cache (max age 300 s)
    # Signed webhooks never read it; the health route neither.
    assert score_app.lambda_handler(load_event("health_get"), lambda_context())["statusCode"] == 200
    assert _secret_reads(request) == 1


def test_secrets_manager_down_means_429_not_unauthorized(
    workflow_world: dict[str, Any], score_app: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aws_lambda_powertools.utilities import parameters

    workflow_world["secrets"].delete_secret(SecretId=workflow_world["arn"],
                                            ForceDeleteWithoutRecovery=True)
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    # 429 is the one answer HighLevel retries (ghl/answers.py); a 503 lost the delivery
    assert _workflow_call(score_app, "s3cr3t-from-secrets-manager", "c-4") == 429
