"""API Gateway's own 5xx answers reach HighLevel as 429, in the template CloudFormation sees.

HighLevel retries only a 429. The function never answers a delivery with a 5xx
(leadscore.ghl.answers), but API Gateway answers on its own when the integration times out
(29 s), the function fails or Lambda refuses the call. Gateway responses are set per API,
not per route; the transformed template must carry them in the API that serves the webhook
route, in the body the deployment is made from (so a change redeploys the stage).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from tests.fixtures.aws import load_template
from tools import sam_transform

WEBHOOK = "/webhooks/ghl"


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return sam_transform.transformed(sam_transform.TEMPLATE)


def _webhook_api(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    apis = [(name, res) for name, res in template["Resources"].items()
            if res["Type"] == "AWS::ApiGateway::RestApi"
            and WEBHOOK in res["Properties"].get("Body", {}).get("paths", {})]
    assert len(apis) == 1, [name for name, _ in apis]
    return apis[0]


def test_every_gateway_5xx_of_the_webhook_api_is_a_429(transformed: dict[str, Any]) -> None:
    from leadscore.ghl.answers import RETRY_AFTER_SECONDS

    _, api = _webhook_api(transformed)
    responses = api["Properties"]["Body"].get("x-amazon-apigateway-gateway-responses", {})
    fallback = responses.get("DEFAULT_5XX")
    assert fallback is not None, "DEFAULT_5XX (the fallback of every gateway 5xx) is not set"
    assert fallback["statusCode"] == "429"
    assert fallback["responseParameters"]["gatewayresponse.header.Retry-After"] == (
        f"'{RETRY_AFTER_SECONDS}'")
    # no specific 5xx type set on its own with another status
    for kind in ("INTEGRATION_TIMEOUT", "INTEGRATION_FAILURE", "API_CONFIGURATION_ERROR",
                 "AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"):
        assert responses.get(kind, fallback)["statusCode"] == "429", kind
    # the body is JSON once API Gateway fills in its variables
    body = fallback["responseTemplates"]["application/json"]
    filled = re.sub(r"\$context\.[A-Za-z.]+", "x", body)
    assert json.loads(filled)["error"] == "try again later"


def test_a_change_of_gateway_responses_redeploys_the_stage(transformed: dict[str, Any]) -> None:
    """Gateway responses take effect only with a new deployment. In the API's body (SAM's
    GatewayResponses) they change the deployment's logical id; a separate
    AWS::ApiGateway::GatewayResponse resource would not, and would wait for an unrelated
    change to deploy."""
    def deployments(template: dict[str, Any]) -> set[str]:
        return {name for name, res in template["Resources"].items()
                if res["Type"] == "AWS::ApiGateway::Deployment"}

    without = copy.deepcopy(load_template())
    del without["Resources"]["ScoreApi"]["Properties"]["GatewayResponses"]
    before = sam_transform.transform(sam_transform.packaged(without))
    assert deployments(before) and deployments(before).isdisjoint(deployments(transformed))
