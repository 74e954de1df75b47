"""A retraining with a team's schema in SageMaker: the retrain function puts the schema file in
the job's channel and names it in the `schema` hyperparameter; the training toolkit passes it
both in hyperparameters.json and as `--schema` on the command line. It is a job flag, never an
ensemble hyperparameter (it was: every such job failed with "Unknown hyperparameter 'schema'")."""

from __future__ import annotations

import json
from pathlib import Path

import train
from lead_ensemble.ensemble import Hyperparameters


def test_the_schema_hyperparameter_is_the_channels_schema_file(tmp_path: Path) -> None:
    from leadscore.settings import TrainingSettings

    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({
        "schema": '"labelled-1.schema.json"', "folds": '"3"',
        "sagemaker_program": '"train.py"'}))
    settings = TrainingSettings.from_env({"LEADSCORE_OPT_ML_ROOT": str(tmp_path)})
    cfg = train.config_from_args(["--schema", "labelled-1.schema.json", "--folds", "3"],
                                 settings)
    assert cfg.custom.schema_path == Path(settings.channel_training) / "labelled-1.schema.json"
    assert "schema" not in cfg.hyperparameters
    Hyperparameters.from_mapping(cfg.hyperparameters)  # raised for the schema key before
