"""Export a FittedEnsemble as ONE ONNX graph (+ explainer.npz) and prove parity.

Graph (the trees and the MLPs in float32 like the input, everything after them in float64):

* Three single-target ``TreeEnsembleRegressor`` nodes: the served XGBoost trees, the served
  LightGBM trees and the interval's width trees (raw margins: xgboost's base margin is its
  node's base value, post_transform NONE; the width output is ``2 log(1.96 s se)``, so its
  Exp is the variance term of the half-width).
* The served MLP as one float32 chain (clip with Max/Min, the standardisation folded into
  the first layer's weights, MatMul/Add/Relu ..., logit output); the signed logistic
  regression the same way (one MatMul/Add), only when the stacker kept it (weight > 0).
* Stacker ``z = b + logits @ w``; ``score = sigmoid(z)``; ``base_scores = sigmoid(logits)``.
* Interval from z and the width target (see ``lead_ensemble.ensemble``).

Bundles written before the width model carry the K fold models' trees and MLPs in the graph
and compute the jackknife per lead; they keep the same inputs and outputs and load and serve
unchanged (only slower).

The trees are built directly from the models' own structure (``lead_ensemble.trees``) — the
same structure the explainer uses — with every comparison normalised to ``x < t`` in float32.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from leadscore.bundle import (
    EXPLAINER_FILE,
    INPUT_NAME,
    MODEL_FILE,
    OUTPUT_BASE_SCORES,
    OUTPUT_INTERVAL,
    OUTPUT_NAMES,
    OUTPUT_SCORE,
    PARITY_MAX_ABS_DIFF,
    PARITY_REFERENCE_FILE,
    session_options,
)
from onnx import TensorProto, helper, numpy_helper

from lead_ensemble.ensemble import INTERVAL_METHOD, Z95, FittedEnsemble, mlp_layers, xgb_margin
from lead_ensemble.trees import Tree, lgb_trees, trees_margin, xgb_trees

OPSET = 17
ML_OPSET = 3
PARITY_TOLERANCE = PARITY_MAX_ABS_DIFF  # the bundle contract's limit, as the gate's
PARITY_REFERENCE_ROWS = 256


class ParityError(RuntimeError):
    """The ONNX graph does not reproduce the native models within tolerance."""


# --------------------------------------------------------------------------- tree nodes


def _tree_ensemble_node(
    name: str, output: str, groups: list[list[Tree]], base_values: list[float]
) -> onnx.NodeProto:
    """One TreeEnsembleRegressor; target j sums the trees of groups[j]."""
    attrs: dict[str, list[Any]] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
        "target_treeids", "target_nodeids", "target_ids", "target_weights",
    )}
    tree_id = 0
    for target, trees in enumerate(groups):
        for t in trees:
            leaf = t.is_leaf()
            for n in range(t.n_nodes):
                attrs["nodes_treeids"].append(tree_id)
                attrs["nodes_nodeids"].append(n)
                if leaf[n]:
                    attrs["nodes_featureids"].append(0)
                    attrs["nodes_values"].append(0.0)
                    attrs["nodes_modes"].append("LEAF")
                    attrs["nodes_truenodeids"].append(0)
                    attrs["nodes_falsenodeids"].append(0)
                    attrs["nodes_missing_value_tracks_true"].append(0)
                    attrs["target_treeids"].append(tree_id)
                    attrs["target_nodeids"].append(n)
                    attrs["target_ids"].append(target)
                    attrs["target_weights"].append(float(t.value[n]))
                else:
                    attrs["nodes_featureids"].append(int(t.feature[n]))
                    attrs["nodes_values"].append(float(t.threshold[n]))
                    attrs["nodes_modes"].append("BRANCH_LT")
                    attrs["nodes_truenodeids"].append(int(t.left[n]))
                    attrs["nodes_falsenodeids"].append(int(t.right[n]))
                    attrs["nodes_missing_value_tracks_true"].append(int(t.default_left[n]))
            tree_id += 1
    kwargs: dict[str, Any] = dict(attrs)
    return helper.make_node(
        "TreeEnsembleRegressor",
        [INPUT_NAME],
        [output],
        name=name,
        domain="ai.onnx.ml",
        n_targets=len(groups),
        aggregate_function="SUM",
        post_transform="NONE",
        base_values=[float(b) for b in base_values],
        **kwargs,
    )


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, stem: str, value: np.ndarray) -> str:
        n = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name=n))
        return n

    def op(self, op_type: str, inputs: list[str], stem: str, out: str | None = None,
           **kw: Any) -> str:
        o = out or self.name(stem)
        self.nodes.append(helper.make_node(op_type, inputs, [o], name=self.name(op_type), **kw))
        return o

    def mlp_chain(self, x: str, pipe: Any, stem: str, dtype: Any) -> str:
        """[N, 1] logit (in `dtype`, x's type) of one scaler+MLP pipeline.

        The clip stays (Max/Min), the standardisation ``(x - mean) / scale`` is folded into
        the first layer (``W0 / scale``, ``b0 - (mean / scale) @ W0``): two nodes fewer per
        call, and a one-row call's cost in onnxruntime is mostly per node.
        """
        m = mlp_layers(pipe)
        h = self.op("Max", [x, self.const(f"{stem}_lo", m.lo[None, :].astype(dtype))],
                    f"{stem}_lo")
        h = self.op("Min", [h, self.const(f"{stem}_hi", m.hi[None, :].astype(dtype))],
                    f"{stem}_hi")
        weights = [m.weights[0] / m.scale[:, None], *m.weights[1:]]
        biases = [m.biases[0] - (m.mean / m.scale) @ m.weights[0], *m.biases[1:]]
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = self.op("MatMul", [h, self.const(f"{stem}_W{i}", w.astype(dtype))],
                        f"{stem}_mm{i}")
            h = self.op("Add", [h, self.const(f"{stem}_b{i}", b[None, :].astype(dtype))],
                        f"{stem}_a{i}")
            if i < len(weights) - 1:
                h = self.op("Relu", [h], f"{stem}_r{i}")
        return h


def _xgb_base_margin(model: Any, trees: list[Tree], X32: np.ndarray) -> float:
    """XGBoost's base margin: native margin minus the sum of leaf values (must be constant)."""
    X = X32.astype(np.float64)
    diff = xgb_margin(model, X) - trees_margin(trees, X32)
    base = float(np.median(diff))
    if np.max(np.abs(diff - base)) > 1e-4:
        raise ParityError("xgboost tree extraction does not reproduce its margins")
    return base


def _width_trees(ens: FittedEnsemble) -> tuple[list[Tree], float]:
    """The width model's trees with leaves doubled, and the base value: the target's sum is
    ``2 log(Z95 * scale * se)``, whose Exp is the variance term ``(Z95 * scale * se)^2``."""
    if ens.width is None:
        raise ValueError("the ensemble has no width model (fit it with fit_ensemble)")
    trees = lgb_trees(ens.width.model)
    doubled = [replace(t, value=2.0 * t.value) for t in trees]
    base = 2.0 * (ens.width.offset + math.log(Z95 * ens.hp.interval_scale))
    return doubled, base


def build_graph(ens: FittedEnsemble, X_ref: np.ndarray) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The ONNX model and the tree structure of the served models (for the explainer)."""
    X32 = np.asarray(X_ref, dtype=np.float32)
    n_inputs = int(X32.shape[1])  # 20 for the real-estate contract, N for a custom schema
    served_x = xgb_trees(ens.xgb)
    served_l = lgb_trees(ens.lgb)
    served_base = _xgb_base_margin(ens.xgb, served_x, X32)
    width_trees, width_base = _width_trees(ens)

    g = _Graph()
    # One single-target ensemble each for the xgboost margin, the lightgbm margin and the
    # interval's log variance term: onnxruntime sums one target per row in a scalar, several
    # in a vector per row, and three single-target nodes measured 13 % more rows/s on a
    # 1,000-row batch than one three-target node (one row: the same).
    margins = []
    for name, trees, base in (("xgb_trees", served_x, served_base),
                              ("lgb_trees", served_l, 0.0),
                              ("width_trees", width_trees, width_base)):
        g.nodes.append(_tree_ensemble_node(name, f"{name}_margin", [trees], [base]))
        margins.append(f"{name}_margin")
    # float32 like the input: MLAS kernels, a few % faster per row; parity is still checked.
    nn32 = g.mlp_chain(INPUT_NAME, ens.mlp_pipeline, "mlp", np.float32)
    columns = [*margins, nn32]
    stack = [ens.weights[0], ens.weights[1], 0.0, ens.weights[2]]
    # The linear part is in the graph only when the stacker kept it: a dropped part's nodes
    # would cost every call and add nothing (base_scores does not show it).
    if len(ens.weights) > 3 and ens.weights[3] > 0.0:
        columns.append(g.mlp_chain(INPUT_NAME, ens.linear, "linear", np.float32))
        stack.append(ens.weights[3])
    # [N, 4 or 5] = xgboost, lightgbm, width, MLP (, linear); everything after the trees in
    # float64
    parts = g.op("Cast", [g.op("Concat", columns, "parts32", axis=1)],
                 "parts", to=TensorProto.DOUBLE)
    w = np.asarray(stack, dtype=np.float64).reshape(-1, 1)
    b = np.asarray([ens.intercept], dtype=np.float64)
    z = g.op("Add", [g.op("MatMul", [parts, g.const("stack_w", w)], "zw"),
                     g.const("stack_b", b)], "z")  # [N, 1]
    flat = g.const("flat", np.asarray([-1], dtype=np.int64))
    g.op("Cast", [g.op("Reshape", [g.op("Sigmoid", [z], "p"), flat], "p_flat")], "score",
         out=OUTPUT_SCORE, to=TensorProto.FLOAT)
    logits = g.op("Gather", [parts, g.const("base_cols", np.asarray([0, 1, 3], dtype=np.int64))],
                  "served_logits", axis=1)
    g.op("Cast", [g.op("Sigmoid", [logits], "base_p")], "base", out=OUTPUT_BASE_SCORES,
         to=TensorProto.FLOAT)

    # half = sqrt(exp(width) + (Z95 floor)^2) = Z95 sqrt((s se)^2 + floor^2)   [N, 1]
    hp = ens.hp
    var = g.op("Exp", [g.op("Gather", [parts, g.const("width_col", np.asarray(
        [2], dtype=np.int64))], "width", axis=1)], "var_se")
    half = g.op("Sqrt", [g.op("Add", [var, g.const("floor2", np.asarray(
        [(Z95 * ens.interval_floor) ** 2]))], "var_all")], "half")
    # [down, up] = [k_down max(from_down - z, 0), k_up max(z - from_up, 0)]: the skews are
    # >= 0 (validated), so they move inside the Relu and one MatMul/Add/Relu makes both.
    skew_w = np.asarray([[-hp.interval_skew_down, hp.interval_skew_up]], dtype=np.float64)
    skew_b = np.asarray([hp.interval_skew_down * hp.interval_skew_down_from,
                         -hp.interval_skew_up * hp.interval_skew_up_from], dtype=np.float64)
    skews = g.op("Relu", [g.op("Add", [g.op("MatMul", [z, g.const("skew_w", skew_w)], "zs"),
                                       g.const("skew_b", skew_b)], "zs_b")], "skews")
    # (lo, hi) = sigmoid(z + [-1, 1] * (half + [down, up]))
    reach = g.op("Mul", [g.op("Add", [half, skews], "reach"),
                         g.const("signs", np.asarray([-1.0, 1.0]))], "signed")
    g.op("Cast", [g.op("Sigmoid", [g.op("Add", [z, reach], "edges")], "iv")], "interval",
         out=OUTPUT_INTERVAL, to=TensorProto.FLOAT)

    graph = helper.make_graph(
        g.nodes, "lead_score_ensemble",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_inputs])],
        [
            helper.make_tensor_value_info(OUTPUT_SCORE, TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info(OUTPUT_BASE_SCORES, TensorProto.FLOAT, [None, 3]),
            helper.make_tensor_value_info(OUTPUT_INTERVAL, TensorProto.FLOAT, [None, 2]),
        ],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="ghl-lead-scoring",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    structure = {"xgb": served_x, "lgb": served_l, "xgb_base": served_base}
    return model, structure


# --------------------------------------------------------------------------- explainer


def explainer_payload(
    ens: FittedEnsemble, structure: dict[str, Any], baseline: np.ndarray
) -> dict[str, np.ndarray]:
    """explainer.npz arrays (ARCHITECTURE.md "Explainer")."""
    leaves: list[tuple[float, list[tuple[int, float, bool]]]] = []
    for trees, weight in ((structure["xgb"], ens.weights[0]), (structure["lgb"], ens.weights[1])):
        for t in trees:
            for value, path in t.leaf_paths():
                leaves.append((value * float(weight), path))
    depth = max(1, max(len(p) for _, p in leaves))
    n = len(leaves)
    feat = np.full((n, depth), -1, dtype=np.int32)
    thr = np.zeros((n, depth), dtype=np.float32)
    left = np.zeros((n, depth), dtype=bool)
    val = np.zeros(n, dtype=np.float64)
    for i, (v, path) in enumerate(leaves):
        val[i] = v
        for d, (f, t, lft) in enumerate(path):
            feat[i, d] = f
            thr[i, d] = t
            left[i, d] = lft
    mlp = mlp_layers(ens.mlp_pipeline)
    intercept = ens.intercept + float(ens.weights[0]) * structure["xgb_base"]
    linear: dict[str, np.ndarray] = {}
    if len(ens.weights) > 3 and ens.weights[3] > 0.0:
        # weight * (b + sum_j W_j (clip(x_j) - mean_j) / scale_j) = the constant below +
        # sum_j linear_coef_j clip(x_j): exactly additive, so its Shapley values are
        # linear_coef_j (clip(x_j) - clip(baseline_j)).
        lin = mlp_layers(ens.linear)
        coef = float(ens.weights[3]) * lin.weights[0][:, 0] / lin.scale
        intercept += float(ens.weights[3]) * float(lin.biases[0][0]) - float(coef @ lin.mean)
        linear = {"linear_coef": coef, "linear_lo": lin.lo, "linear_hi": lin.hi}
    out: dict[str, np.ndarray] = {
        "leaf_value": val,
        "path_feature": feat,
        "path_threshold": thr,
        "path_left": left,
        "mlp_mean": mlp.mean,
        "mlp_scale": mlp.scale,
        "mlp_lo": mlp.lo,
        "mlp_hi": mlp.hi,
        "mlp_weight": np.asarray(float(ens.weights[2])),
        "stacker_intercept": np.asarray(intercept),
        "baseline": np.asarray(baseline, dtype=np.float32).reshape(-1),
        **linear,
    }
    for i, (w, b) in enumerate(zip(mlp.weights, mlp.biases, strict=True)):
        out[f"mlp_W{i}"] = w
        out[f"mlp_b{i}"] = b
    return out


# --------------------------------------------------------------------------- export


def _session(path: str | os.PathLike[str]) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=session_options(),
                                providers=["CPUExecutionProvider"])


def export_bundle_model(
    ens: FittedEnsemble,
    out_dir: str | os.PathLike[str],
    baseline: np.ndarray,
    X_check: np.ndarray,
) -> dict[str, Any]:
    """Write model.onnx and explainer.npz into out_dir; prove parity on X_check.

    Returns {"parity_max_abs_diff", "parity": {...}, "baseline_score", "onnx": {...}}.
    Raises ParityError when max |ONNX score - native score| > PARITY_TOLERANCE.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X32 = np.asarray(X_check, dtype=np.float32)
    base32 = np.asarray(baseline, dtype=np.float32).reshape(1, -1)
    ref = np.concatenate([X32, base32], axis=0)
    model, structure = build_graph(ens, ref)
    model_path = out / MODEL_FILE
    onnx.save_model(model, str(model_path))

    sess = _session(model_path)
    score, base_scores, interval = sess.run(list(OUTPUT_NAMES), {INPUT_NAME: X32})
    native = ens.predict_native(X32.astype(np.float64))
    parity = {
        "score": float(np.max(np.abs(score.astype(np.float64) - native.score))),
        "base_scores": float(np.max(np.abs(base_scores.astype(np.float64) - native.base_scores))),
        "interval": float(np.max(np.abs(interval.astype(np.float64) - native.interval))),
    }
    if not parity["score"] <= PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX score differs from the native ensemble by {parity['score']:.3g} "
            f"(> {PARITY_TOLERANCE:g})"
        )

    payload = explainer_payload(ens, structure, base32[0])
    # self-check: the explainer's additive logit reproduces the ensemble's logit
    from leadscore.explain import Explainer

    expl = Explainer.from_arrays(payload)
    z_tree = np.zeros(X32.shape[0])
    for t in structure["xgb"]:
        z_tree += ens.weights[0] * t.predict(X32)
    for t in structure["lgb"]:
        z_tree += ens.weights[1] * t.predict(X32)
    z_expl = (expl.stacker_intercept + z_tree + expl.mlp_weight * expl.mlp_logit(
        X32.astype(np.float64)) + expl.linear_logit(X32.astype(np.float64)))
    z_native = np.log(native.score) - np.log1p(-native.score)
    gap = float(np.max(np.abs(z_expl - z_native)))
    if gap > 1e-4:
        raise ParityError(f"explainer logit differs from the ensemble by {gap:.3g}")
    np.savez(out / EXPLAINER_FILE, allow_pickle=False, **payload)
    # The native models' own predictions on (up to) PARITY_REFERENCE_ROWS held-out rows: the
    # promote gate re-runs model.onnx on them and recomputes parity instead of trusting a figure.
    ref_rows = min(PARITY_REFERENCE_ROWS, X32.shape[0])
    np.savez(out / PARITY_REFERENCE_FILE, allow_pickle=False,
             features=X32[:ref_rows], score=native.score[:ref_rows],
             base_scores=native.base_scores[:ref_rows], interval=native.interval[:ref_rows])

    baseline_score = float(sess.run([OUTPUT_SCORE], {INPUT_NAME: base32})[0][0])
    return {
        "parity_max_abs_diff": parity["score"],
        "parity": parity,
        "baseline_score": baseline_score,
        "explainer_logit_max_abs_diff": gap,
        "interval_method": INTERVAL_METHOD,
        "onnx": {
            "input_name": INPUT_NAME,
            "output_names": list(OUTPUT_NAMES),
            "opset": OPSET,
            "ml_opset": ML_OPSET,
            # what the graph's interval evaluates per lead: the width model's trees (bundles
            # without this key evaluate the K fold ensembles)
            "interval": "width_model",
            "width_trees": len(lgb_trees(ens.width.model)) if ens.width is not None else 0,
        },
    }
