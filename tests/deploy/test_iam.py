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
    (invoke,) = calls.authorizations("lambda", "Invoke", {"FunctionName": "f"}, "r")
    assert (invoke.action, invoke.resource) == ("lambda:InvokeFunction",
                                                "arn:aws:lambda:r:123456789012:function:f")
    (odd,) = calls.authorizations("lambda", "ListFunctions", {}, "r")
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


# -- the least-privilege conditions: a call outside each condition is denied --------------


def _arn(logical_id: str) -> str:
    return iam._resolver().get_att(logical_id, "Arn")[0]


def test_the_backfill_role_touches_only_its_own_cache_table_items() -> None:
    statements = iam.statements_of("BackfillFunction")
    table = _arn("CacheTable")

    def allowed(action: str, keys: list[str]) -> bool:
        return policy.evaluate(statements, action, table,
                               {"dynamodb:LeadingKeys": keys}).allowed

    assert allowed("dynamodb:PutItem", ["backfill#loc#job"])
    assert allowed("dynamodb:GetItem", ["backfill#loc#job"])
    assert allowed("dynamodb:BatchGetItem", ["engagement#loc#c1", "engagement#loc#c2"])
    for foreign in ("webhook#abc", "writeback#loc#c1", "ratelimit#loc", "score#c#d#v",
                    "inputs#loc#c1"):
        assert not allowed("dynamodb:PutItem", [foreign]), foreign
        assert not allowed("dynamodb:GetItem", [foreign]), foreign
    assert not allowed("dynamodb:BatchGetItem", ["engagement#loc#c1", "writeback#loc#c1"])


@pytest.mark.parametrize(("function", "own", "foreign"), [
    ("ExportFunction", ["loop/snapshots/", "training-data/auto/"],
     ["", "models/", "training-data/", "ghl/parked/", "jobs/", "evaluation/"]),
    ("MonitorFunction", ["loop/outcomes/", "models/v1/", "monitoring/health/"],
     ["", "training-data/", "ghl/parked/", "jobs/", "evaluation/"]),
])
def test_the_monitor_and_export_roles_list_only_their_prefixes(
    function: str, own: list[str], foreign: list[str]
) -> None:
    statements = iam.statements_of(function)
    bucket = _arn("ArtifactBucket")
    for prefix in own:
        assert policy.evaluate(statements, "s3:ListBucket", bucket,
                               {"s3:prefix": prefix}).allowed, prefix
    for prefix in foreign:
        assert not policy.evaluate(statements, "s3:ListBucket", bucket,
                                   {"s3:prefix": prefix}).allowed, prefix
    # no prefix = the whole bucket
    assert not policy.evaluate(statements, "s3:ListBucket", bucket, {}).allowed
    for action in ("s3:ListBucketMultipartUploads", "s3:ListBucketVersions"):
        assert not policy.evaluate(statements, action, bucket, {}).allowed, action


def _training_role(image: str) -> list[policy.Statement]:
    from tests.fixtures import aws as template_aws

    resolver = policy.Resolver(iam.transformed_template(), template_aws.PSEUDO,
                               template_aws.physical_names,
                               parameters={"TrainingImageUri": image})
    return policy.role_statements(iam.transformed_template(), "SageMakerTrainingRole", resolver)


@pytest.mark.parametrize(("image", "repository"), [
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/lead-training:2026-12", "lead-training"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/lead-training@sha256:ab12", "lead-training"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/lead-training", "lead-training"),
])
def test_the_training_role_pulls_only_the_training_images_repository(
    image: str, repository: str
) -> None:
    statements = _training_role(image)
    repo_arn = "arn:aws:ecr:us-east-1:123456789012:repository/{}"
    for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                   "ecr:BatchCheckLayerAvailability"):
        assert policy.evaluate(statements, action, repo_arn.format(repository), {}).allowed
        for other in ("other-repo", f"{repository}-2", "lead"):
            assert not policy.evaluate(statements, action, repo_arn.format(other), {}).allowed
    # the default image is AWS-owned: no ECR permission at all
    default = _training_role("")
    assert not any(a.startswith("ecr:") for st in default for a in st.actions)


@pytest.mark.parametrize("function", ["ScoreFunction", "WritebackFunction", "BackfillFunction"])
def test_the_token_key_is_used_only_with_an_installations_encryption_context(
    function: str
) -> None:
    statements = iam.statements_of(function)
    key = _arn("TokenKey")
    for action in ("kms:Encrypt", "kms:Decrypt"):
        for pk in ("location#loc1", "company#co1"):
            assert policy.evaluate(statements, action, key,
                                   {"kms:EncryptionContext:ghl_key": pk}).allowed
        assert not policy.evaluate(statements, action, key, {}).allowed
        assert not policy.evaluate(statements, action, key,
                                   {"kms:EncryptionContext:ghl_key": "webhook#x"}).allowed
        assert not policy.evaluate(statements, action, key,
                                   {"kms:EncryptionContext:other": "location#loc1"}).allowed


def test_a_kms_call_carries_its_encryption_context_to_the_check() -> None:
    (enc,) = calls.authorizations("kms", "Encrypt", {
        "KeyId": "k1", "Plaintext": b"x", "EncryptionContext": {"ghl_key": "location#a"}}, "r")
    assert enc.context == {"kms:EncryptionContext:ghl_key": "location#a",
                           "kms:EncryptionContextKeys": ["ghl_key"]}
    (bare,) = calls.authorizations("kms", "Decrypt", {"KeyId": "k1", "CiphertextBlob": b"x"}, "r")
    assert bare.context == {}


def test_the_export_role_reads_a_jobs_training_part_and_split_record_never_its_gate_part(
) -> None:
    # the history an export carries is the champion's training part, found through its
    # split record; the gate part and the held set stay unreadable to it
    statements = iam.statements_of("ExportFunction")
    bucket = _arn("ArtifactBucket")
    job = "leadscore-leads-jsonl-0123456789ab"
    for key in (f"evaluation/{job}/split.json", f"jobs/{job}/input/train.jsonl",
                f"jobs/{job}/input/train.csv"):
        assert policy.evaluate(statements, "s3:GetObject", f"{bucket}/{key}", {}).allowed, key
    for key in (f"evaluation/{job}/gate.jsonl", f"evaluation/{job}/gate.csv",
                "evaluation/holdout/leads.jsonl",
                f"jobs/{job}/output/model.tar.gz"):
        assert not policy.evaluate(statements, "s3:GetObject", f"{bucket}/{key}", {}).allowed, \
            key
