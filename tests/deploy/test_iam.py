"""The IAM check itself: the evaluator's rules, and that a missing statement is caught with
the call named (the check of every other test is tests/fixtures/iam.py, autouse)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.deploy.test_events import World, check_sqs, world  # noqa: F401 - the fixture
from tests.fixtures import iam
from tests.fixtures.aws import resources
from tests.iam import calls, policy


def _st(action: Any, resource: Any, condition: dict[str, Any] | None = None,
        effect: str = "Allow") -> policy.Statement:
    return policy.Statement(
        sid="t", effect=effect,
        actions=tuple(action if isinstance(action, list) else [action]), not_actions=(),
        resources=tuple(resource if isinstance(resource, list) else [resource]),
        conditions=condition or {}, policy="inline:test")


def test_wildcards_in_actions_and_resources() -> None:
    st = [_st("s3:Get*", "arn:aws:s3:::b/models/*")]
    assert policy.evaluate(st, "s3:GetObject", "arn:aws:s3:::b/models/v1/model.onnx", {}).allowed
    assert policy.evaluate(st, "S3:getobject", "arn:aws:s3:::b/models/x", {}).allowed
    assert not policy.evaluate(st, "s3:PutObject", "arn:aws:s3:::b/models/x", {}).allowed
    assert not policy.evaluate(st, "s3:GetObject", "arn:aws:s3:::b/jobs/x", {}).allowed
    assert not policy.evaluate(st, "s3:GetObject", "arn:aws:s3:::bb/models/x", {}).allowed
    secret = [_st("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:r:1:secret:s/t-??????")]
    assert policy.evaluate(secret, "secretsmanager:GetSecretValue",
                           "arn:aws:secretsmanager:r:1:secret:s/t-AbC123", {}).allowed
    assert not policy.evaluate(secret, "secretsmanager:GetSecretValue",
                               "arn:aws:secretsmanager:r:1:secret:s/t-AbC1234", {}).allowed


def test_conditions_prefix_leading_keys_and_passed_service() -> None:
    listing = [_st("s3:ListBucket", "arn:aws:s3:::b", {"StringLike": {"s3:prefix": ["models/*"]}})]
    assert policy.evaluate(listing, "s3:ListBucket", "arn:aws:s3:::b",
                           {"s3:prefix": "models/v1/"}).allowed
    assert not policy.evaluate(listing, "s3:ListBucket", "arn:aws:s3:::b",
                               {"s3:prefix": "jobs/"}).allowed
    assert not policy.evaluate(listing, "s3:ListBucket", "arn:aws:s3:::b", {}).allowed
    keys = [_st("dynamodb:GetItem", "arn:t",
                {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["score#*"]}})]
    assert policy.evaluate(keys, "dynamodb:GetItem", "arn:t",
                           {"dynamodb:LeadingKeys": ["score#c#d#v"]}).allowed
    assert not policy.evaluate(keys, "dynamodb:GetItem", "arn:t",
                               {"dynamodb:LeadingKeys": ["score#a", "writeback#l#c"]}).allowed
    passed = [_st("iam:PassRole", "arn:r",
                  {"StringEquals": {"iam:PassedToService": ["sagemaker.amazonaws.com"]}})]
    assert policy.evaluate(passed, "iam:PassRole", "arn:r",
                           {"iam:PassedToService": "sagemaker.amazonaws.com"}).allowed
    assert not policy.evaluate(passed, "iam:PassRole", "arn:r",
                               {"iam:PassedToService": "ec2.amazonaws.com"}).allowed


def test_an_explicit_deny_wins_and_unknown_operators_are_refused() -> None:
    both = [_st("s3:*", "*"), _st("s3:DeleteObject", "*", effect="Deny")]
    assert policy.evaluate(both, "s3:GetObject", "arn:aws:s3:::b/k", {}).allowed
    assert not policy.evaluate(both, "s3:DeleteObject", "arn:aws:s3:::b/k", {}).allowed
    odd = [_st("s3:GetObject", "*", {"DateGreaterThan": {"aws:CurrentTime": ["2020"]}})]
    with pytest.raises(policy.UnsupportedPolicy):
        policy.evaluate(odd, "s3:GetObject", "arn:aws:s3:::b/k", {})


def test_calls_map_to_what_iam_evaluates() -> None:
    (listing,) = calls.authorizations("s3", "ListObjectsV2", {"Bucket": "b", "Prefix": "m/"}, "r")
    assert (listing.action, listing.resource, listing.context) == (
        "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "m/"})
    (version,) = calls.authorizations("s3", "GetObject",
                                      {"Bucket": "b", "Key": "k", "VersionId": "1"}, "r")
    assert version.action == "s3:GetObjectVersion"
    job = calls.authorizations("sagemaker", "CreateTrainingJob", {
        "TrainingJobName": "LeadScore-X", "RoleArn": "arn:aws:iam::1:role/t",
        "Tags": [{"Key": "a", "Value": "b"}]}, "r")
    assert [a.action for a in job] == ["sagemaker:CreateTrainingJob", "sagemaker:AddTags",
                                       "iam:PassRole"]
    assert job[0].resource.endswith(":training-job/leadscore-x")
    (put,) = calls.authorizations("dynamodb", "PutItem", {
        "TableName": "t", "Item": {"pk": {"S": "score#1"}, "body": {"S": "x"}}}, "r",
        lambda _t: "pk")
    assert put.context == {"dynamodb:LeadingKeys": ["score#1"]}
    (send,) = calls.authorizations(
        "sqs", "SendMessageBatch", {"QueueUrl": "https://sqs.r.amazonaws.com/1/q"}, "r")
    assert (send.action, send.resource) == ("sqs:SendMessage", "arn:aws:sqs:r:1:q")
    (odd,) = calls.authorizations("lambda", "Invoke", {"FunctionName": "f"}, "r")
    assert odd.unmapped


@pytest.mark.parametrize("function", sorted(resources("AWS::Serverless::Function")))
def test_every_role_resolves_to_statements_the_evaluator_understands(function: str) -> None:
    statements = iam.statements_of(function)
    assert statements
    for st in statements:
        for resource in st.resources:
            assert "${" not in resource and "Fn::" not in resource, (function, resource)


def _without_statement(function_role: str, sid: str) -> dict[str, Any]:
    transformed = copy.deepcopy(iam.transformed_template())
    for doc in transformed["Resources"][function_role]["Properties"]["Policies"]:
        statements = doc["PolicyDocument"]["Statement"]
        kept = [st for st in statements if st.get("Sid") != sid]
        assert len(kept) < len(statements) or not statements, sid
        doc["PolicyDocument"]["Statement"] = kept
    return transformed


@pytest.mark.iam_denials_expected
def test_removing_a_needed_statement_fails_with_the_call_named(
    world: World, request: pytest.FixtureRequest  # noqa: F811 - the imported fixture
) -> None:
    """The write-back's cold start lists the bundle's files: without ListModels it is denied."""
    with iam.checked_against(_without_statement("WritebackFunctionRole", "ListModels")):
        check_sqs(world, "sqs_writeback_batch.json", "WritebackFunction")
    denied = iam.RECORDER.violations(request.node.nodeid)
    described = [c.describe() for c in denied]
    assert any(c.functions == ["WritebackFunction"] and c.action == "s3:ListBucket"
               and c.context.get("s3:prefix", "").startswith("models/") for c in denied), described
    # With the template as it is, the same run is clean.
    since = iam.RECORDER.mark()
    check_sqs(world, "sqs_writeback_batch.json", "WritebackFunction")
    assert iam.RECORDER.violations(request.node.nodeid, since) == []
