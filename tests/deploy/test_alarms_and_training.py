"""Alarms reach a person (a key CloudWatch may use, an optional e-mail subscription) and
retraining works with the defaults (an image that runs the code, pulls from private ECR,
Stopped jobs recorded and alarmed). Checked on the transformed template."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import iam
from tests.fixtures.aws import ACCOUNT_ID, REGION, load_template, resources
from tests.iam import policy

ROOT = Path(__file__).resolve().parents[2]
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:any-alarm"

# SageMaker scikit-learn training images and the Python they run, with where that is stated:
# aws/sagemaker-scikit-learn-container docker/<version>/base/Dockerfile.cpu (PYTHON_VERSION),
# tags as sagemaker-python-sdk builds them (image_uri_config/sklearn.json "training"
# versions, tag "<version>-cpu-py3").
SKLEARN_IMAGE_PYTHON = {
    "1.2-1-cpu-py3": (3, 9),  # docker/1.2-1/base: CONDA_PY_VERSION=39, PYTHON_VERSION=3.9
    "1.4-2-cpu-py3": (3, 10),  # docker/1.4-2/base: PYTHON_VERSION=3.10
    "1.4-2-py312-cpu-py3": (3, 12),  # docker/1.4-2-py312/base: PYTHON_VERSION=3.12
}


def _with_principal(document: dict[str, Any], service: str,
                    resolver: policy.Resolver) -> list[policy.Statement]:
    """The statements of a resource policy that name `service` as principal."""
    kept = []
    for st in document["Statement"]:
        principal = st.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = services if isinstance(services, list) else [services]
        if service in services:
            kept.append({k: v for k, v in st.items() if k != "Principal"})
    return policy._statements_of({"Statement": kept}, resolver, "resource-policy")


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return iam.transformed_template()


def test_alarm_topic_key_lets_cloudwatch_alarms_of_this_account_publish(
    transformed: dict[str, Any],
) -> None:
    res = transformed["Resources"]
    topic = res["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}  # not alias/aws/sns
    key = res["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    resolver = iam._resolver()
    statements = _with_principal(key["KeyPolicy"], "cloudwatch.amazonaws.com", resolver)
    ours = {"aws:SourceAccount": ACCOUNT_ID, "aws:SourceArn": ALARM_ARN}
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert policy.evaluate(statements, action, "*", ours).allowed, action
        stranger = {"aws:SourceAccount": "999999999999",
                    "aws:SourceArn": "arn:aws:cloudwatch:us-east-1:999999999999:alarm:x"}
        assert not policy.evaluate(statements, action, "*", stranger).allowed
    assert not policy.evaluate(statements, "kms:ScheduleKeyDeletion", "*", ours).allowed
    publish = _with_principal(res["AlarmTopicPolicy"]["Properties"]["PolicyDocument"],
                              "cloudwatch.amazonaws.com", resolver)
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:lead-scoring-alarms"
    assert res["AlarmTopicPolicy"]["Properties"]["Topics"] == [{"Ref": "AlarmTopic"}]
    assert publish and all(st.resources for st in publish)
    assert policy.evaluate(
        [policy.Statement(st.sid, st.effect, st.actions, st.not_actions, (topic_arn,),
                          st.conditions, st.policy) for st in publish],
        "sns:Publish", topic_arn, ours).allowed


def test_every_alarm_notifies_the_topic_and_email_is_optional() -> None:
    alarms = resources("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 5
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
    template = load_template()
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    subscription = resources("AWS::SNS::Subscription")["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email",
                                          "Endpoint": {"Ref": "AlarmEmail"}}


def test_the_failed_job_alarm_watches_what_promote_emits() -> None:
    alarm = resources("AWS::CloudWatch::Alarm")["TrainingJobFailedAlarm"]["Properties"]
    source = (ROOT / "functions" / "promote" / "app.py").read_text()
    assert f'name="{alarm["MetricName"]}"' in source
    service = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}["service"]
    assert re.search(rf'Metrics\([^)]*service="{service}"', source)
    assert alarm["Namespace"] == "LeadScoring" and alarm["Threshold"] == 1


def _default_image() -> str:
    env = resources("AWS::Serverless::Function")["RetrainFunction"]["Properties"][
        "Environment"]["Variables"]["TRAINING_IMAGE_URI"]
    condition, _given, default = env["Fn::If"]
    assert condition == "HasTrainingImage"
    return str(default["Fn::Sub"][0])


def test_the_default_training_image_runs_python_3_11_or_later() -> None:
    image = _default_image()
    repository, _, tag = image.rpartition("/")[2].partition(":")
    assert repository == "sagemaker-scikit-learn"
    assert tag in SKLEARN_IMAGE_PYTHON, f"where is the Python version of {tag} stated?"
    assert SKLEARN_IMAGE_PYTHON[tag] >= (3, 11), (tag, SKLEARN_IMAGE_PYTHON[tag])


def test_the_training_role_may_pull_a_private_image(transformed: dict[str, Any]) -> None:
    from tests.fixtures.aws import PSEUDO, physical_names

    image = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/team/lead-training:2026-12"
    resolver = policy.Resolver(transformed, PSEUDO, physical_names,
                               parameters={"TrainingImageUri": image})
    statements = policy.role_statements(transformed, "SageMakerTrainingRole", resolver)
    repo = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/team/lead-training"
    for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                   "ecr:BatchCheckLayerAvailability"):
        assert policy.evaluate(statements, action, repo, {}).allowed, action
        other_account = repo.replace(ACCOUNT_ID, "999999999999")
        assert not policy.evaluate(statements, action, other_account, {}).allowed
    assert policy.evaluate(statements, "ecr:GetAuthorizationToken", "*",
                           {"aws:RequestedRegion": REGION}).allowed


def test_the_dead_letter_alarm_says_what_the_queue_and_the_function_do() -> None:
    from leadscore.settings import WritebackSettings

    text = resources("AWS::CloudWatch::Alarm")["WritebackDLQDepthAlarm"]["Properties"][
        "AlarmDescription"]
    redrive = resources("AWS::SQS::Queue")["WritebackQueue"]["Properties"]["RedrivePolicy"]
    receives = redrive["maxReceiveCount"]
    env = resources("AWS::Serverless::Function")["WritebackFunction"]["Properties"][
        "Environment"]["Variables"]
    # the function dead-letters a message on the receive before SQS's own redrive would
    assert int(env["WRITEBACK_MAX_RECEIVES"]) == receives - 1
    assert f"received {receives} times" in text and f"maxReceiveCount {receives}" in text
    attempts = WritebackSettings().max_attempts
    assert f"at its {attempts}th attempt" in text
    assert set(re.findall(r"\d+", text)) == {str(receives), str(attempts)}
