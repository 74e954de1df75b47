"""/health and /model never show infrastructure (bucket, table or queue names, account ids,
ARNs, URIs, paths); the logs keep the detail."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from leadscore.scoring.model_store import ModelStatus
from leadscore.scoring.public import NOT_CONFIGURED, REDACTED, names_in, redact
from leadscore.settings import ScoreSettings

from tests.fixtures import aws as template_aws
from tests.fixtures.scoring import load_event

BUCKET = template_aws.template_name("ArtifactBucket")
TABLE = template_aws.template_name("CacheTable")
QUEUE_URL = f"https://sqs.us-east-1.amazonaws.com/123456789012/{template_aws.STACK_NAME}-writeback"
LEAKS = (BUCKET, TABLE, "123456789012", "arn:", "s3://", "/opt/ml", "/tmp/", "amazonaws.com",
         "lead-scoring-writeback")


class InfoStore:
    """A loaded model whose manifest carries what a SageMaker-trained bundle may carry."""

    def current(self) -> None:
        return None

    def status(self) -> ModelStatus:
        return ModelStatus(loaded=True, model_version="lsm-0123456789abcdef", reason=None)

    def info(self) -> dict[str, Any]:
        return {"manifest": {
            "model_version": "lsm-0123456789abcdef",
            "metrics": {"auc": 0.86, "brier": 0.14},
            "source": {"job_name": "leadscore-leads-csv-1",
                       "artifact": f"s3://{BUCKET}/jobs/leadscore-leads-csv-1/model.tar.gz",
                       "role": "arn:aws:iam::123456789012:role/training",
                       "input": "/opt/ml/input/data/training/leads.csv"},
            "notes": [f"cache {TABLE}", "fine"],
            f"s3://{BUCKET}/key-as-name": 1,
        }}


def _install(score_app: Any, store: Any, **settings: Any) -> None:
    cfg = replace(ScoreSettings(), model_uri=f"s3://{BUCKET}/models/champion.json",
                  cache_table=TABLE, writeback_queue_url=QUEUE_URL, **settings)
    score_app.set_container(score_app.build_container(cfg, store=store))


def test_model_answer_names_no_infrastructure(score_app: Any, invoke: Any) -> None:
    _install(score_app, InfoStore())
    answer = invoke(load_event("model_get"))
    assert answer.status == 200
    text = json.dumps(answer.body)
    for leak in LEAKS:
        assert leak not in text, leak
    manifest = answer.body["manifest"]
    assert manifest["metrics"] == {"auc": 0.86, "brier": 0.14}  # the useful part stays
    assert manifest["source"]["job_name"] == "leadscore-leads-csv-1"
    assert manifest["source"]["artifact"] == REDACTED and manifest["notes"] == [REDACTED, "fine"]


def test_health_without_a_model_names_nothing(score_app: Any, invoke: Any,
                                              tmp_path: Any) -> None:
    from leadscore.scoring.model_store import ModelStore

    _install(score_app, ModelStore(f"s3://{BUCKET}/models/champion.json",
                                   cache_dir=tmp_path, s3=_Unreachable()))
    for name in ("health_get", "model_get"):
        answer = invoke(load_event(name))
        assert answer.status == 503
        text = json.dumps(answer.body)
        for leak in LEAKS:
            assert leak not in text, (name, leak)
    detail = score_app.container().store.status().reason
    assert f"s3://{BUCKET}/models/champion.json" in detail  # what the logs carry


def test_an_unconfigured_model_says_so(score_app: Any, invoke: Any) -> None:
    from leadscore.scoring.model_store import ModelStore

    score_app.set_container(score_app.build_container(ScoreSettings(), store=ModelStore("")))
    health = invoke(load_event("health_get"))
    assert health.status == 503 and health.body["reason"] == NOT_CONFIGURED


class _Unreachable:
    def get(self, bucket: str, key: str) -> Any:
        raise ConnectionError(f"could not connect to https://{bucket}.s3.amazonaws.com/{key}")


def test_redaction_rules() -> None:
    names = names_in(f"s3://{BUCKET}/models/champion.json", TABLE, QUEUE_URL)
    assert names == [BUCKET, TABLE, f"{template_aws.STACK_NAME}-writeback"]
    for leak in ("s3://b/k", "file:///x", "arn:aws:s3:::b", "see /var/task/app.py",
                 "account 123456789012", f"table {TABLE}", "https://x.example/y"):
        assert redact(leak, names) == REDACTED, leak
    for fine in ("lsm-0123456789abcdef", "2026-11-30T10:00:00Z", "hot", "0.86", "a/b ratio"):
        assert redact(fine, names) == fine, fine
