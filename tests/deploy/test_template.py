"""template.yaml: the properties the issues and the design require, checked on the template."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from leadscore import settings as settings_module
from leadscore.registry.retraining import JOB_NAME_PREFIX, REJECTED_DATA_PREFIX

from tests.fixtures.aws import function_environment, load_template, resources

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = resources("AWS::Serverless::Function")
LAYERS = resources("AWS::Serverless::LayerVersion")

# Actions that have no resource type in IAM (so "*" is the only possible resource).
UNSCOPED_ACTIONS = {"cloudwatch:PutMetricData", "ecr:GetAuthorizationToken",
                    "xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def api_events() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, res in FUNCTIONS.items():
        for ev in res["Properties"].get("Events", {}).values():
            if ev["Type"] == "Api":
                yield name, ev["Properties"]


def test_functions_build_without_docker_for_arm64_python312() -> None:
    glob = load_template()["Globals"]["Function"]
    assert FUNCTIONS, "no functions in the template"
    for name, res in FUNCTIONS.items():
        props = res["Properties"]
        assert res["Metadata"]["BuildMethod"] == "makefile", name
        assert props.get("Runtime", glob.get("Runtime")) == "python3.12", name
        assert props.get("Architectures", glob.get("Architectures")) == ["arm64"], name
        assert props.get("Handler", glob.get("Handler")) == "app.lambda_handler", name
        code = ROOT / props["CodeUri"]
        makefile = (code / "Makefile").read_text()
        assert f"build-{name}:" in makefile, f"{code}/Makefile has no build-{name} target"
        assert (code / "app.py").is_file(), name


def test_layers_have_a_build_method_and_target() -> None:
    assert set(LAYERS) == {"RuntimeLayer", "SharedLayer"}
    for name, res in LAYERS.items():
        props = res["Properties"]
        assert res["Metadata"]["BuildMethod"] == "makefile", name
        assert props["CompatibleRuntimes"] == ["python3.12"]
        assert props["CompatibleArchitectures"] == ["arm64"]
        makefile = (ROOT / props["ContentUri"] / "Makefile").read_text()
        assert f"build-{name}:" in makefile
    runtime = (ROOT / LAYERS["RuntimeLayer"]["Properties"]["ContentUri"] / "Makefile").read_text()
    for flag in ("--platform manylinux_2_28_aarch64", "--platform manylinux2014_aarch64",
                 "--python-version 3.12", "--only-binary=:all:", "--implementation cp"):
        assert flag in runtime
    assert "requirements/runtime.txt" in runtime  # the one list of runtime packages


def test_api_keys_on_scoring_routes_only() -> None:
    routes = {(p["Path"], p["Method"].upper()): p.get("Auth", {}).get("ApiKeyRequired")
              for _, p in api_events()}
    assert routes == {
        ("/score", "POST"): True,
        ("/score/batch", "POST"): True,
        ("/model", "GET"): True,
        ("/webhooks/ghl", "POST"): False,  # authenticated by signature / shared secret
        ("/oauth/callback", "GET"): False,  # HighLevel redirects the installing user here
        ("/health", "GET"): False,
    }
    api = resources("AWS::Serverless::Api")["ScoreApi"]["Properties"]
    plan = api["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert {"RateLimit", "BurstLimit"} <= set(plan["Throttle"])
    # Default deny: the API requires the key; open routes opt out (the real transform only
    # accepts an event's ApiKeyRequired false under an API that requires keys).
    assert api["Auth"]["ApiKeyRequired"] is True
    assert all(p["RestApiId"] == {"Ref": "ScoreApi"} for _, p in api_events())


def _statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, res in FUNCTIONS.items():
        for policy in res["Properties"].get("Policies", []):
            assert isinstance(policy, dict) and "Statement" in policy, (
                f"{name}: use inline statements so their resources can be checked")
            for st in policy["Statement"]:
                yield name, st
    for name, res in resources("AWS::IAM::Role").items():
        for policy in res["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                if set(st) == {"Fn::If"}:  # a statement only under a condition: its branches
                    yield from ((name, b) for b in st["Fn::If"][1:]
                                if b != {"Ref": "AWS::NoValue"})
                else:
                    yield name, st


def test_no_wildcard_resource_where_nameable() -> None:
    seen = 0
    for name, st in _statements():
        seen += 1
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        assert not any("*" in a for a in actions), (name, actions)
        if "*" in res:
            assert set(actions) <= UNSCOPED_ACTIONS, (name, actions)
            assert "Condition" in st, (name, "an unscoped action needs a condition")
    assert seen >= 10


def test_pass_role_only_for_the_training_role() -> None:
    passes = [(n, st) for n, st in _statements()
              if "iam:PassRole" in json.dumps(st["Action"])]
    assert [n for n, _ in passes] == ["RetrainFunction"]
    st = passes[0][1]
    assert st["Resource"] == {"Fn::GetAtt": ["SageMakerTrainingRole", "Arn"]}
    assert st["Condition"]["StringEquals"]["iam:PassedToService"] == "sagemaker.amazonaws.com"


def test_training_jobs_are_ours_by_name_prefix() -> None:
    for _, st in _statements():
        if any(a.startswith("sagemaker:") for a in (
                st["Action"] if isinstance(st["Action"], list) else [st["Action"]])):
            assert st["Resource"]["Fn::Sub"].endswith(f":training-job/{JOB_NAME_PREFIX}*")
    rule = FUNCTIONS["PromoteFunction"]["Properties"]["Events"]["TrainingJobFinished"]
    pattern = rule["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.sagemaker"]
    assert pattern["detail-type"] == ["SageMaker Training Job State Change"]
    assert sorted(pattern["detail"]["TrainingJobStatus"]) == ["Completed", "Failed", "Stopped"]
    assert pattern["detail"]["TrainingJobName"] == [{"prefix": JOB_NAME_PREFIX}]


def test_s3_notifications_cannot_retrigger_on_rejections() -> None:
    events = FUNCTIONS["RetrainFunction"]["Properties"]["Events"]
    filters = []
    for ev in events.values():
        assert ev["Type"] == "S3"
        assert ev["Properties"]["Bucket"] == {"Ref": "ArtifactBucket"}
        rules = {r["Name"]: r["Value"] for r in ev["Properties"]["Filter"]["S3Key"]["Rules"]}
        filters.append((rules["prefix"], rules["suffix"]))
    assert sorted(filters) == [("training-data/", ".csv"), ("training-data/", ".jsonl")]
    # The retrain function writes its refusals as .json under training-data/rejected/: no
    # filter matches them, so a refusal can never start another invocation.
    refusal = f"{REJECTED_DATA_PREFIX}leads.csv.json"
    assert not any(refusal.startswith(p) and refusal.endswith(s) for p, s in filters)


def test_writeback_queue_sqs_event_and_timeouts() -> None:
    props = FUNCTIONS["WritebackFunction"]["Properties"]
    (ev,) = props["Events"].values()
    assert ev["Type"] == "SQS"
    assert ev["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert ev["Properties"]["BatchSize"] == 10
    queue = resources()["WritebackQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * props["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["WritebackDLQ", "Arn"]}
    assert 3 <= queue["RedrivePolicy"]["maxReceiveCount"] <= 10


def test_async_functions_retry_then_land_in_a_queue() -> None:
    for name in ("RetrainFunction", "PromoteFunction"):
        config = FUNCTIONS[name]["Properties"]["EventInvokeConfig"]
        assert 0 <= config["MaximumRetryAttempts"] <= 2
        on_failure = config["DestinationConfig"]["OnFailure"]
        assert on_failure["Type"] == "SQS"
        assert on_failure["Destination"] == {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]}


def test_bucket_and_table_are_protected() -> None:
    bucket = resources()["ArtifactBucket"]["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    lifecycle = {r.get("Prefix") for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert "jobs/" in lifecycle
    policy = resources()["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(st["Effect"] == "Deny"
               and st["Condition"]["Bool"]["aws:SecureTransport"] == "false" for st in policy)
    table = resources()["CacheTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


class _Recorder(dict[str, str]):
    """An environment that records every name a settings class reads."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def names_read(*classes: Any) -> set[str]:
    recorder = _Recorder()
    for cls in classes:
        cls.from_env(recorder)
    return recorder.read


SETTINGS_OF = {
    "ScoreFunction": (settings_module.ScoreSettings, settings_module.LoopSettings),
    "ExportFunction": (settings_module.LoopSettings,),
    # The monitor finds a location's own champion as scoring does (LOCATION_MODELS).
    "MonitorFunction": (settings_module.MonitorSettings, settings_module.LoopSettings,
                        settings_module.ScoreSettings),
    "BackfillFunction": (
        settings_module.ScoreSettings, settings_module.LoopSettings,
        settings_module.WritebackSettings,
    ),
    "RetrainFunction": (settings_module.RetrainSettings,),
    "PromoteFunction": (settings_module.PromoteSettings,),
    # The write-back also scores queued webhooks, with the scoring settings.
    "WritebackFunction": (settings_module.WritebackSettings, settings_module.ScoreSettings),
}
REQUIRED = {
    "ExportFunction": {"ARTIFACT_BUCKET", "ATHENA_WORK_GROUP", "GLUE_DATABASE",
                       "EXPORT_MIN_NEW_OUTCOMES"},
    "MonitorFunction": {"MODEL_URI", "ARTIFACT_BUCKET", "ATHENA_WORK_GROUP", "GLUE_DATABASE",
                        "DRIFT_PSI_THRESHOLD", "EXPORT_FUNCTION_NAME"},
    "BackfillFunction": {"MODEL_URI", "WRITEBACK_QUEUE_URL", "RECORD_STREAM", "CACHE_TABLE",
                         "GHL_TOKEN_SECRET_ARN", "BACKFILL_FUNCTION_NAME"},
    "ScoreFunction": {"MODEL_URI", "CACHE_TABLE", "WRITEBACK_QUEUE_URL", "CLASS_THRESHOLDS",
                      "GHL_PUBLIC_KEY_ED25519", "GHL_WEBHOOK_SECRET_ARN", "GHL_FIELD_MAP",
                      "RECORD_STREAM", "OUTCOME_RULES"},
    "RetrainFunction": {"ARTIFACT_BUCKET", "TRAINING_IMAGE_URI", "TRAINING_ROLE_ARN",
                        "TRAINING_INSTANCE_TYPE"},
    "PromoteFunction": {"ARTIFACT_BUCKET", "MIN_AUC", "MAX_AUC_DROP", "MAX_BRIER"},
    "WritebackFunction": {"GHL_TOKEN_SECRET_ARN", "GHL_SCORE_FIELD_ID", "GHL_CLASS_FIELD_ID",
                          "CACHE_TABLE", "MODEL_URI"},
}


# Read by libraries, not by our settings: the log level and numpy's BLAS thread count.
LIBRARY_VARIABLES = {"LOG_LEVEL", "OPENBLAS_NUM_THREADS"}


@pytest.mark.parametrize("function", sorted(SETTINGS_OF))
def test_environment_matches_settings(function: str) -> None:
    env = {k for k in function_environment(function)
           if not k.startswith("POWERTOOLS_") and k not in LIBRARY_VARIABLES}
    read = names_read(*SETTINGS_OF[function])
    assert env - read == set(), f"{function} sets variables no settings class reads"
    assert REQUIRED[function] <= env
    assert REQUIRED[function] <= read


def test_powertools_configuration() -> None:
    for name in FUNCTIONS:
        env = function_environment(name)
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "LeadScoring"
        assert env["POWERTOOLS_SERVICE_NAME"]
        assert env["LOG_LEVEL"] in {"DEBUG", "INFO", "WARNING"}


@pytest.mark.parametrize(("alarm_id", "folder", "function_id"), [
    ("DriftAlarm", "monitor", "MonitorFunction"),
    ("RulesFallbackAlarm", "score", "ScoreFunction"),
])
def test_alarm_watches_the_metric_its_function_emits(
    alarm_id: str, folder: str, function_id: str
) -> None:
    alarm = resources()[alarm_id]["Properties"]
    assert alarm["Namespace"] == "LeadScoring"
    source = (ROOT / "functions" / folder / "app.py").read_text()
    assert re.search(rf'name="{alarm["MetricName"]}"', source), alarm["MetricName"]
    service = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}["service"]
    assert function_environment(function_id)["POWERTOOLS_SERVICE_NAME"] == service
    assert re.search(rf'Metrics\([^)]*service="{service}"', source)


def test_dashboard_charts_only_metrics_something_emits() -> None:
    """Every LeadScoring metric on the dashboard is emitted by our code under that name."""
    body = resources()["ModelDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    json.loads(re.sub(r"\$\{[^}]+\}", "0", body))  # valid JSON once substituted
    names = set(re.findall(r'\[(?:"LeadScoring"|"\.")\s*,\s*"(\w+)"', body))
    assert {"MaxFeaturePSI", "ClassHot", "RulesFallback", "ExperimentArmRules"} <= names
    sources = "".join(p.read_text() for p in (ROOT / "functions").rglob("app.py"))
    # Class and arm metrics are named from a value (name=f"Class{...}"), the rest literally.
    emitted = {n for n in names if f'name="{n}"' in sources
               or (n.startswith("Class") and 'name=f"Class' in sources)
               or (n.startswith("ExperimentArm") and 'name=f"ExperimentArm' in sources)}
    assert names - emitted == set()


def test_dashboard_shows_each_location_s_model_scope_and_drift() -> None:
    """The dashboard's location table reads the line the monitor function logs for each
    location, with the fields the monitoring run's record gives it."""
    from leadscore.monitoring.job import Champion, location_entry

    body = resources()["ModelDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    widget = next(w for w in json.loads(re.sub(r"\$\{[^}]+\}", "0", body))["widgets"]
                  if w["type"] == "log")
    query = widget["properties"]["query"]
    assert "SOURCE '/aws/lambda/${MonitorFunction}'" in body
    logged = re.search(r"filter message = '([^']+)'", query)
    assert logged and f'logger.info("{logged.group(1)}"' in (
        ROOT / "functions" / "monitor" / "app.py").read_text()
    read = set(re.findall(r"latest\((\w+)\)", query))
    entry = location_entry(Champion("lsm-x", (), None, lambda x: x), "location", 0, None, False)
    assert {"model_version", "model_scope", "drift_alarm"} <= read <= {*entry, "score_psi",
                                                                     "max_feature",
                                                                     "max_feature_psi"}
    assert function_environment("MonitorFunction")["LOCATION_MODELS"] == {"Ref": "LocationModels"}


def test_alarms_cover_5xx_fallback_and_dead_letters() -> None:
    alarms = {a["Properties"]["MetricName"]: a["Properties"]
              for a in resources("AWS::CloudWatch::Alarm").values()}
    assert {"5XXError", "RulesFallback", "ApproximateNumberOfMessagesVisible"} <= set(alarms)
    dlq_alarms = [a for a in resources("AWS::CloudWatch::Alarm").values()
                  if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"]
    watched = {a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in dlq_alarms}
    assert watched == {"WritebackDLQ", "AsyncFailureQueue"}


def test_parameters_and_outputs() -> None:
    template = load_template()
    assert {"ModelPointer", "ClassThresholds", "MinAuc", "MaxAucDrop", "MaxBrier",
            "GhlPublicKeyEd25519", "GhlPublicKeyRsa", "GhlTokenSecretArn",
            "GhlScoreFieldId", "GhlClassFieldId", "GhlFieldMap", "TrainingImageUri",
            "TrainingInstanceType"} <= set(template["Parameters"])
    assert {"ApiUrl", "ApiKeyId", "ArtifactBucketName", "CacheTableName",
            "WritebackQueueUrl"} <= set(template["Outputs"])
    # The default thresholds parse with the one parser the functions use.
    default = template["Parameters"]["ClassThresholds"]["Default"]
    parsed = settings_module.ScoreSettings.from_env({"CLASS_THRESHOLDS": default})
    assert parsed.class_thresholds == {"hot": 0.8, "warm": 0.6, "lukewarm": 0.4}
