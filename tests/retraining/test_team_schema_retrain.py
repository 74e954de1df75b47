"""Stack retraining on a team's own columns, against moto: the schema beside an upload (what
the labelled export writes) or the stack's hand-edited one (TEAM_SCHEMA_KEY) goes into the
job's channel and train.py reads it, with nothing done by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from leadscore.registry import retraining

from tools.lambda_context import lambda_context

from .conftest import BUCKET
from .test_functions import _upload

SCHEMA = {"format": "leadscore-schema/1", "target": "outcome", "positive": ["won"],
          "negative": ["lost"], "exclude": {"lost_reason": "leak: after the outcome"},
          "columns": [{"name": "source", "kind": "categorical"},
                      {"name": "days_since_reply", "kind": "numeric", "direction": -1}]}
ROWS = "contact_id,source,days_since_reply,lost_reason,outcome\n" + "".join(
    f"c{i},{'Referral' if i % 3 else 'Google'},{i % 30},,{'won' if i % 4 == 0 else 'lost'}\n"
    for i in range(200))


def _job(aws: Any, name: str) -> dict[str, Any]:
    from leadscore.adapters import client

    job: dict[str, Any] = client("sagemaker").describe_training_job(TrainingJobName=name)
    return job


def test_the_schema_beside_an_upload_goes_into_the_job(aws: Any, retrain: Any) -> None:
    key = "training-data/auto/2026-12-01/labelled-0123456789abcdef.csv"
    beside = retraining.schema_key_beside(key)
    assert beside == "training-data/auto/2026-12-01/labelled-0123456789abcdef.schema.json"
    aws.put_object(Bucket=BUCKET, Key=beside, Body=json.dumps(SCHEMA).encode())
    result = retrain.lambda_handler(_upload(aws, key, ROWS.encode()), lambda_context())
    answer = result["results"][0]
    assert answer["status"] == "started", answer
    job = _job(aws, answer["job"])
    hp = {k: json.loads(v) for k, v in job["HyperParameters"].items()}
    # train.py --schema names the file in its channel, beside the rows
    assert hp["schema"] == "train.csv.schema.json"
    channel = job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    in_channel = retraining.job_schema_key(answer["job"], key)
    assert f"s3://{BUCKET}/{in_channel}".startswith(channel)  # the channel's prefix holds it
    assert json.loads(aws.get_object(Bucket=BUCKET, Key=in_channel)["Body"].read()) == SCHEMA
    # the split counted conversions with the schema's own label values
    split = json.loads(aws.get_object(Bucket=BUCKET, Key=retraining.split_record_key(
        answer["job"]))["Body"].read())
    counted = split["train"]["converted"] + split["gate"]["converted"]
    assert counted == 50 and split["train"]["unlabelled"] + split["gate"]["unlabelled"] == 0


def test_the_stacks_hand_edited_schema_trains_an_upload_without_one(
    aws: Any, retrain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrain, "settings", replace(
        retrain.settings, team_schema_key="training-data/schema.json",
        training_hyperparameters={"target": json.dumps("status"), "xgb_n_estimators": "40"}))
    aws.put_object(Bucket=BUCKET, Key="training-data/schema.json",
                   Body=json.dumps(SCHEMA).encode())
    answer = retrain.lambda_handler(_upload(aws, "training-data/team.csv", ROWS.encode()),
                                    lambda_context())["results"][0]
    assert answer["status"] == "started", answer
    hp = {k: json.loads(v) for k, v in _job(aws, answer["job"])["HyperParameters"].items()}
    # the schema states the target; other hyperparameters still apply
    assert "target" not in hp and hp["xgb_n_estimators"] == 40
    assert hp["schema"] == "train.csv.schema.json"


def test_an_unusable_schema_refuses_the_upload_with_its_reason(aws: Any, retrain: Any) -> None:
    key = "training-data/broken.csv"
    aws.put_object(Bucket=BUCKET, Key=retraining.schema_key_beside(key), Body=b"{not json")
    answer = retrain.lambda_handler(_upload(aws, key, ROWS.encode()),
                                    lambda_context())["results"][0]
    assert answer["status"] == "refused"
    assert "training-data/broken.schema.json is unusable" in answer["reasons"][0]


def test_without_any_schema_an_upload_trains_as_before(aws: Any, retrain: Any) -> None:
    from .test_functions import HEADER, ROW

    answer = retrain.lambda_handler(
        _upload(aws, "training-data/plain.csv", (HEADER + "\n" + (ROW + "\n") * 50).encode()),
        lambda_context())["results"][0]
    assert answer["status"] == "started"
    assert "schema" not in _job(aws, answer["job"])["HyperParameters"]
