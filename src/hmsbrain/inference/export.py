"""ONNX export of trained fold models, each checked against Keras before it is kept.

Every fold's ``model.keras`` becomes ``model.onnx`` beside it, with exactly one graph input per
model input (``image``, ``raw``; dynamic batch) and two outputs, ``logits`` and ``probs``. The
parity check runs the fold's own preprocessed inputs through both and compares the logits (the
softmax hides differences in confident rows). The ONNX file is written under a temporary name
and only renamed into place when the check passes, so a failed export never leaves a model
that a runtime could pick up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np

from hmsbrain.atomic import atomic_path, write_json
from hmsbrain.config import Config, load_config
from hmsbrain.core.inputs import model_inputs
from hmsbrain.core.parity import PARITY_ROWS, load_parity_inputs, parity_rows, save_parity_inputs
from hmsbrain.data.sources import open_dataset
from hmsbrain.runs import EXPORT_REPORT, KERAS_FILE, ONNX_FILE, PARITY_INPUTS

OPSET = 17
PARITY_RTOL = 1e-4  # acceptance tolerance: max |logit difference| / max |Keras logit|
OUTPUTS = ("logits", "probs")


class ExportError(RuntimeError):
    """An export that must not be used: its ONNX graph disagrees with the Keras model."""


def float32_model(model: keras.Model) -> keras.Model:
    """``model`` with float32 compute. A mixed-precision model is rebuilt from its own config
    with every float16 policy replaced, and given the same weights: exported float16 casts would
    otherwise bake reduced precision into CPU inference and break parity with the reference."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    rebuilt = keras.Model.from_config(_float32_policies(model.get_config()))
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _float32_policies(node: object) -> object:
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy":
            return {**node, "config": {**node["config"], "name": "float32"}}
        return {k: _float32_policies(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_float32_policies(v) for v in node]
    return node


def with_logits(model: keras.Model) -> keras.Model:
    """The same graph with the pre-softmax ``logits`` exposed as a second, named output."""
    return keras.Model(
        model.inputs, {"logits": model.get_layer("logits").output, "probs": model.output}
    )


def to_onnx(model: keras.Model, path: Path, opset: int = OPSET) -> None:
    """Convert with tf2onnx. The explicit input signature (names from the model, batch left
    dynamic) is what keeps the graph to the model's own inputs: tracing without it can lift
    constants such as normalisation statistics into extra graph inputs."""
    import tensorflow as tf
    import tf2onnx

    signature = [
        tf.TensorSpec((None, *t.shape[1:]), tf.float32, name=t.name.split(":")[0])
        for t in model.inputs
    ]
    tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset, output_path=str(path))


def check_parity(
    model: keras.Model, onnx_path: Path, inputs: dict[str, np.ndarray], rtol: float = PARITY_RTOL
) -> dict[str, float]:
    """Compare Keras and ONNX Runtime on ``inputs``; raises ExportError beyond ``rtol``."""
    from hmsbrain.inference.runtimes import onnx_session

    expected_inputs = [t.name.split(":")[0] for t in model.inputs]
    session = onnx_session(onnx_path, providers=["CPUExecutionProvider"])
    graph_inputs = [i.name for i in session.get_inputs()]  # initialisers are not listed here
    graph_outputs = [o.name for o in session.get_outputs()]
    if sorted(graph_inputs) != sorted(expected_inputs) or sorted(graph_outputs) != sorted(OUTPUTS):
        raise ExportError(
            f"{onnx_path}: graph inputs {graph_inputs} / outputs {graph_outputs}; expected "
            f"inputs {expected_inputs} and outputs {list(OUTPUTS)}"
        )
    keras_out = with_logits(model).predict_on_batch(tuple(inputs[k] for k in expected_inputs))
    logits, probs = session.run(list(OUTPUTS), {k: inputs[k] for k in expected_inputs})
    ref_logits = np.asarray(keras_out["logits"], np.float64)
    scale = max(float(np.abs(ref_logits).max()), 1e-6)
    result = {
        "rows": len(logits),
        "logits_rel_err": float(np.abs(logits - ref_logits).max() / scale),
        "probs_abs_err": float(np.abs(probs - np.asarray(keras_out["probs"])).max()),
        "rtol": rtol,
    }
    if not result["logits_rel_err"] <= rtol:  # also catches NaN
        raise ExportError(
            f"{onnx_path}: ONNX logits differ from Keras by {result['logits_rel_err']:.2e} of "
            f"their scale (tolerance {rtol:.0e}) on {result['rows']} rows; the export is unusable"
        )
    return result


def export_model(
    model: keras.Model,
    path: Path,
    inputs: dict[str, np.ndarray],
    opset: int = OPSET,
    rtol: float = PARITY_RTOL,
) -> dict[str, object]:
    """Export ``model`` to ``path``, checked on ``inputs``; the file exists only if it passes."""
    model = float32_model(model)
    with atomic_path(path) as tmp:  # renamed into place only if the check below passes
        to_onnx(with_logits(model), tmp, opset)
        parity = check_parity(model, tmp, inputs, rtol)
    # check_parity has verified that the graph's inputs and outputs are exactly these.
    names = [t.name.split(":")[0] for t in model.inputs]
    return {"opset": opset, "inputs": names, "outputs": list(OUTPUTS), "parity": parity}


def parity_inputs(
    cfg: Config, data_dir: str | None = None, n_rows: int = PARITY_ROWS
) -> dict[str, np.ndarray]:
    """Up to ``n_rows`` real preprocessed train windows of the run's data, spread over it
    (computed directly: no cache of the whole split is needed for eight windows)."""
    if data_dir is not None:
        cfg.data.data_dir = str(data_dir)
    data = open_dataset(cfg, "train")
    return data.inputs(parity_rows(len(data), n_rows), model_inputs(cfg.model, cfg.preprocess))


def write_parity_windows(fold_dir: str | Path, inputs: dict[str, np.ndarray]) -> Path:
    """Keep the first windows of ``inputs`` (the fold model's inputs, by name) as the fold's
    ``parity.npz``: a later export checks ONNX against Keras on them, and a TensorRT engine is
    checked on them, without opening the data."""
    path = Path(fold_dir) / PARITY_INPUTS
    save_parity_inputs(path, inputs)
    return path


def _stored_parity_inputs(fold_dir: Path, cfg: Config) -> dict[str, np.ndarray] | None:
    """The fold's ``parity.npz`` windows, if it has them; they must hold every model input."""
    path = fold_dir / PARITY_INPUTS
    if not path.is_file():
        return None
    inputs = load_parity_inputs(path)
    missing = set(model_inputs(cfg.model, cfg.preprocess)) - set(inputs)
    if missing:
        raise ExportError(
            f"{path}: no {sorted(missing)} windows for this model; delete the file to export "
            "with windows preprocessed from the data again"
        )
    return inputs


def export_fold(
    fold_dir: str | Path,
    data_dir: str | None = None,
    opset: int = OPSET,
    rtol: float = PARITY_RTOL,
) -> dict[str, object]:
    """Export ``<fold_dir>/model.keras`` to ``model.onnx`` and write ``export.json``.

    The parity check runs on the fold's stored windows (``parity.npz``) when it has them, so
    that a trained run exports from its own files alone (``package.py``); otherwise on windows
    preprocessed from the run's data (or ``data_dir``), of which the first are then stored as
    ``parity.npz``. They travel with the model so that a TensorRT engine built from it elsewhere
    can be checked against ONNX Runtime before it is used."""
    fold_dir = Path(fold_dir)
    cfg = load_config(fold_dir / "config.yaml")
    model = keras.saving.load_model(fold_dir / KERAS_FILE)
    stored = _stored_parity_inputs(fold_dir, cfg)
    inputs = stored if stored is not None else parity_inputs(cfg, data_dir)
    report = export_model(model, fold_dir / ONNX_FILE, inputs, opset, rtol)
    report["parity_windows"] = PARITY_INPUTS if stored is not None else "the run's data"
    report["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    if stored is None:
        write_parity_windows(fold_dir, inputs)
    write_json(fold_dir / EXPORT_REPORT, report)
    return report
