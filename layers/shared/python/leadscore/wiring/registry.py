"""The registry's side of a container: the model store on the artifact bucket, where training
jobs leave their candidates, the training uploads and SageMaker's jobs."""

from __future__ import annotations

from leadscore.adapters.s3_store import S3Artifacts, S3ObjectStore, S3Uploads
from leadscore.adapters.sagemaker_jobs import SageMakerJobs
from leadscore.registry.candidates import Artifacts
from leadscore.registry.store import ObjectStore
from leadscore.registry.uploads import TrainingJobs, UploadObjects
from leadscore.settings import PromoteSettings


def promote_store(settings: PromoteSettings) -> tuple[ObjectStore, Artifacts]:
    """The registry's store on the artifact bucket, and the jobs' model.tar.gz objects."""
    return S3ObjectStore(settings.artifact_bucket or "unset"), S3Artifacts()


def retrain_access() -> tuple[UploadObjects, TrainingJobs]:
    """The artifact bucket's uploads (ranged reads, streamed lines) and SageMaker's jobs."""
    return S3Uploads(), SageMakerJobs()
