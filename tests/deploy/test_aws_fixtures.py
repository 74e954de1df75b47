"""The moto resources really take their shape from template.yaml."""

from __future__ import annotations

import json
import time

import boto3

from tests.fixtures.aws import (
    TemplateResources,
    function_environment,
    load_template,
    resource_properties,
)


def test_cache_table_matches_template(template_resources: TemplateResources) -> None:
    ddb = boto3.client("dynamodb", region_name=template_resources.region)
    table = ddb.describe_table(TableName=template_resources.table)["Table"]
    props = resource_properties("CacheTable")
    assert table["KeySchema"] == props["KeySchema"]
    ttl = ddb.describe_time_to_live(TableName=template_resources.table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == props["TimeToLiveSpecification"][
        "AttributeName"
    ]
    # The table accepts the item shapes of ARCHITECTURE.md (pk string + expires_at).
    ddb.put_item(
        TableName=template_resources.table,
        Item={"pk": {"S": "webhook#abc"}, "expires_at": {"N": str(int(time.time()) + 60)}},
        ConditionExpression="attribute_not_exists(pk)",
    )


def test_writeback_queue_redrives_to_dlq(template_resources: TemplateResources) -> None:
    sqs = boto3.client("sqs", region_name=template_resources.region)
    attrs = sqs.get_queue_attributes(
        QueueUrl=template_resources.queue_url, AttributeNames=["All"]
    )["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == template_resources.dlq_arn
    template_props = resource_properties("WritebackQueue")
    assert int(redrive["maxReceiveCount"]) == template_props["RedrivePolicy"]["maxReceiveCount"]
    assert int(attrs["VisibilityTimeout"]) == template_props["VisibilityTimeout"]
    assert template_resources.queue_url.endswith("/lead-scoring-writeback")


def test_artifact_bucket_versioned_and_encrypted(template_resources: TemplateResources) -> None:
    s3 = boto3.client("s3", region_name=template_resources.region)
    assert s3.get_bucket_versioning(Bucket=template_resources.bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=template_resources.bucket)[
        "ServerSideEncryptionConfiguration"
    ]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert template_resources.bucket == "lead-scoring-artifacts-123456789012-us-east-1"


def test_loader_keeps_cloudformation_tags() -> None:
    env = function_environment("ScoreFunction")
    assert env["CACHE_TABLE"] == {"Ref": "CacheTable"}
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "LeadScoring"  # from Globals
    outputs = load_template()["Outputs"]
    assert outputs["ArtifactBucketName"]["Value"] == {"Ref": "ArtifactBucket"}
