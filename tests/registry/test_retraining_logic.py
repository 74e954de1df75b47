"""Which uploads start training, the head check, the job name and the CreateTrainingJob request."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from leadscore.features import FEATURE_NAMES
from leadscore.registry import retraining
from leadscore.settings import RetrainSettings

HEADER = ",".join([*FEATURE_NAMES, "converted"])
SETTINGS = RetrainSettings(
    artifact_bucket="bkt",
    training_image_uri="123.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3",
    training_role_arn="arn:aws:iam::123456789012:role/train",
    training_instance_type="ml.m5.xlarge",
    training_hyperparameters={"test-size": "0.25"},
)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("training-data/leads.csv", True),
        ("training-data/2026/leads.JSONL", True),
        ("training-data/rejected/leads.csv", False),
        ("training-data/rejected/leads.csv.json", False),
        ("training-data/leads.txt", False),
        ("models/champion.json", False),
        ("leads.csv", False),
    ],
)
def test_which_uploads_count(key: str, expected: bool) -> None:
    assert retraining.is_training_upload(key) is expected


def test_rejection_record_goes_where_the_trigger_never_fires() -> None:
    key = retraining.rejection_key("training-data/2026/leads.csv")
    assert key == "training-data/rejected/leads.csv.json"
    assert not retraining.is_training_upload(key)


@given(
    key=st.text(min_size=1, max_size=300).map(lambda s: "training-data/" + s + ".csv"),
    version=st.one_of(st.none(), st.text(max_size=60)),
)
def test_job_name_is_a_valid_sagemaker_name(key: str, version: str | None) -> None:
    name = retraining.job_name(key, version)
    assert len(name) <= 63
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)
    assert name == retraining.job_name(key, version)


def test_job_name_depends_on_key_and_version() -> None:
    a = retraining.job_name("training-data/leads_2026.csv", "v1")
    assert a.startswith("leadscore-leads-2026-csv-")
    assert a != retraining.job_name("training-data/leads_2026.csv", "v2")
    assert a != retraining.job_name("training-data/other/leads_2026.csv", "v1")


def test_a_full_header_passes_with_optional_columns_in_any_order() -> None:
    assert retraining.check_csv_header(HEADER) == []
    shuffled = ",".join(["contact_id", "converted", *reversed(FEATURE_NAMES), "true_probability"])
    assert retraining.check_csv_header(shuffled) == []


def test_header_without_target_is_refused() -> None:
    problems = retraining.check_csv_header(",".join(FEATURE_NAMES))
    assert problems == ["Target column 'converted' not found"]


def test_header_problems_are_all_named() -> None:
    columns = [*FEATURE_NAMES[1:], "converted", "email", "converted"]
    problems = retraining.check_csv_header(",".join(columns))
    text = " | ".join(problems)
    assert "duplicate columns: converted" in text
    assert f"missing feature columns: {FEATURE_NAMES[0]}" in text
    assert "unexpected columns: email" in text


def test_head_check_uses_only_the_first_line() -> None:
    body = (HEADER + "\n" + "0.5," * 20 + "1\n").encode()
    assert retraining.check_training_head("training-data/a.csv", body[:len(HEADER) + 3],
                                          complete=False) == []


def test_head_without_a_complete_first_line_is_refused() -> None:
    problems = retraining.check_training_head("training-data/a.csv", b"a" * 100, complete=False)
    assert problems and "longer than the 100 bytes" in problems[0]
    assert retraining.check_training_head("training-data/a.csv", b"", complete=True) == [
        "the file is empty"
    ]


def test_a_bom_and_crlf_header_is_accepted() -> None:
    head = ("\ufeff" + HEADER + "\r\n").encode("utf-8")
    assert retraining.check_training_head("training-data/a.csv", head, complete=True) == []


def test_a_team_export_passes_when_the_stack_trains_on_its_own_columns() -> None:
    """TRAINING_HYPERPARAMETERS {"target": "output"}: any CSV with that column."""
    settings = RetrainSettings(training_hyperparameters={"target": '"output"',
                                                         "positive": '"yes"'})
    assert retraining.custom_target(settings) == "output"
    head = b"age,job,duration,output\n56,housemaid,261,no\n"
    assert retraining.check_training_head("training-data/bank.csv", head, complete=False,
                                          settings=settings) == []
    assert retraining.check_training_head("training-data/bank.csv", head,
                                          complete=False)  # the default contract refuses it
    problems = retraining.check_training_head("training-data/bank.csv", b"age,job,y\n",
                                              complete=False, settings=settings)
    assert problems == ["Target column 'output' not found"]
    problems = retraining.check_training_head("training-data/bank.jsonl", b"{}\n",
                                              complete=False, settings=settings)
    assert "not JSON Lines" in problems[0]
    assert retraining.custom_target(RetrainSettings()) is None


LEAD = {"property_data": {"list_price": 500000}, "psychology_profile": {"urgency_level": "high"}}


@pytest.mark.parametrize(
    "record",
    [{**LEAD, "converted": 1}, {"contact_id": "c1", "features": LEAD, "converted": 0}],
)
def test_jsonl_raw_lead_with_target_passes(record: dict[str, object]) -> None:
    head = (json.dumps(record) + "\n").encode()
    assert retraining.check_training_head("training-data/a.jsonl", head, complete=True) == []


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        (LEAD, "Target column 'converted' not found"),
        ({**LEAD, "converted": {"value": 1}}, "must be one value"),
        ({"converted": 1, "name": "x"}, "not a raw lead"),
        ({"property_data": {"list_price": "cheap"}, "converted": 1},
         "invalid fields: property_data.list_price"),
    ],
)
def test_jsonl_first_record_problems(record: dict[str, object], fragment: str) -> None:
    head = (json.dumps(record) + "\n").encode()
    problems = retraining.check_training_head("training-data/a.jsonl", head, complete=True)
    assert any(fragment in p for p in problems), problems


def test_jsonl_that_is_not_json_is_refused() -> None:
    problems = retraining.check_training_head("training-data/a.jsonl", b"a,b\n", complete=True)
    assert problems == ["the first line is not valid JSON"]


def test_training_job_request_is_script_mode() -> None:
    key = "training-data/leads_2026.csv"
    request = retraining.training_job_request("bkt", key, "v1", SETTINGS, "us-east-1")
    assert request["TrainingJobName"] == retraining.job_name(key, "v1")
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": SETTINGS.training_image_uri, "TrainingInputMode": "File"}
    hp = request["HyperParameters"]
    assert all(isinstance(v, str) for v in hp.values())
    decoded = {k: json.loads(v) for k, v in hp.items()}
    assert decoded["sagemaker_program"] == "train.py"
    assert decoded["sagemaker_submit_directory"] == "s3://bkt/code/sourcedir.tar.gz"
    assert decoded["sagemaker_region"] == "us-east-1"
    assert decoded["test-size"] == 0.25  # the setting overrides the default
    assert decoded["random-seed"] == 42
    channel = request["InputDataConfig"][0]
    assert channel["ChannelName"] == "training"
    # the job reads exactly its training part of the checked upload (never the gate part)
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://bkt/{retraining.train_part_key(request['TrainingJobName'], key)}")
    assert channel["DataSource"]["S3DataSource"]["S3DataType"] == "S3Prefix"
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://bkt/jobs/"}
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert request["RoleArn"] == SETTINGS.training_role_arn
    tags = {t["Key"]: t["Value"] for t in request["Tags"]}
    assert tags[retraining.SOURCE_KEY_TAG] == key
    assert tags[retraining.SOURCE_VERSION_TAG] == "v1"


def test_user_hyperparameters_cannot_override_sagemaker_keys() -> None:
    settings = RetrainSettings(training_hyperparameters={"sagemaker_program": "evil.py"})
    request = retraining.training_job_request("bkt", "training-data/a.csv", None, settings, "r")
    assert json.loads(request["HyperParameters"]["sagemaker_program"]) == "train.py"


def test_missing_settings_are_named() -> None:
    assert retraining.missing_settings(SETTINGS) == []
    assert retraining.missing_settings(RetrainSettings()) == [
        "ARTIFACT_BUCKET", "TRAINING_IMAGE_URI", "TRAINING_ROLE_ARN"]
