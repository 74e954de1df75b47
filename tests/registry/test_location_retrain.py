"""A location's uploads through the stack's retrain and promote functions (moto): trained on
the first-model outcome column (never on the stack's own columns or team schema), and the
candidate decided in that location's own registry, so its promotion changes no other
location's champion nor the agency's."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from leadscore.bundle import CHAMPION_POINTER_KEY, location_pointer_key
from leadscore.registry import retraining
from leadscore.registry.locations import (
    FIRST_MODEL_TARGET,
    location_of_upload,
    location_upload_prefix,
)

from tools.lambda_context import lambda_context

from .conftest import BUCKET, BundleFactory, gate_csv, tar_bundle
from .test_functions import _event, _upload

ROWS = "contact_id,scored_at,source,days,outcome\n" + "".join(
    f"c{i},2026-01-01T00:00:00Z,{'Referral' if i % 3 else 'Google'},{i % 30},"
    f"{'won' if i % 4 == 0 else 'lost'}\n" for i in range(200))


def _hyperparameters(aws: Any, job: str) -> dict[str, Any]:
    from leadscore.adapters import client

    described = client("sagemaker").describe_training_job(TrainingJobName=job)
    return {k: json.loads(v) for k, v in described["HyperParameters"].items()}


def test_a_location_upload_is_known_by_its_key() -> None:
    key = location_upload_prefix("loc-a") + "2026-12-01/labelled-0123.csv"
    assert key == "training-data/locations/loc-a/2026-12-01/labelled-0123.csv"
    assert location_of_upload(key) == "loc-a"
    assert location_of_upload("training-data/auto/2026-12-01/labelled-0123.csv") is None
    assert location_of_upload("training-data/locations/../x.csv") is None
    assert location_of_upload("training-data/locations/loc-a") is None


def test_a_location_upload_trains_on_the_outcome_column_not_the_stacks_columns(
        aws: Any, retrain: Any) -> None:
    container = retrain._container.get()
    # the stack trains on its own team columns: none of that applies to a location's rows
    retrain.set_container(replace(container, settings=replace(
        container.settings, team_schema_key="training-data/schema.json",
        training_hyperparameters={"target": json.dumps("status"),
                                  "exclude": json.dumps("budget"),
                                  "xgb_n_estimators": "40"})))
    aws.put_object(Bucket=BUCKET, Key="training-data/schema.json", Body=b"{not a schema")
    key = location_upload_prefix("loc-a") + "2026-12-01/labelled-0123456789abcdef.csv"
    answer = retrain.lambda_handler(_upload(aws, key, ROWS.encode()),
                                    lambda_context())["results"][0]
    assert answer["status"] == "started", answer
    hp = _hyperparameters(aws, answer["job"])
    assert (hp["target"], hp["positive"], hp["negative"]) == (FIRST_MODEL_TARGET, "won", "lost")
    assert hp["exclude"] == "scored_at" and "schema" not in hp
    assert hp["xgb_n_estimators"] == 40  # the stack's model settings still apply
    split = json.loads(aws.get_object(Bucket=BUCKET, Key=retraining.split_record_key(
        answer["job"]))["Body"].read())
    assert split["source_key"] == key
    assert split["train"]["converted"] + split["gate"]["converted"] == 50
    # the agency's uploads still train as the stack says
    agency = retrain.lambda_handler(_upload(aws, "training-data/team.csv", ROWS.replace(
        "outcome", "status").encode()), lambda_context())["results"][0]
    assert agency["status"] == "refused"  # the stack's (unusable) schema applies to it


def _completed_for(aws: Any, job: str, bundle_dir: Any, source_key: str) -> dict[str, Any]:
    """A finished job of an upload at ``source_key``: its archive, the gate part and split
    record the retrain function left for it."""
    key = f"jobs/{job}/output/model.tar.gz"
    aws.put_object(Bucket=BUCKET, Key=key, Body=tar_bundle(bundle_dir))
    aws.put_object(Bucket=BUCKET, Key=retraining.gate_part_key(job, source_key),
                   Body=gate_csv())
    record = {"source_key": source_key, "source_version": None,
              "train": {"rows": 5000, "converted": 1000, "not_converted": 4000,
                        "unlabelled": 0}}
    aws.put_object(Bucket=BUCKET, Key=retraining.split_record_key(job),
                   Body=json.dumps(record).encode())
    event = _event("sagemaker_job_completed.json")
    event["detail"]["TrainingJobName"] = job
    event["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = f"s3://{BUCKET}/{key}"
    return event


def _pointer(aws: Any, key: str) -> bytes | None:
    try:
        return bytes(aws.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    except aws.exceptions.NoSuchKey:
        return None


def test_a_location_candidate_is_promoted_for_that_location_alone(
        aws: Any, promote: Any, make_bundle: BundleFactory) -> None:
    ctx = lambda_context()
    agency = promote.lambda_handler(_completed_for(
        aws, "leadscore-agency-1", make_bundle(seed=1), "training-data/auto/x.csv"), ctx)
    first_a = promote.lambda_handler(_completed_for(
        aws, "leadscore-loc-a-1", make_bundle(seed=2),
        location_upload_prefix("loc-a") + "d/labelled-1.csv"), ctx)
    assert agency["status"] == first_a["status"] == "promoted"
    assert "location_id" not in agency and first_a["location_id"] == "loc-a"
    before = {k: _pointer(aws, k) for k in (CHAMPION_POINTER_KEY, location_pointer_key("loc-a"))}
    assert all(before.values())
    assert json.loads(before[location_pointer_key("loc-a")] or b"")["version"] == \
        first_a["version"]

    # loc-b's first model: promoted under loc-b only
    first_b = promote.lambda_handler(_completed_for(
        aws, "leadscore-loc-b-1", make_bundle(seed=3),
        location_upload_prefix("loc-b") + "d/labelled-1.csv"), ctx)
    assert first_b["status"] == "promoted"
    assert json.loads(_pointer(aws, location_pointer_key("loc-b")) or b"")["version"] == \
        first_b["version"]
    # loc-b's next candidate is gated against loc-b's champion: a worse one is refused there
    worse = promote.lambda_handler(_completed_for(
        aws, "leadscore-loc-b-2", make_bundle(seed=5, sign=-1.0),
        location_upload_prefix("loc-b") + "d/labelled-2.csv"), ctx)
    assert worse["status"] == "rejected"
    assert aws.get_object(Bucket=BUCKET,
                          Key="locations/loc-b/models/rejected/" + worse["version"] + ".json")
    for key, raw in before.items():
        assert _pointer(aws, key) == raw, key  # the agency's and loc-a's: byte for byte
    assert not [o["Key"] for o in aws.list_objects_v2(
        Bucket=BUCKET, Prefix="models/rejected/").get("Contents", [])]
    # a repeated delivery of loc-b's event is a duplicate in loc-b's registry
    again = promote.lambda_handler(_completed_for(
        aws, "leadscore-loc-b-1", make_bundle(seed=3),
        location_upload_prefix("loc-b") + "d/labelled-1.csv"), ctx)
    assert again["status"] == "duplicate"
