"""The quality gate: the checks a candidate model's metrics must pass to become champion.

Pure: metrics in, every failed check as a readable sentence out (an empty list is a pass).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from leadscore.settings import PromoteSettings

MAX_PARITY_ABS_DIFF = 1e-5
# --------------------------------------------------------------------------- quality gate


def metric_value(metrics: Mapping[str, Any] | None, *names: str) -> float | None:
    if not metrics:
        return None
    for name in names:
        value = metrics.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            return float(value)
    return None


def auc_of(metrics: Mapping[str, Any] | None) -> float | None:
    return metric_value(metrics, "auc", "auc_roc", "ensemble_auc_roc")


def brier_of(metrics: Mapping[str, Any] | None) -> float | None:
    return metric_value(metrics, "brier", "brier_score", "ensemble_brier_score")


def parity_of(metrics: Mapping[str, Any] | None) -> float | None:
    return metric_value(metrics, "parity_max_abs_diff", "onnx_parity_max_abs_diff")


def quality_gate(
    candidate_metrics: Mapping[str, Any],
    champion_metrics: Mapping[str, Any] | None,
    settings: PromoteSettings,
) -> list[str]:
    """Every failed check as a sentence a person can read; an empty list means "pass"."""
    failed: list[str] = []
    auc = auc_of(candidate_metrics)
    if auc is None:
        failed.append("held-out AUC is missing from the bundle's metrics")
    elif auc < settings.min_auc:
        failed.append(f"held-out AUC {auc:.4f} is below MIN_AUC {settings.min_auc:.4f}")
    champion_auc = auc_of(champion_metrics)
    if auc is not None and champion_auc is not None and champion_auc - auc > settings.max_auc_drop:
        failed.append(
            f"held-out AUC {auc:.4f} is {champion_auc - auc:.4f} below the champion's "
            f"{champion_auc:.4f} (MAX_AUC_DROP {settings.max_auc_drop:.4f})"
        )
    brier = brier_of(candidate_metrics)
    if brier is None:
        failed.append("Brier score is missing from the bundle's metrics")
    elif brier > settings.max_brier:
        failed.append(f"Brier score {brier:.4f} is above MAX_BRIER {settings.max_brier:.4f}")
    parity = parity_of(candidate_metrics)
    if parity is None:
        failed.append("ONNX parity figure (parity_max_abs_diff) is missing")
    elif parity > MAX_PARITY_ABS_DIFF:
        failed.append(
            f"ONNX parity max abs diff {parity:.3g} is above {MAX_PARITY_ABS_DIFF:.0e}: "
            "the graph does not reproduce the native models"
        )
    return failed


