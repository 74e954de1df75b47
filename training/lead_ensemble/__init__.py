"""The stacked lead-scoring ensemble (training side) and its ONNX export."""

from lead_ensemble.ensemble import (
    FittedEnsemble,
    HyperparameterError,
    Hyperparameters,
    fit_ensemble,
)
from lead_ensemble.export import ParityError, export_bundle_model

__all__ = [
    "FittedEnsemble",
    "HyperparameterError",
    "Hyperparameters",
    "ParityError",
    "export_bundle_model",
    "fit_ensemble",
]
