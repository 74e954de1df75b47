"""What IAM authorizes for one AWS API call: action(s), resource ARN(s) and condition keys.

botocore tells us the service and operation and the call's parameters; IAM evaluates one
(action, resource, context) triple per resource the operation touches. Most operations map
1:1 (`sqs:SendMessage` on the queue's ARN); the exceptions IAM documents are spelled out here
(S3's `ListObjectsV2` is `s3:ListBucket` with `s3:prefix`, a `GetObject` with a `VersionId` is
`s3:GetObjectVersion`, DynamoDB transactions need each item action, `CreateTrainingJob`
with a role also needs `iam:PassRole`, ...).

An operation this module cannot map yields an authorization with ``unmapped=True``; the IAM
check reports it so that whoever adds the call extends this module (small, one branch).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

ACCOUNT_ID = "123456789012"
# A stand-in for the 6 random characters AWS appends to a secret's name in its ARN.
SECRET_SUFFIX = "-AbC123"

ConditionValue = str | list[str]


@dataclass(frozen=True)
class Authorization:
    action: str
    resource: str
    context: Mapping[str, ConditionValue] = field(default_factory=dict)
    unmapped: bool = False

    def describe(self) -> str:
        extra = "".join(f" {k}={v!r}" for k, v in sorted(self.context.items()))
        return f"{self.action} on {self.resource}{extra}"


# botocore's signing names that differ from the IAM action prefix.
_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "execute-api"}

# Operations that need no permission at all.
_FREE = {("sts", "GetCallerIdentity")}

HashKeyOf = Callable[[str], str | None]


def _scalar(value: Any) -> str:
    """A DynamoDB attribute value (client shape {"S": "x"} or plain resource shape) as text."""
    if isinstance(value, Mapping) and len(value) == 1:
        (kind, inner), = value.items()
        if kind in ("S", "N", "B"):
            return str(inner)
    return str(value)


def _leading_key(item: Mapping[str, Any] | None, hash_key: str | None) -> list[str]:
    if not item:
        return []
    if hash_key and hash_key in item:
        return [_scalar(item[hash_key])]
    if len(item) == 1:
        return [_scalar(next(iter(item.values())))]
    return []


def _query_leading_key(params: Mapping[str, Any], hash_key: str | None) -> list[str]:
    """`pk = :v` (or `#n = :v`) in a KeyConditionExpression -> [value of :v]."""
    expression = str(params.get("KeyConditionExpression") or "")
    names = {k: v for k, v in (params.get("ExpressionAttributeNames") or {}).items()}
    values = params.get("ExpressionAttributeValues") or {}
    for left, placeholder in re.findall(r"([#\w]+)\s*=\s*(:\w+)", expression):
        attribute = names.get(left, left)
        if (hash_key is None or attribute == hash_key) and placeholder in values:
            return [_scalar(values[placeholder])]
    return []


def _dynamodb(
    op: str, params: Mapping[str, Any], region: str, hash_key_of: HashKeyOf
) -> list[Authorization]:
    def table_arn(name: str) -> str:
        if name.startswith("arn:"):
            return name
        return f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"

    def auth(action: str, table: str, keys: list[str]) -> Authorization:
        context: dict[str, ConditionValue] = {}
        if keys:
            context["dynamodb:LeadingKeys"] = keys
        return Authorization(f"dynamodb:{action}", table_arn(table), context)

    if op in ("BatchGetItem", "BatchWriteItem"):
        out = []
        for table, request in (params.get("RequestItems") or {}).items():
            hash_key = hash_key_of(table)
            keys: list[str] = []
            if op == "BatchGetItem":
                for key in request.get("Keys", []):
                    keys += _leading_key(key, hash_key)
            else:
                for entry in request:
                    item = (entry.get("PutRequest") or {}).get("Item") or (
                        entry.get("DeleteRequest") or {}).get("Key")
                    keys += _leading_key(item, hash_key)
            out.append(auth(op, table, keys))
        return out
    if op in ("TransactWriteItems", "TransactGetItems"):
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
        out = []
        for entry in params.get("TransactItems") or []:
            for kind, body in entry.items():
                table = str(body.get("TableName", ""))
                item = body.get("Item") or body.get("Key")
                out.append(auth(kinds[kind], table, _leading_key(item, hash_key_of(table))))
        return out
    table = str(params.get("TableName", ""))
    hash_key = hash_key_of(table)
    if op in ("GetItem", "DeleteItem", "UpdateItem"):
        return [auth(op, table, _leading_key(params.get("Key"), hash_key))]
    if op == "PutItem":
        return [auth(op, table, _leading_key(params.get("Item"), hash_key))]
    if op == "Query":
        return [auth(op, table, _query_leading_key(params, hash_key))]
    return [auth(op, table, [])]


_S3_BUCKET_ACTIONS = {
    "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions", "ListMultipartUploads":
    "ListBucketMultipartUploads",
}
_S3_OBJECT_ACTIONS = {
    "GetObject": "GetObject", "HeadObject": "GetObject", "PutObject": "PutObject",
    "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject", "AbortMultipartUpload": "AbortMultipartUpload",
    "DeleteObject": "DeleteObject", "GetObjectTagging": "GetObjectTagging",
    "PutObjectTagging": "PutObjectTagging", "GetObjectAttributes": "GetObjectAttributes",
}
_VERSIONED = {"GetObject": "GetObjectVersion", "DeleteObject": "DeleteObjectVersion",
              "GetObjectTagging": "GetObjectVersionTagging",
              "GetObjectAttributes": "GetObjectVersionAttributes"}


def _copy_source(source: Any) -> tuple[str, str, bool]:
    if isinstance(source, Mapping):
        return str(source["Bucket"]), str(source["Key"]), bool(source.get("VersionId"))
    text = unquote(str(source)).lstrip("/")
    path, _, query = text.partition("?")
    bucket, _, key = path.partition("/")
    return bucket, key, "versionId=" in query


def _s3(op: str, params: Mapping[str, Any]) -> list[Authorization]:
    bucket = str(params.get("Bucket", ""))
    if op in _S3_BUCKET_ACTIONS:
        context: dict[str, ConditionValue] = {}
        if "Prefix" in params:
            context["s3:prefix"] = str(params["Prefix"])
        return [Authorization(f"s3:{_S3_BUCKET_ACTIONS[op]}", f"arn:aws:s3:::{bucket}", context)]
    if op in _S3_OBJECT_ACTIONS:
        action = _S3_OBJECT_ACTIONS[op]
        if params.get("VersionId") and op in _VERSIONED:
            action = _VERSIONED[op]
        if op == "HeadObject" and params.get("VersionId"):
            action = "GetObjectVersion"
        return [Authorization(f"s3:{action}", f"arn:aws:s3:::{bucket}/{params.get('Key', '')}")]
    if op == "CopyObject":
        src_bucket, src_key, versioned = _copy_source(params.get("CopySource"))
        return [
            Authorization(f"s3:{'GetObjectVersion' if versioned else 'GetObject'}",
                          f"arn:aws:s3:::{src_bucket}/{src_key}"),
            Authorization("s3:PutObject", f"arn:aws:s3:::{bucket}/{params.get('Key', '')}"),
        ]
    if op == "DeleteObjects":
        return [
            Authorization(
                "s3:DeleteObjectVersion" if obj.get("VersionId") else "s3:DeleteObject",
                f"arn:aws:s3:::{bucket}/{obj.get('Key', '')}",
            )
            for obj in (params.get("Delete") or {}).get("Objects", [])
        ]
    if bucket and "Key" not in params:  # bucket configuration calls: s3:<Operation>
        return [Authorization(f"s3:{op}", f"arn:aws:s3:::{bucket}")]
    return [Authorization(f"s3:{op}", "*", unmapped=True)]


def _queue_arn(url_or_name: str, region: str) -> str:
    if url_or_name.startswith("arn:"):
        return url_or_name
    parsed = urlparse(url_or_name)
    parts = [p for p in parsed.path.split("/") if p]
    if len(parts) >= 2:
        account, name = parts[-2], parts[-1]
    else:
        account, name = ACCOUNT_ID, (parts[-1] if parts else url_or_name)
    return f"arn:aws:sqs:{region}:{account}:{name}"


_SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


def _sqs(op: str, params: Mapping[str, Any], region: str) -> list[Authorization]:
    target = str(params.get("QueueUrl") or params.get("QueueName") or "")
    return [Authorization(f"sqs:{_SQS_BATCH.get(op, op)}", _queue_arn(target, region))]


def _secret_arn(secret_id: str, region: str) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:{secret_id}{SECRET_SUFFIX}"


def _sagemaker(op: str, params: Mapping[str, Any], region: str) -> list[Authorization]:
    name = str(params.get("TrainingJobName", "")).lower()
    if not name:
        return [Authorization(f"sagemaker:{op}", "*", unmapped=True)]
    arn = f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:training-job/{name}"
    out = [Authorization(f"sagemaker:{op}", arn)]
    if op == "CreateTrainingJob":
        if params.get("Tags"):
            out.append(Authorization("sagemaker:AddTags", arn))
        if params.get("RoleArn"):
            out.append(Authorization("iam:PassRole", str(params["RoleArn"]),
                                     {"iam:PassedToService": "sagemaker.amazonaws.com"}))
    return out


def _glue(op: str, params: Mapping[str, Any], region: str) -> list[Authorization]:
    base = f"arn:aws:glue:{region}:{ACCOUNT_ID}"
    database = str(params.get("DatabaseName", ""))
    table = str(params.get("TableName") or params.get("Name") or "")
    resources = [f"{base}:catalog"]
    if database:
        resources.append(f"{base}:database/{database}")
        if table:
            resources.append(f"{base}:table/{database}/{table}")
    return [Authorization(f"glue:{op}", r) for r in resources]


# Athena authorizes GetQueryExecution / GetQueryResults / StopQueryExecution on the work group
# the query ran in, which the call does not name: the work group of the last query started.
_athena_last_work_group = ["primary"]


def _athena(op: str, params: Mapping[str, Any], region: str) -> list[Authorization]:
    if op == "StartQueryExecution":
        _athena_last_work_group[0] = str(params.get("WorkGroup") or "primary")
    group = str(params.get("WorkGroup") or params.get("Name") or (
        _athena_last_work_group[0] if "QueryExecutionId" in params else "primary"))
    arn = f"arn:aws:athena:{region}:{ACCOUNT_ID}:workgroup/{group}"
    return [Authorization(f"athena:{op}", arn)]


def authorizations(
    prefix: str,
    op: str,
    params: Mapping[str, Any],
    region: str,
    hash_key_of: HashKeyOf = lambda _table: None,
) -> list[Authorization]:
    """The (action, resource, condition keys) IAM evaluates for one API call."""
    prefix = _PREFIX.get(prefix, prefix)
    if (prefix, op) in _FREE:
        return []
    if prefix == "dynamodb":
        return _dynamodb(op, params, region, hash_key_of)
    if prefix == "s3":
        return _s3(op, params)
    if prefix == "sqs":
        return _sqs(op, params, region)
    if prefix == "secretsmanager" and params.get("SecretId"):
        return [Authorization(f"secretsmanager:{op}",
                              _secret_arn(str(params["SecretId"]), region))]
    if prefix == "sagemaker":
        return _sagemaker(op, params, region)
    if prefix == "firehose" and params.get("DeliveryStreamName"):
        return [Authorization(
            f"firehose:{op}",
            f"arn:aws:firehose:{region}:{ACCOUNT_ID}:deliverystream/{params['DeliveryStreamName']}",
        )]
    if prefix == "glue":
        return _glue(op, params, region)
    if prefix == "athena":
        return _athena(op, params, region)
    if prefix == "events" and op == "PutEvents":
        buses = {str(e.get("EventBusName") or "default") for e in params.get("Entries", [])}
        return [Authorization(
            "events:PutEvents",
            bus if bus.startswith("arn:") else
            f"arn:aws:events:{region}:{ACCOUNT_ID}:event-bus/{bus}")
            for bus in sorted(buses)]
    if prefix == "cloudwatch" and op == "PutMetricData":
        return [Authorization("cloudwatch:PutMetricData", "*",
                              {"cloudwatch:namespace": str(params.get("Namespace", ""))})]
    if prefix == "scheduler" and params.get("Name"):
        group = str(params.get("GroupName") or "default")
        return [Authorization(
            f"scheduler:{op}",
            f"arn:aws:scheduler:{region}:{ACCOUNT_ID}:schedule/{group}/{params['Name']}")]
    if prefix == "lambda" and op == "Invoke" and params.get("FunctionName"):
        name = str(params["FunctionName"])
        return [Authorization("lambda:InvokeFunction", name if name.startswith("arn:") else
                              f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}")]
    if prefix == "kms" and params.get("KeyId"):
        key = str(params["KeyId"])
        # kms:EncryptionContext:<key> per pair of the call's context, and the list of its keys
        # (absent when the call passes none, so a condition on them denies such a call).
        encryption_context = params.get("EncryptionContext") or {}
        kms_context: dict[str, ConditionValue] = {
            f"kms:EncryptionContext:{k}": str(v) for k, v in encryption_context.items()}
        if encryption_context:
            kms_context["kms:EncryptionContextKeys"] = sorted(encryption_context)
        return [Authorization(f"kms:{op}", key if key.startswith("arn:") else
                              f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/{key}", kms_context)]
    if prefix == "ecr" and params.get("repositoryName"):
        repository = params["repositoryName"]
        return [Authorization(
            f"ecr:{op}", f"arn:aws:ecr:{region}:{ACCOUNT_ID}:repository/{repository}")]
    return [Authorization(f"{prefix}:{op}", "*", unmapped=True)]


def actions_of(auths: Iterable[Authorization]) -> list[str]:
    return sorted({a.action for a in auths})
