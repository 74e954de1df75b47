"""The model bundle: file names, ONNX I/O names, manifest writing/verification, loading.

Serving side: numpy + onnxruntime only (never the ``onnx`` package, never pickle).
Training uses :func:`model_version_for` and :func:`finalize_bundle`; serving uses
:func:`load_model` (which calls :func:`verify_bundle`).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from leadscore.columns.schema import Schema, SchemaError
from leadscore.explain import Explainer
from leadscore.identifiers import ID_RULE, is_safe_id

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "ensemble_metrics.json"
IMPORTANCE_JSON = "feature_importance.json"
IMPORTANCE_TXT = "feature_importance.txt"
REPORT_TXT = "training_report.txt"
REPORT_HTML = "training_report.html"
EXPLAINER_FILE = "explainer.npz"
# The training data's distributions, for drift monitoring (leadscore.monitoring.reference).
REFERENCE_FILE = "reference.json"
SCHEMA_FILE = "schema.json"  # custom-schema bundles only (leadscore.columns.schema)
# The native models' predictions on held-out rows; the promote gate recomputes parity from it.
PARITY_REFERENCE_FILE = "parity_reference.npz"
#: The most the ONNX graph's score may differ from the native models' on those rows: training
#: refuses to write a bundle beyond it, the promote gate refuses to promote one.
PARITY_MAX_ABS_DIFF = 1e-5

INPUT_NAME = "features"
OUTPUT_SCORE = "score"
OUTPUT_BASE_SCORES = "base_scores"
OUTPUT_INTERVAL = "interval"
OUTPUT_NAMES: tuple[str, str, str] = (OUTPUT_SCORE, OUTPUT_BASE_SCORES, OUTPUT_INTERVAL)
BASE_MODEL_NAMES: tuple[str, str, str] = ("xgboost", "lightgbm", "neural_network")

VERSION_PREFIX = "lsm-"
PICKLE_SUFFIXES = frozenset(
    {".pkl", ".pickle", ".joblib", ".sav", ".dill", ".pt", ".pth", ".ckpt", ".npy", ".cloudpickle"}
)


# The model store's layout, in one place: promotion writes it (leadscore.registry.promotion),
# the model store follows it (leadscore.scoring.model_store) and experiments read beside it
# (leadscore.experiments). Keys are relative to the store's root: a folder, an S3 bucket or a
# prefix inside one.
MODELS_PREFIX = "models/"
CHAMPION_POINTER_KEY = MODELS_PREFIX + "champion.json"
REJECTED_PREFIX = MODELS_PREFIX + "rejected/"
EXPERIMENT_KEY = MODELS_PREFIX + "experiment.json"
EXPERIMENTS_PREFIX = MODELS_PREFIX + "experiments/"


def version_prefix(version: str) -> str:
    """The folder a promoted version's files are copied to."""
    return f"{MODELS_PREFIX}{version}/"


#: The schema.json of the last refused candidate, kept by the promote function while no model
#: has been promoted: with no champion to say the team's layout, the labelled export writes its
#: rows by this schema's target and values (the next job infers the columns again).
REFUSED_SCHEMA_KEY = MODELS_PREFIX + "refused-schema.json"
#: ``{"job": ...}``: the stack's last training job that produced no model (it failed, or the
#: gate refused its candidate) while none has been promoted, kept by the promote function: the
#: labelled export carries the training part of the team's upload behind it, so the next job
#: learns from that history and the outcomes that came since together (leadscore.loop.export).
WAITING_HISTORY_KEY = MODELS_PREFIX + "waiting-history.json"


def rejected_key(name: str) -> str:
    return f"{REJECTED_PREFIX}{name}.json"


def experiment_record_key(name: str) -> str:
    return f"{EXPERIMENTS_PREFIX}{name}.json"


# A location's own models (a sub-account's champion): the same layout under the location's
# root, so promotion, rollback, the gate's platform-held set and the model store work on it
# unchanged and can never touch the agency's `models/` or another location's folder.
LOCATIONS_PREFIX = "locations/"


def location_root(location_id: str) -> str:
    """The store root of a location's own models (``locations/<location_id>``)."""
    if not is_safe_id(location_id):
        raise ValueError(f"location id {location_id!r} {ID_RULE}")
    return LOCATIONS_PREFIX + location_id


def location_pointer_key(location_id: str) -> str:
    """``locations/<location_id>/models/champion.json``: the location's champion pointer."""
    return f"{location_root(location_id)}/{CHAMPION_POINTER_KEY}"


def pointer_root(key: str) -> str | None:
    """The store root of a champion pointer given by its key or path (``""`` for a store at
    the top of its bucket; ``"team"`` for ``team/models/champion.json``); None when ``key``
    is not a champion pointer at its place in a store."""
    if key == CHAMPION_POINTER_KEY:
        return ""
    if key.endswith("/" + CHAMPION_POINTER_KEY):
        return key[: -len(CHAMPION_POINTER_KEY) - 1]
    return None


def pointed_prefix(pointer: dict[str, Any]) -> str:
    """Where a champion pointer's bundle is: its ``prefix`` (relative to the store root, or a
    full ``file://`` / ``s3://`` / absolute location a hand-written pointer may hold), else
    the version's folder."""
    return str(pointer.get("prefix") or version_prefix(str(pointer["version"])))


class ModelOutputs(NamedTuple):
    """What a model answers for N rows: score [N], base_scores [N, 3], interval [N, 2]."""

    score: np.ndarray
    base_scores: np.ndarray
    interval: np.ndarray


class BundleError(Exception):
    """A bundle is missing, incomplete, tampered with or unsafe. The message says why."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_version_for(onnx_path: str | os.PathLike[str]) -> str:
    """The bundle's version: ``lsm-`` + the first 16 hex digits of model.onnx's sha256."""
    return VERSION_PREFIX + sha256_file(onnx_path)[:16]


def _feature_names() -> list[str]:
    from leadscore.features.contract import FEATURE_NAMES

    return list(FEATURE_NAMES)


def _looks_like_pickle(path: Path) -> bool:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    if path.suffix.lower() == ".npz":
        return False  # checked on load: np.load(allow_pickle=False) refuses object arrays
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    # pickle protocols 2..5 start with PROTO (0x80) followed by the protocol number.
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def finalize_bundle(bundle_dir: str | os.PathLike[str], fields: dict[str, Any]) -> dict[str, Any]:
    """Write manifest.json for a bundle directory whose other files are all written.

    Hashes model.onnx (``sha256``, ``model_version``) and every other file (``files``), fills
    ``created_at`` and ``feature_names`` unless given, and returns the manifest.
    """
    root = Path(bundle_dir)
    model = root / MODEL_FILE
    if not model.is_file():
        raise BundleError(f"{MODEL_FILE} missing in {root}")
    for p in root.iterdir():
        if p.is_file() and _looks_like_pickle(p):
            raise BundleError(f"refusing to bundle a pickle-like file: {p.name}")
    model_sha = sha256_file(model)
    files = {
        p.name: sha256_file(p)
        for p in sorted(root.iterdir())
        if p.is_file() and p.name not in (MODEL_FILE, MANIFEST_FILE)
    }
    manifest: dict[str, Any] = dict(fields)
    manifest["model_version"] = VERSION_PREFIX + model_sha[:16]
    manifest.setdefault("created_at", datetime.now(UTC).isoformat().replace("+00:00", "Z"))
    manifest.setdefault("feature_names", _feature_names())
    manifest["sha256"] = model_sha
    manifest["files"] = files
    (root / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify_bundle(bundle_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a bundle directory and return its manifest; raise BundleError with the reason."""
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"bundle directory not found: {root}")
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{MANIFEST_FILE} missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{MANIFEST_FILE} unreadable: {exc.__class__.__name__}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{MANIFEST_FILE} is not a JSON object")
    for p in root.iterdir():
        if p.is_file() and _looks_like_pickle(p):
            raise BundleError(f"pickle-like file in bundle: {p.name}")
    expected: dict[str, Any] = {MODEL_FILE: manifest.get("sha256")}
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        raise BundleError("manifest 'files' is not an object")
    expected.update(files)
    for name, digest in expected.items():
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise BundleError(f"manifest lists an unsafe file name: {name!r}")
        path = root / name
        if not path.is_file():
            raise BundleError(f"{name} missing")
        if not isinstance(digest, str) or sha256_file(path) != digest:
            raise BundleError(f"{name} sha256 mismatch")
    version = manifest.get("model_version")
    if version != VERSION_PREFIX + str(manifest.get("sha256", ""))[:16]:
        raise BundleError("model_version does not match model.onnx")
    if SCHEMA_FILE in files:
        schema = read_schema(root)
        if manifest.get("feature_names") != schema.input_names:
            raise BundleError(f"feature_names differ from {SCHEMA_FILE}")
    elif manifest.get("feature_names") != _feature_names():
        raise BundleError("feature_names differ from docs/FEATURES.md")
    return manifest


def read_schema(bundle_dir: str | os.PathLike[str]) -> Schema:
    """The custom column schema of a bundle (call only when the manifest lists it)."""
    try:
        raw = json.loads((Path(bundle_dir) / SCHEMA_FILE).read_text())
        return Schema.from_dict(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, SchemaError) as exc:
        raise BundleError(f"{SCHEMA_FILE} unusable: {exc}") from exc


def session_options() -> Any:
    """onnxruntime options for 1-row Lambda calls: one thread, sequential execution."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


class LoadedModel:
    """A verified bundle with an open onnxruntime session."""

    def __init__(self, bundle_dir: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
        import onnxruntime as ort

        root = Path(bundle_dir)
        self.path = root
        self.manifest = manifest
        self.version: str = str(manifest["model_version"])
        self.session = ort.InferenceSession(
            str(root / MODEL_FILE), sess_options=session_options(),
            providers=["CPUExecutionProvider"],
        )
        onnx_info = manifest.get("onnx", {})
        self.input_name: str = str(onnx_info.get("input_name", INPUT_NAME))
        self.output_names: list[str] = list(OUTPUT_NAMES)
        got = {o.name for o in self.session.get_outputs()}
        missing = [n for n in self.output_names if n not in got]
        if missing:
            raise BundleError(f"{MODEL_FILE} lacks outputs {missing}")
        self.explainer: Explainer | None = None
        if (root / EXPLAINER_FILE).is_file():
            self.explainer = Explainer.load(root / EXPLAINER_FILE)
        self.baseline_score: float = float(manifest.get("baseline_score", float("nan")))
        # None: the real-estate 20-feature contract; else the bundle's own columns.
        self.schema: Schema | None = (
            read_schema(root) if SCHEMA_FILE in manifest.get("files", {}) else None
        )
        self.n_inputs: int = len(manifest.get("feature_names") or _feature_names())
        thresholds = manifest.get("class_thresholds")
        self.class_thresholds: dict[str, float] | None = (
            {str(k): float(v) for k, v in thresholds.items()}
            if isinstance(thresholds, dict) else None
        )

    def predict(self, x32: np.ndarray) -> ModelOutputs:
        x = np.ascontiguousarray(x32, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"expected [N, {self.n_inputs}] features, got {x.shape}")
        score, base, interval = self.session.run(self.output_names, {self.input_name: x})
        return ModelOutputs(
            score=np.asarray(score, dtype=np.float64).reshape(-1),
            base_scores=np.asarray(base, dtype=np.float64).reshape(-1, 3),
            interval=np.asarray(interval, dtype=np.float64).reshape(-1, 2),
        )


def load_model(bundle_dir: str | os.PathLike[str]) -> LoadedModel:
    """Verify a bundle and open it. Raises BundleError with a one-line reason."""
    manifest = verify_bundle(bundle_dir)
    try:
        return LoadedModel(bundle_dir, manifest)
    except BundleError:
        raise
    except Exception as exc:  # onnxruntime / numpy refusal of a corrupt file
        raise BundleError(f"bundle unusable: {exc.__class__.__name__}: {exc}") from exc
