"""Every event in events/ through the handler the template routes it to, as `sam local invoke`
would run it: functions/<fn>/app.py imported as a top-level module with its directory as the
code root, the environment the template gives that function (resources resolved to moto ones),
and `lambda_handler(event, context)`.

The event -> function mapping is discovered from template.yaml (API path + method, S3, SQS,
EventBridge), not written here; every event file must have an expectation below.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import sys
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from tests.fixtures.aws import (
    ACCOUNT_ID,
    PSEUDO,
    REGION,
    STACK_NAME,
    TemplateResources,
    declare,
    function_environment,
    installations_table,
    load_template,
    resources,
    role_arn,
    template_name,
)
from tests.fixtures.fake_highlevel import CLIENT_ID, CLIENT_SECRET
from tests.fixtures.ghl import GHL_TOKEN, FakeHighLevel, KeyPair
from tools.lambda_context import lambda_context

ROOT = Path(__file__).resolve().parents[2]
EVENTS = sorted((ROOT / "events").glob("*.json"))
CLASSES = {"hot", "warm", "lukewarm", "cold"}


# ------------------------------------------------------------------ event -> function (template)


def function_for(event: dict[str, Any]) -> str:
    """The logical id of the function template.yaml wires to this event."""
    functions = resources("AWS::Serverless::Function")

    def with_event(kind: str, match: Callable[[dict[str, Any]], bool]) -> str:
        found = [
            name for name, res in functions.items()
            for ev in res["Properties"].get("Events", {}).values()
            if ev["Type"] == kind and match(ev.get("Properties", {}))
        ]
        assert len(found) >= 1, f"no {kind} event in template.yaml matches"
        assert len(set(found)) == 1, f"several functions match: {found}"
        return found[0]

    if "httpMethod" in event:
        return with_event("Api", lambda p: p["Path"] == event["resource"]
                          and p["Method"].upper() == event["httpMethod"])
    if event.get("source") == "aws.scheduler":  # EventBridge Scheduler passes its Input
        return with_event("ScheduleV2", lambda p: json.loads(p.get("Input", "{}")) == event)
    if "location_id" in event and "job_id" in event:  # tools/backfill.py invokes it directly
        assert "BackfillFunction" in functions
        return "BackfillFunction"
    if "detail-type" in event:
        return with_event("EventBridgeRule", lambda p: event["detail-type"]
                          in p["Pattern"]["detail-type"] and event["source"]
                          in p["Pattern"]["source"])
    record = event["Records"][0]
    if record.get("eventSource") == "aws:s3":
        key = record["s3"]["object"]["key"]

        def s3_match(p: dict[str, Any]) -> bool:
            rules = {r["Name"]: r["Value"] for r in p["Filter"]["S3Key"]["Rules"]}
            return bool(key.startswith(rules.get("prefix", ""))
                        and key.endswith(rules.get("suffix", "")))

        return with_event("S3", s3_match)
    if record.get("eventSource") == "aws:sqs":
        queue_name = record["eventSourceARN"].rsplit(":", 1)[1]

        def sqs_match(p: dict[str, Any]) -> bool:
            logical = p["Queue"]["Fn::GetAtt"][0]
            declared = resources()[logical]["Properties"]["QueueName"]["Fn::Sub"]
            return bool(declared.replace("${AWS::StackName}", STACK_NAME) == queue_name)

        return with_event("SQS", sqs_match)
    raise AssertionError("unknown event shape")


# ------------------------------------------------------------------ environment (template)


def _condition(name: str, params: dict[str, Any]) -> bool:
    cond = load_template()["Conditions"][name]
    inner = cond["Fn::Not"][0]["Fn::Equals"]
    left = params[inner[0]["Ref"]]
    return str(left) != str(inner[1])


def resolve(value: Any, params: dict[str, Any], names: dict[str, str]) -> Any:
    """Resolve the intrinsics template.yaml uses in environment variables."""
    if not isinstance(value, dict):
        return value
    (fn, arg), = value.items()
    if fn == "Ref":
        if arg in params:
            return params[arg]
        return names.get(arg, PSEUDO.get(arg, arg))
    if fn == "Fn::GetAtt":
        return names[f"{arg[0]}.{arg[1]}"]
    if fn == "Fn::If":
        branch = arg[1] if _condition(arg[0], params) else arg[2]
        return resolve(branch, params, names)
    if fn == "Fn::FindInMap":
        mapping, key, attr = (resolve(a, params, names) for a in arg)
        return load_template()["Mappings"][mapping][key][attr]
    if fn == "Fn::Sub":
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        values = {**PSEUDO, **names, **{k: str(v) for k, v in params.items()}}
        values.update({k: str(resolve(v, params, names)) for k, v in local.items()})
        for k, v in values.items():
            text = text.replace("${" + k + "}", v)
        assert "${" not in text, text
        return text
    raise AssertionError(f"unsupported intrinsic {fn}")


def template_env(logical_id: str, params: dict[str, Any], names: dict[str, str]) -> dict[str, str]:
    return {k: str(resolve(v, params, names))
            for k, v in function_environment(logical_id).items()}


# ------------------------------------------------------------------ sam local invoke


def load_handler_module(logical_id: str) -> ModuleType:
    code_uri = ROOT / resources()[logical_id]["Properties"]["CodeUri"]
    handler = load_template()["Globals"]["Function"]["Handler"]
    module_name, _ = handler.split(".")
    path = code_uri / f"{module_name}.py"
    for name in [m for m in sys.modules if m in ("app", "ghl_routes")]:
        del sys.modules[name]
    sys.path.insert(0, str(code_uri))
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(code_uri))
    return module


# ------------------------------------------------------------------ world


@dataclass
class World:
    res: TemplateResources
    bundle: Path
    training_csv: Path
    ed25519: KeyPair
    fake: FakeHighLevel
    monkeypatch: pytest.MonkeyPatch
    installations_table: str = ""
    token_key_arn: str = ""
    tmp: Path = Path(".")
    workflow_secret_arn: str = ""

    def names(self) -> dict[str, str]:
        return {
            "ArtifactBucket": self.res.bucket,
            "ArtifactBucket.Arn": f"arn:aws:s3:::{self.res.bucket}",
            "CacheTable": self.res.table,
            "WritebackQueue": self.res.queue_url,
            "InstallationsTable": self.installations_table,
            "ScoreApi": "a1b2c3d4e5",
            "TokenKey.Arn": self.token_key_arn,
            "SageMakerTrainingRole.Arn": role_arn("SageMakerTrainingRole"),
            "GhlWorkflowSecret": self.workflow_secret_arn,
            "LoopRecordsStream": template_name("LoopRecordsStream"),
            "LoopWorkGroup": template_name("LoopWorkGroup"),
        }

    def params(self, **overrides: Any) -> dict[str, Any]:
        params = {k: v.get("Default", "")
                  for k, v in load_template()["Parameters"].items()}
        params.update(overrides)
        return params

    def invoke(self, logical_id: str, event: dict[str, Any],
               extra_env: dict[str, str] | None = None, **param_overrides: Any) -> Any:
        env = template_env(logical_id, self.params(**param_overrides), self.names())
        env.update(extra_env or {})
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
        # A new container's empty /tmp: the bundle is fetched (ListBucket + GetObject) again.
        env["MODEL_CACHE_DIR"] = str(self.tmp / "model-cache" / uuid.uuid4().hex)
        # The deployed wait for a first load (10 s) is a Lambda budget; a test machine running
        # another worker's training beside this one can take longer, and this test is about
        # the event's path through its handler, not that budget (tests/scoring owns it).
        env["MODEL_FIRST_LOAD_WAIT_SECONDS"] = "120"
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)
        from leadscore.adapters import reset_clients

        reset_clients()
        module = load_handler_module(logical_id)
        return module.lambda_handler(event, lambda_context(f"{STACK_NAME}-{logical_id}"))


@pytest.fixture
def world(
    template_resources: TemplateResources,
    trained_bundle: Path,
    small_training_csv: Path,
    ghl_ed25519: KeyPair,
    fake_highlevel: FakeHighLevel,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[World]:
    s3 = boto3.client("s3", region_name=REGION)
    manifest = json.loads((trained_bundle / "manifest.json").read_text())
    version = manifest["model_version"]
    for path in sorted(trained_bundle.iterdir()):
        if path.is_file():
            s3.upload_file(str(path), template_resources.bucket, f"models/{version}/{path.name}")
    pointer = {"version": version, "prefix": f"models/{version}/", "sha256": manifest["sha256"],
               "promoted_at": "2026-02-05T10:00:00Z", "metrics": manifest.get("metrics", {}),
               "previous": []}
    s3.put_object(Bucket=template_resources.bucket, Key="models/champion.json",
                  Body=json.dumps(pointer).encode())
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secrets.create_secret(Name=f"{STACK_NAME}/ghl-token", SecretString=GHL_TOKEN)
    workflow_secret_arn = secrets.create_secret(
        Name=template_name("GhlWorkflowSecret"), SecretString="generated-at-deploy")["ARN"]
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # type: ignore[no-untyped-call]
    installs = installations_table(boto3.client("dynamodb", region_name=REGION))
    key_arn = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    declare("TokenKey", key_arn.rsplit("/", 1)[1])  # the IAM check resolves the key's ARN
    for name in list(sys.modules):
        if name in ("app", "ghl_routes"):
            del sys.modules[name]
    yield World(template_resources, trained_bundle, small_training_csv, ghl_ed25519,
                fake_highlevel, monkeypatch, installs, key_arn, tmp_path,
                workflow_secret_arn)
    for name in list(sys.modules):
        if name in ("app", "ghl_routes"):
            del sys.modules[name]
    from leadscore.adapters import reset_clients

    reset_clients()


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "events" / name).read_text())
    return data


def api_answer(answer: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert set(answer) >= {"statusCode", "body"}
    body = answer["body"]
    if answer.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return int(answer["statusCode"]), json.loads(body)


def assert_lead_score(body: dict[str, Any], contact_id: str, explained: bool) -> None:
    assert body["contact_id"] == contact_id
    assert 0.0 <= body["predicted_score"] <= 1.0
    lo, hi = body["confidence_interval"]
    assert 0.0 <= lo <= hi <= 1.0
    assert body["predicted_class"] in CLASSES
    assert body["source"] == "ensemble"
    assert len(body["feature_values"]) == 20
    assert (len(body["feature_contributions"]) == 20) is explained


# ------------------------------------------------------------------ expectations per event


def check_api(world: World, name: str, fn: str) -> None:
    event = load(name)
    extra: dict[str, str] = {}
    if "x-ghl-signature" in event["headers"]:
        # A marketplace webhook as HighLevel sends it now: fresh timestamp, signed raw body.
        payload = json.loads(event["body"])
        payload["timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        event["body"] = json.dumps(payload)
        event["headers"]["x-ghl-signature"] = world.ed25519.sign(event["body"].encode())
        extra["GHL_PUBLIC_KEY_ED25519"] = world.ed25519.public_pem
    overrides: dict[str, Any] = {}
    if "x-leadscore-secret" in event["headers"]:
        # The stack's generated workflow secret, as the operator typed it into HighLevel.
        boto3.client("secretsmanager", region_name=REGION).put_secret_value(
            SecretId=world.names()["GhlWorkflowSecret"],
            SecretString=event["headers"]["x-leadscore-secret"])
    if name.startswith("ghl_webhook") or name.startswith("ghl_workflow"):
        # the single sub-account setup: the event's location is the stack's location
        request = json.loads(event["body"])
        overrides["GhlLocationId"] = request.get("locationId") or request["location"]["id"]
    if name == "ghl_oauth_callback.json":
        # HighLevel redirects the installing user here with a fresh authorization code
        location = world.fake.add_location()
        event["queryStringParameters"] = {"code": world.fake.authorize(location_id=location.id)}
        arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"{STACK_NAME}/ghl-oauth",
            SecretString=json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        )["ARN"]
        overrides["GhlOAuthSecretArn"] = arn
        extra["GHL_API_BASE"] = world.fake.base_url
    status, body = api_answer(world.invoke(fn, event, extra, **overrides))
    request = json.loads(event["body"]) if event["body"] else {}
    if name == "score_invalid.json":
        assert status == 400
        paths = {e["path"] for e in body["errors"]}
        assert {"property_data.list_price", "property_data.days_on_market",
                "property_data.location.school_rating", "market_data.comparables[1].sale_price",
                "psychology_profile"} <= paths, paths
    elif name in ("score_request.json", "score_request_vector.json"):
        assert status == 200, body
        assert_lead_score(body, request["contact_id"], explained=True)
    elif name == "score_request_noexplain.json":
        assert status == 200, body
        assert_lead_score(body, request["contact_id"], explained=False)
    elif name == "score_batch.json":
        assert status == 200, body
        assert body["errors"] == []
        assert [r["contact_id"] for r in body["results"]] == [
            lead["contact_id"] for lead in request["leads"]]
        for result, lead in zip(body["results"], request["leads"], strict=True):
            assert_lead_score(result, lead["contact_id"], explained=True)
    elif name in ("score_request_fields.json", "score_batch_fields.json"):
        # A team's own columns: this world serves the real-estate default, which names
        # the form it cannot take (tests/scoring/test_fields.py drives both events against a
        # custom-schema bundle).
        if name == "score_request_fields.json":
            assert status == 400, body
            assert [e["path"] for e in body["errors"]] == ["fields"]
        else:  # a batch answers 200 with each lead's problem
            assert status == 200, body
            assert body["results"] == []
            assert [[e["path"] for e in lead["errors"]] for lead in body["errors"]] == [
                ["fields"]] * len(request["leads"])
    elif name in ("model_get.json", "health_get.json"):
        assert status == 200, body
        manifest = json.loads((world.bundle / "manifest.json").read_text())
        assert body["model_version"] == manifest["model_version"]
        assert body["loaded"] is True
    elif name == "ghl_oauth_callback.json":
        assert status == 200, body
        assert body["status"] == "installed" and len(body["locations"]) == 1
        item = boto3.client("dynamodb", region_name=REGION).get_item(
            TableName=world.installations_table,
            Key={"pk": {"S": f"location#{body['locations'][0]}"}})["Item"]
        assert item["enabled"]["BOOL"] is True and "tokens" in item
    elif name.startswith("ghl_"):
        assert status == 200, body
        assert body["status"] == "scored", body
        sqs = boto3.client("sqs", region_name=REGION)
        messages = sqs.receive_message(QueueUrl=world.res.queue_url,
                                       MaxNumberOfMessages=10).get("Messages", [])
        assert len(messages) == 1
        queued = json.loads(messages[0]["Body"])
        assert queued["contact_id"] == "lead_12345"
        assert queued["predicted_class"] in CLASSES
    else:
        raise AssertionError(f"no expectation for API event {name}")


def check_s3(world: World, name: str, fn: str) -> None:
    event = load(name)
    record = event["Records"][0]["s3"]
    assert record["bucket"]["name"] == world.res.bucket  # consistent with the template's name
    s3 = boto3.client("s3", region_name=REGION)
    csv = world.training_csv.read_bytes()
    put = s3.put_object(Bucket=world.res.bucket, Key=record["object"]["key"], Body=csv)
    record["object"]["versionId"] = put["VersionId"]
    record["object"]["size"] = len(csv)
    world.invoke(fn, event)
    jobs = boto3.client("sagemaker", region_name=REGION).list_training_jobs()[
        "TrainingJobSummaries"]
    assert len(jobs) == 1, jobs
    assert jobs[0]["TrainingJobName"].startswith("leadscore-")
    # The same event again (S3 delivers at least once): still one job.
    world.invoke(fn, event)
    assert len(boto3.client("sagemaker", region_name=REGION).list_training_jobs()[
        "TrainingJobSummaries"]) == 1


def check_eventbridge(world: World, name: str, fn: str) -> None:
    event = load(name)
    detail = event["detail"]
    job = detail["TrainingJobName"]
    s3 = boto3.client("s3", region_name=REGION)
    # A freshly deployed stack: no champion yet, so the gate decides on absolute figures.
    s3.delete_object(Bucket=world.res.bucket, Key="models/champion.json")
    if detail["TrainingJobStatus"] == "Completed":
        bucket, _, key = detail["ModelArtifacts"]["S3ModelArtifacts"][5:].partition("/")
        assert bucket == world.res.bucket
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for path in sorted(world.bundle.iterdir()):
                if path.is_file():
                    tar.add(path, arcname=path.name)
        s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        # what the retrain function kept for this job: the gate part and its split record
        from tests.registry.conftest import gate_csv

        s3.put_object(Bucket=bucket, Key=f"evaluation/{job}/gate.csv", Body=gate_csv())
        counts = json.loads((world.bundle / "manifest.json").read_text())["training"][
            "class_counts"]
        s3.put_object(Bucket=bucket, Key=f"evaluation/{job}/split.json", Body=json.dumps(
            {"train": {**counts, "rows": sum(counts.values()), "unlabelled": 0}}).encode())
    answer = world.invoke(fn, event)
    assert isinstance(answer, dict) and answer.get("job") == job
    rejected = [o["Key"] for o in s3.list_objects_v2(
        Bucket=world.res.bucket, Prefix="models/rejected/").get("Contents", [])]
    champion = s3.list_objects_v2(Bucket=world.res.bucket, Prefix="models/champion.json")
    if detail["TrainingJobStatus"] in ("Failed", "Stopped"):  # Stopped: MaxRuntimeExceeded
        assert champion.get("KeyCount", 0) == 0
        assert rejected == [f"models/rejected/{job}.json"]
        record = json.loads(s3.get_object(Bucket=world.res.bucket, Key=rejected[0])["Body"].read())
        assert (detail.get("FailureReason") or detail["SecondaryStatus"]) in record["reasons"][0]
        assert record["training_status"] == detail["TrainingJobStatus"]
        assert answer["status"] == "rejected"
        return
    # Completed: the measuring gate, with the thresholds the template sets, decides.
    from leadscore.bundle import load_model
    from leadscore.registry import gate
    from leadscore.settings import PromoteSettings

    from tests.registry.conftest import gate_csv

    settings = PromoteSettings.from_env(template_env(fn, world.params(), world.names()))
    manifest = json.loads((world.bundle / "manifest.json").read_text())
    rows, _ = gate.read_rows(gate_csv(), jsonl=False, source="t")
    failed = gate.measure(load_model(world.bundle), world.bundle, settings, rows=rows,
                          counts=gate.claimed_counts(manifest)).reasons()
    if not failed:
        assert answer["status"] == "promoted", answer
        pointer = json.loads(s3.get_object(Bucket=world.res.bucket,
                                           Key="models/champion.json")["Body"].read())
        assert pointer["version"] == manifest["model_version"]
        assert rejected == []
    else:
        assert answer["status"] == "rejected", answer
        assert champion.get("KeyCount", 0) == 0
        assert len(rejected) == 1


def check_sqs(world: World, name: str, fn: str) -> None:
    event = load(name)
    # Without custom field ids the write-back only moves the class tag (README); set them.
    # The stack's own sub-account (GhlLocationId): the write-back drops messages of locations
    # that are not installed.
    [location] = {json.loads(r["body"])["location_id"] for r in event["Records"]}
    answer = world.invoke(fn, event, {"GHL_API_BASE": world.fake.base_url},
                          GhlScoreFieldId="fld_lead_score", GhlClassFieldId="fld_lead_class",
                          GhlLocationId=location)
    assert answer == {"batchItemFailures": []}
    contacts = {json.loads(r["body"])["contact_id"] for r in event["Records"]}
    puts = {r.path for r in world.fake.requests if r.method == "PUT"}
    assert puts == {f"/contacts/{c}" for c in contacts}
    for request in world.fake.requests:
        assert request.headers.get("Authorization") == f"Bearer {GHL_TOKEN}"
        if request.method == "PUT":
            assert "tags" not in request.body


def check_scheduler(world: World, name: str, fn: str) -> None:
    event = load(name)
    if event["schedule"] == "model-monitoring":
        check_monitor(world, event, fn)
        return
    check_export(world, event, fn)


def check_monitor(world: World, event: dict[str, Any], fn: str) -> None:
    """The monitoring run on its schedule: the champion from S3, Athena (moto) answers an empty
    window, so there is no alarm and the health pages say so; they land under monitoring/."""
    boto3.client("athena", region_name=REGION).create_work_group(
        Name=template_name("LoopWorkGroup"))
    answer = world.invoke(fn, event)
    assert answer["status"] == "done", answer
    assert answer["drift"]["rows"] == 0 and answer["drift"]["alarm"] is False
    s3 = boto3.client("s3", region_name=REGION)
    page = s3.get_object(Bucket=world.res.bucket, Key="monitoring/health/all.html")
    assert page["ContentType"].startswith("text/html")
    assert b"too few to judge" in page["Body"].read()


def check_export(world: World, event: dict[str, Any], fn: str) -> None:
    """The labelled export on its schedule: Athena (moto) in the stack's work group answers no
    new outcomes, so nothing is written and no training starts."""
    boto3.client("athena", region_name=REGION).create_work_group(
        Name=template_name("LoopWorkGroup"))
    answer = world.invoke(fn, event)
    assert answer["status"] == "not_enough_outcomes", answer
    assert answer["new_outcomes"] == 0
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket=world.res.bucket, Prefix="training-data/auto/")
    assert listed.get("KeyCount", 0) == 0


def check_backfill(world: World, name: str, fn: str) -> None:
    """The backfill job: every contact of the location scored, its write-back queued, its
    snapshot sent to the record stream (Firehose in moto), its checkpoint finished."""
    event = load(name)
    contacts = [
        world.fake.add_contact(event["location_id"], custom_fields={
            "list_price": str(400_000 + 10_000 * i), "urgency_level": "high",
            "psychological_commitment_score": str(40 + i)})
        for i in range(3)
    ]
    firehose = boto3.client("firehose", region_name=REGION)
    firehose.create_delivery_stream(
        DeliveryStreamName=template_name("LoopRecordsStream"),
        ExtendedS3DestinationConfiguration={
            "RoleARN": f"arn:aws:iam::{ACCOUNT_ID}:role/firehose",
            "BucketARN": f"arn:aws:s3:::{world.res.bucket}", "Prefix": "loop/"},
    )
    # The single sub-account stack: GhlLocationId + the token secret (no table record).
    answer = world.invoke(fn, event, {"GHL_API_BASE": world.fake.base_url},
                          GhlLocationId=event["location_id"])
    assert answer["finished"] is True and answer["done"] == len(contacts), answer
    assert answer["scored"] == len(contacts)
    sqs = boto3.client("sqs", region_name=REGION)
    queued = []
    while True:
        got = sqs.receive_message(QueueUrl=world.res.queue_url, MaxNumberOfMessages=10)
        if not got.get("Messages"):
            break
        queued += [json.loads(m["Body"]) for m in got["Messages"]]
        for m in got["Messages"]:
            sqs.delete_message(QueueUrl=world.res.queue_url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(q["contact_id"] for q in queued) == sorted(c.id for c in contacts)
    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(
        Bucket=world.res.bucket, Prefix="loop/").get("Contents", [])]
    lines = [json.loads(line) for k in keys
             for line in s3.get_object(Bucket=world.res.bucket, Key=k)["Body"].read().splitlines()
             if line.strip()]
    assert sorted(r["contact_id"] for r in lines) == sorted(c.id for c in contacts)
    assert {r["source"] for r in lines} == {"backfill"}


CHECKS: dict[str, Callable[[World, str, str], None]] = {
    "Api": check_api,
    "S3": check_s3,
    "EventBridgeRule": check_eventbridge,
    "SQS": check_sqs,
    "ScheduleV2": check_scheduler,
    "Invoke": check_backfill,
}


def _kind(event: dict[str, Any]) -> str:
    if "httpMethod" in event:
        return "Api"
    if event.get("source") == "aws.scheduler":
        return "ScheduleV2"
    if "location_id" in event and "job_id" in event:
        return "Invoke"
    if "detail-type" in event:
        return "EventBridgeRule"
    return "S3" if event["Records"][0].get("eventSource") == "aws:s3" else "SQS"


def test_every_function_has_an_event() -> None:
    mapped = {function_for(json.loads(p.read_text())) for p in EVENTS}
    assert mapped == set(resources("AWS::Serverless::Function"))


def test_every_api_route_has_an_event() -> None:
    routes = {
        (ev["Properties"]["Path"], ev["Properties"]["Method"].upper())
        for res in resources("AWS::Serverless::Function").values()
        for ev in res["Properties"].get("Events", {}).values() if ev["Type"] == "Api"
    }
    covered = {(e["resource"], e["httpMethod"])
               for e in (json.loads(p.read_text()) for p in EVENTS) if "httpMethod" in e}
    assert covered == routes


@pytest.mark.parametrize("path", EVENTS, ids=[p.name for p in EVENTS])
def test_event_through_its_handler(path: Path, world: World) -> None:
    event = json.loads(path.read_text())
    fn = function_for(event)
    CHECKS[_kind(event)](world, path.name, fn)
