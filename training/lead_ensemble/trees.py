"""Tree structure of fitted XGBoost / LightGBM models, normalised to "left iff x < t" (float32).

One representation serves both the ONNX TreeEnsembleRegressor nodes and the explainer's leaf
paths, so the graph and the contributions see exactly the same trees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import lightgbm as lgbm
import numpy as np
import xgboost as xgb


@dataclass
class Tree:
    """Nodes of one tree. Leaves have feature == -1 and a value; others a threshold."""

    feature: np.ndarray  # int64 [n]
    threshold: np.ndarray  # float32 [n]
    left: np.ndarray  # int64 [n]
    right: np.ndarray  # int64 [n]
    default_left: np.ndarray  # bool [n]
    value: np.ndarray  # float64 [n]

    @property
    def n_nodes(self) -> int:
        return int(self.feature.size)

    def is_leaf(self) -> np.ndarray:
        out: np.ndarray = self.feature < 0
        return out

    def predict(self, X32: np.ndarray) -> np.ndarray:
        node = np.zeros(X32.shape[0], dtype=np.int64)
        for _ in range(self.n_nodes):
            f = self.feature[node]
            active = f >= 0
            if not active.any():
                break
            rows = np.flatnonzero(active)
            go_left = X32[rows, f[rows]] < self.threshold[node[rows]]
            node[rows] = np.where(go_left, self.left[node[rows]], self.right[node[rows]])
        out: np.ndarray = self.value[node]
        return out

    def leaf_paths(self) -> list[tuple[float, list[tuple[int, float, bool]]]]:
        """(leaf value, [(feature, threshold, went_left), ...]) for every leaf."""
        out: list[tuple[float, list[tuple[int, float, bool]]]] = []
        stack: list[tuple[int, list[tuple[int, float, bool]]]] = [(0, [])]
        while stack:
            node, path = stack.pop()
            f = int(self.feature[node])
            if f < 0:
                out.append((float(self.value[node]), path))
                continue
            t = float(self.threshold[node])
            stack.append((int(self.right[node]), [*path, (f, t, False)]))
            stack.append((int(self.left[node]), [*path, (f, t, True)]))
        return out


def xgb_tree_count(model: xgb.XGBClassifier) -> int:
    """Trees the model predicts with: the best iteration's after early stopping, else all."""
    best = getattr(model, "best_iteration", None) if _early_stopped(model) else None
    return int(best) + 1 if best is not None else int(model.get_booster().num_boosted_rounds())


def _early_stopped(model: xgb.XGBClassifier) -> bool:
    try:
        return bool(model.get_params().get("early_stopping_rounds"))
    except AttributeError:  # pragma: no cover - not a fitted sklearn wrapper
        return False


def lgb_tree_count(model: lgbm.LGBMClassifier) -> int:
    best = int(getattr(model, "best_iteration_", 0) or 0)
    return best if best > 0 else int(model.booster_.num_trees())


def xgb_trees(model: xgb.XGBClassifier) -> list[Tree]:
    """Trees of a fitted binary XGBoost model (exact float32 thresholds from its JSON)."""
    booster = model.get_booster()
    count = xgb_tree_count(model)
    if count < booster.num_boosted_rounds():  # early stopping: the trees predict() uses
        booster = booster[:count]
    raw = json.loads(booster.save_raw("json"))
    trees: list[Tree] = []
    for t in raw["learner"]["gradient_booster"]["model"]["trees"]:
        left = np.asarray(t["left_children"], dtype=np.int64)
        right = np.asarray(t["right_children"], dtype=np.int64)
        cond = np.asarray(t["split_conditions"], dtype=np.float32)
        split_idx = np.asarray(t["split_indices"], dtype=np.int64)
        if any(int(s) != 0 for s in t.get("split_type", [])):
            raise ValueError("categorical XGBoost splits are not supported")
        leaf = left < 0
        trees.append(
            Tree(
                feature=np.where(leaf, -1, split_idx),
                threshold=np.where(leaf, np.float32(0), cond).astype(np.float32),
                left=left,
                right=right,
                default_left=np.asarray(t["default_left"], dtype=bool),
                value=np.where(leaf, cond.astype(np.float64), 0.0),
            )
        )
    return trees


def _lgb_threshold32(t: float) -> np.float32:
    """``x <= t`` (t double, x float32) is ``x < nextafter(largest float32 <= t, +inf)``."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    out: np.float32 = np.nextafter(f, np.float32(np.inf))
    return out


def _lgb_visit(node: dict[str, Any], cols: dict[str, list[Any]]) -> int:
    idx = len(cols["f"])
    for key, empty in (("f", -1), ("t", np.float32(0)), ("l", -1), ("r", -1), ("d", False),
                       ("v", 0.0)):
        cols[key].append(empty)
    if "split_feature" not in node:
        cols["v"][idx] = float(node["leaf_value"])
        return idx
    if node.get("decision_type") != "<=":
        raise ValueError(f"unsupported LightGBM split {node.get('decision_type')!r}")
    cols["f"][idx] = int(node["split_feature"])
    cols["t"][idx] = _lgb_threshold32(float(node["threshold"]))
    cols["d"][idx] = bool(node.get("default_left", True))
    cols["l"][idx] = _lgb_visit(node["left_child"], cols)
    cols["r"][idx] = _lgb_visit(node["right_child"], cols)
    return idx


def lgb_trees(model: lgbm.LGBMClassifier) -> list[Tree]:
    """Trees of a fitted binary LightGBM model, thresholds normalised to float32 "<"."""
    dump = model.booster_.dump_model(num_iteration=lgb_tree_count(model))
    trees: list[Tree] = []
    for info in dump["tree_info"]:
        cols: dict[str, list[Any]] = {k: [] for k in ("f", "t", "l", "r", "d", "v")}
        _lgb_visit(info["tree_structure"], cols)
        trees.append(
            Tree(
                feature=np.asarray(cols["f"], dtype=np.int64),
                threshold=np.asarray(cols["t"], dtype=np.float32),
                left=np.asarray(cols["l"], dtype=np.int64),
                right=np.asarray(cols["r"], dtype=np.int64),
                default_left=np.asarray(cols["d"], dtype=bool),
                value=np.asarray(cols["v"], dtype=np.float64),
            )
        )
    return trees


def trees_margin(trees: list[Tree], X32: np.ndarray) -> np.ndarray:
    """Sum of leaf values reached by each row (no base score)."""
    total = np.zeros(X32.shape[0], dtype=np.float64)
    for t in trees:
        total += t.predict(X32)
    return total
