"""Exact Shapley values of a model's score against one baseline (all 2^d coalitions).

Training/benchmark side: the reference that ``leadscore.explain`` is measured against.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from leadscore.bundle import INPUT_NAME, OUTPUT_SCORE, session_options

PredictFn = Callable[[np.ndarray], np.ndarray]


def exact_shapley(
    predict_fn: PredictFn, x: np.ndarray, baseline: np.ndarray, chunk: int = 1 << 16
) -> np.ndarray:
    """phi_i = sum_S |S|!(d-|S|-1)!/d! [f(S+i) - f(S)], f(S) = predict(x on S, baseline off S).

    ``predict_fn`` takes float32 [m, d] and returns [m] scores. All 2^d coalitions are
    evaluated in chunks of ``chunk`` rows (bounded memory); d = 20 gives 1,048,576 rows.
    """
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    b = np.asarray(baseline, dtype=np.float32).reshape(-1)
    d = x.size
    f = math.factorial
    # w_in[s]: weight of a coalition of size s containing i (S = coalition - i, |S| = s-1)
    # w_out[s]: weight of a coalition of size s not containing i (|S| = s)
    w_in = np.zeros(d + 1)
    w_out = np.zeros(d + 1)
    for s in range(d + 1):
        if s >= 1:
            w_in[s] = f(s - 1) * f(d - s) / f(d)
        if s <= d - 1:
            w_out[s] = f(s) * f(d - s - 1) / f(d)
    bit_idx = np.arange(d, dtype=np.int64)
    phi = np.zeros(d)
    total = 1 << d
    for start in range(0, total, chunk):
        masks = np.arange(start, min(start + chunk, total), dtype=np.int64)
        bits = ((masks[:, None] >> bit_idx) & 1).astype(bool)
        rows = np.where(bits, x, b).astype(np.float32)
        vals = np.asarray(predict_fn(rows), dtype=np.float64).reshape(-1)
        size = bits.sum(axis=1)
        plus = vals * w_in[size]
        minus = vals * w_out[size]
        phi += np.where(bits, plus[:, None], -minus[:, None]).sum(axis=0)
    return phi


def onnx_score_fn(model_path: str | os.PathLike[str], threads: int = 2) -> PredictFn:
    """A predict_fn over only the ``score`` part of a bundle's model.onnx (fold models pruned)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    extracted = onnx.utils.Extractor(model).extract_model([INPUT_NAME], [OUTPUT_SCORE])
    so = session_options()
    so.intra_op_num_threads = threads
    sess: Any = ort.InferenceSession(extracted.SerializeToString(), sess_options=so,
                                     providers=["CPUExecutionProvider"])

    def predict(rows: np.ndarray) -> np.ndarray:
        out: np.ndarray = sess.run([OUTPUT_SCORE], {INPUT_NAME: rows})[0]
        return out

    return predict


def relative_l1(ours: np.ndarray, exact: np.ndarray) -> float:
    """sum |ours - exact| / sum |exact|."""
    return float(np.abs(ours - exact).sum() / max(np.abs(exact).sum(), 1e-300))
