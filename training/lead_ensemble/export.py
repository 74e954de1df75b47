"""Export a FittedEnsemble as ONE ONNX graph (+ explainer.npz) and prove parity.

Graph (the trees and the MLPs in float32 like the input, everything after them in float64):

* ``TreeEnsembleRegressor`` "served_trees": the served XGBoost and LightGBM trees, 2 targets
  (raw margins: xgboost's base margin is the target's base value, post_transform NONE).
* ``TreeEnsembleRegressor`` "fold_trees": the K fold models' trees, 2K targets.
* One batched float32 MLP chain for the served MLP and the K fold MLPs ([M, N, width]
  tensors: Sub mean, Div scale, MatMul/Add/Relu ..., logit output).
* Stacker ``z = b + logits @ w``; ``score = sigmoid(z)``; ``base_scores = sigmoid(logits)``.
* Interval from the fold logits z_k (jackknife, see ``lead_ensemble.ensemble``).

The trees are built directly from the models' own structure (``lead_ensemble.trees``) — the
same structure the explainer uses — with every comparison normalised to ``x < t`` in float32.
"""

from __future__ import annotations

import os
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
    PARITY_REFERENCE_FILE,
    session_options,
)
from onnx import TensorProto, helper, numpy_helper

from lead_ensemble.ensemble import INTERVAL_METHOD, Z95, FittedEnsemble, mlp_layers, xgb_margin
from lead_ensemble.trees import Tree, lgb_trees, trees_margin, xgb_trees

OPSET = 17
ML_OPSET = 3
PARITY_TOLERANCE = 1e-5
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

    def mlp_stack(self, x: str, pipes: list[Any], stem: str, dtype: Any) -> str:
        """[N, M] logits (in `dtype`, x's type) of M scaler+MLP pipelines of one architecture.

        One batched chain ([M, N, width] tensors) instead of M separate chains: a dozen
        nodes instead of a dozen per MLP, which is most of a one-row call's cost in ORT.
        """
        layers = [mlp_layers(pipe) for pipe in pipes]

        def per_model(name: str) -> np.ndarray:  # [M, 1, 20]
            return np.stack([getattr(m, name) for m in layers])[:, None, :].astype(dtype)

        h = self.op("Max", [x, self.const(f"{stem}_lo", per_model("lo"))], f"{stem}_lo")
        h = self.op("Min", [h, self.const(f"{stem}_hi", per_model("hi"))], f"{stem}_hi")
        h = self.op("Sub", [h, self.const(f"{stem}_mean", per_model("mean"))], f"{stem}_c")
        h = self.op("Div", [h, self.const(f"{stem}_scale", per_model("scale"))], f"{stem}_s")
        depth = len(layers[0].weights)
        for i in range(depth):
            w = np.stack([m.weights[i] for m in layers]).astype(dtype)  # [M, in, out]
            b = np.stack([m.biases[i] for m in layers])[:, None, :].astype(dtype)  # [M, 1, out]
            h = self.op("MatMul", [h, self.const(f"{stem}_W{i}", w)], f"{stem}_mm{i}")
            h = self.op("Add", [h, self.const(f"{stem}_b{i}", b)], f"{stem}_a{i}")
            if i < depth - 1:
                h = self.op("Relu", [h], f"{stem}_r{i}")
        # [M, N, 1] -> [N, M]
        h = self.op("Reshape", [h, self.const(f"{stem}_shape", np.asarray([len(pipes), -1]))],
                    f"{stem}_mn")
        return self.op("Transpose", [h], f"{stem}_nm", perm=[1, 0])


def _xgb_base_margin(model: Any, trees: list[Tree], X32: np.ndarray) -> float:
    """XGBoost's base margin: native margin minus the sum of leaf values (must be constant)."""
    X = X32.astype(np.float64)
    diff = xgb_margin(model, X) - trees_margin(trees, X32)
    base = float(np.median(diff))
    if np.max(np.abs(diff - base)) > 1e-4:
        raise ParityError("xgboost tree extraction does not reproduce its margins")
    return base


def build_graph(ens: FittedEnsemble, X_ref: np.ndarray) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The ONNX model and the tree structure of the served models (for the explainer)."""
    X32 = np.asarray(X_ref, dtype=np.float32)
    n_inputs = int(X32.shape[1])  # 20 for the real-estate contract, N for a custom schema
    k = ens.n_folds
    served_x = xgb_trees(ens.xgb)
    served_l = lgb_trees(ens.lgb)
    served_base = _xgb_base_margin(ens.xgb, served_x, X32)
    fold_groups: list[list[Tree]] = []
    fold_bases: list[float] = []
    for f in ens.folds:
        fx = xgb_trees(f.xgb)
        fold_groups += [fx, lgb_trees(f.lgb)]
        fold_bases += [_xgb_base_margin(f.xgb, fx, X32), 0.0]

    g = _Graph()
    g.nodes.append(_tree_ensemble_node("served_trees", "served_tree_margins",
                                       [served_x, served_l], [served_base, 0.0]))
    g.nodes.append(_tree_ensemble_node("fold_trees", "fold_tree_margins", fold_groups,
                                       fold_bases))
    st = g.op("Cast", ["served_tree_margins"], "served_trees64", to=TensorProto.DOUBLE)
    # Column 0: the served MLP; columns 1..K: the fold MLPs (for the interval).
    # float32 like the input: MLAS kernels, a few % faster per row; parity is still checked.
    nn32 = g.mlp_stack(INPUT_NAME, [ens.mlp_pipeline, *(f.mlp_pipeline for f in ens.folds)],
                       "mlp", np.float32)
    nn_all = g.op("Cast", [nn32], "nn_all64", to=TensorProto.DOUBLE)
    nn = g.op("Gather", [nn_all, g.const("served_col", np.asarray([0], dtype=np.int64))],
              "served_nn", axis=1)
    logits = g.op("Concat", [st, nn], "served_logits", axis=1)  # [N, 3]
    w = ens.weights.reshape(3, 1).astype(np.float64)
    b = np.asarray([ens.intercept], dtype=np.float64)
    z = g.op("Add", [g.op("MatMul", [logits, g.const("stack_w", w)], "zw"),
                     g.const("stack_b", b)], "z")  # [N, 1]
    flat = g.const("flat", np.asarray([-1], dtype=np.int64))
    g.op("Cast", [g.op("Reshape", [g.op("Sigmoid", [z], "p"), flat], "p_flat")], "score",
         out=OUTPUT_SCORE, to=TensorProto.FLOAT)
    g.op("Cast", [g.op("Sigmoid", [logits], "base_p")], "base", out=OUTPUT_BASE_SCORES,
         to=TensorProto.FLOAT)

    # fold logits z_k = b + w_xgb m_xgb_k + w_lgb m_lgb_k + w_nn m_nn_k   -> [N, K]
    ft = g.op("Cast", ["fold_tree_margins"], "fold_trees64", to=TensorProto.DOUBLE)
    wt = np.zeros((2 * k, k), dtype=np.float64)
    for j in range(k):
        wt[2 * j, j] = ens.weights[0]
        wt[2 * j + 1, j] = ens.weights[1]
    zf = g.op("MatMul", [ft, g.const("fold_w", wt)], "zf_trees")
    fold_nn = g.op("Gather", [nn_all, g.const("fold_cols", np.arange(1, k + 1, dtype=np.int64))],
                   "fold_nn", axis=1)
    zf = g.op("Add", [zf, g.op("Mul", [fold_nn, g.const("w_nn", np.asarray(
        [ens.weights[2]], dtype=np.float64))], "zf_nn")], "zf_sum")
    zf = g.op("Add", [zf, g.const("stack_b_f", b)], "zf")
    mean = g.op("MatMul", [zf, g.const("mean_w", np.full((k, 1), 1.0 / k))], "zf_mean")
    dev = g.op("Sub", [zf, mean], "dev")
    ss = g.op("MatMul", [g.op("Mul", [dev, dev], "dev2"),
                         g.const("ones", np.ones((k, 1)))], "ss")
    se = g.op("Sqrt", [g.op("Mul", [ss, g.const("jk", np.asarray([(k - 1) / k]))], "var")],
              "se")
    # h = Z95 * sqrt((s * se)^2 + floor^2); each side widens toward its extreme (ensemble.py)
    hp = ens.hp
    scaled = g.op("Mul", [se, g.const("iscale", np.asarray([hp.interval_scale]))], "sse")
    var_all = g.op("Add", [g.op("Mul", [scaled, scaled], "sse2"),
                           g.const("floor2", np.asarray([hp.interval_floor ** 2]))], "var_all")
    half = g.op("Mul", [g.op("Sqrt", [var_all], "sd_all"), g.const("z95", np.asarray([Z95]))],
                "half")
    up = g.op("Mul", [g.op("Relu", [g.op("Sub", [z, g.const("up_from", np.asarray(
        [hp.interval_skew_up_from]))], "z_up")], "z_up_pos"),
        g.const("up_k", np.asarray([hp.interval_skew_up]))], "skew_up")
    down = g.op("Mul", [g.op("Relu", [g.op("Sub", [g.const("down_from", np.asarray(
        [hp.interval_skew_down_from])), z], "z_down")], "z_down_pos"),
        g.const("down_k", np.asarray([hp.interval_skew_down]))], "skew_down")
    lo = g.op("Sigmoid", [g.op("Sub", [g.op("Sub", [z, half], "zlo0"), down], "zlo")], "lo")
    hi = g.op("Sigmoid", [g.op("Add", [g.op("Add", [z, half], "zhi0"), up], "zhi")], "hi")
    g.op("Cast", [g.op("Concat", [lo, hi], "iv", axis=1)], "interval", out=OUTPUT_INTERVAL,
         to=TensorProto.FLOAT)

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
        "stacker_intercept": np.asarray(ens.intercept + float(ens.weights[0]) *
                                        structure["xgb_base"]),
        "baseline": np.asarray(baseline, dtype=np.float32).reshape(-1),
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
    Raises ParityError when max |ONNX score - native score| > 1e-5.
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
    z_expl = expl.stacker_intercept + z_tree + expl.mlp_weight * expl.mlp_logit(
        X32.astype(np.float64))
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
        },
    }
