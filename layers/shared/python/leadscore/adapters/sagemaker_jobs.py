"""SageMaker training jobs for the retrain function (`leadscore.registry.uploads.TrainingJobs`)."""

from __future__ import annotations

from typing import Any

from leadscore.adapters import client, error_code


class SageMakerJobs:
    def exists(self, name: str) -> bool:
        try:
            client("sagemaker").describe_training_job(TrainingJobName=name)
        except Exception as exc:
            if error_code(exc) in ("ValidationException", "ResourceNotFound"):
                return False
            raise
        return True

    def start(self, request: dict[str, Any]) -> bool:
        try:
            client("sagemaker").create_training_job(**request)
        except Exception as exc:
            if error_code(exc) == "ResourceInUse":
                return False
            raise
        return True
