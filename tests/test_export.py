"""ONNX export: the hybrid passes the parity check on real preprocessed inputs (tiny shapes),
a failed check fails and leaves no file, mixed precision is exported in float32, and a trained
fold exports (every registered model: tests/test_registry.py)."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import onnx
import pytest

from hmsbrain.config import ModelConfig
from hmsbrain.core.inputs import WAVENET
from hmsbrain.core.parity import PACKAGED_PARITY_ROWS
from hmsbrain.inference import export
from hmsbrain.inference.export import (
    EXPORT_REPORT,
    ONNX_FILE,
    PARITY_INPUTS,
    PARITY_RTOL,
    ExportError,
    export_fold,
    export_model,
    float32_model,
    parity_inputs,
    write_parity_windows,
)
from hmsbrain.inference.runtimes import onnx_session
from hmsbrain.models.registry import build_model
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def real_inputs(small_demo, tmp_path_factory) -> tuple[object, dict[str, np.ndarray]]:
    """Preprocessed train windows of the small demo at the tiny test shapes (32 x 32 image)."""
    cfg = tiny_config(small_demo, tmp_path_factory.mktemp("export"))
    return cfg, parity_inputs(cfg, n_rows=4)


def _model(cfg, backbone: str, inputs: dict[str, np.ndarray], **kw) -> keras.Model:
    model_cfg = ModelConfig(**{**vars(cfg.model), "backbone": backbone, **kw})
    return build_model(model_cfg, inputs["image"].shape[1:], inputs["raw"].shape[1:], 6)


@pytest.mark.slow
def test_export_passes_parity_on_real_inputs(real_inputs, tmp_path) -> None:
    """The hybrid on real preprocessed windows (every registered model is exported on random
    inputs in tests/test_registry.py)."""
    cfg, inputs = real_inputs
    model = _model(cfg, "effnetv2", inputs, use_wavenet=True)
    path = tmp_path / ONNX_FILE
    report = export_model(model, path, inputs)
    assert report["parity"]["logits_rel_err"] <= PARITY_RTOL
    # Exactly one graph input per model input (the EfficientNetV2 trap adds normalisation
    # constants as inputs), with a dynamic batch dimension.
    graph = onnx.load(str(path)).graph
    expected = [t.name.split(":")[0] for t in model.inputs]
    assert sorted(i.name for i in graph.input) == sorted(expected)
    assert sorted(o.name for o in graph.output) == ["logits", "probs"]
    for graph_input in graph.input:
        assert not graph_input.type.tensor_type.shape.dim[0].HasField("dim_value")
    # The dynamic batch really works: 1 row and all rows.
    session = onnx_session(path, providers=["CPUExecutionProvider"])
    for n in (1, len(inputs["raw"])):
        (probs,) = session.run(["probs"], {k: inputs[k][:n] for k in expected})
        np.testing.assert_allclose(
            probs, model.predict_on_batch([inputs[k][:n] for k in expected]), atol=1e-5
        )


def test_failed_parity_fails_the_export_and_leaves_no_file(real_inputs, tmp_path, monkeypatch):
    """A graph that disagrees with Keras is refused: ExportError, and no model.onnx to pick up."""
    cfg, inputs = real_inputs
    model = _model(cfg, WAVENET, inputs)
    other = _model(cfg, WAVENET, inputs)  # same architecture, other random weights
    import hmsbrain.inference.export as export

    real_to_onnx = export.to_onnx
    monkeypatch.setattr(
        export, "to_onnx", lambda m, p, o: real_to_onnx(export.with_logits(other), p, o)
    )
    with pytest.raises(ExportError, match="differ from Keras"):
        export_model(model, tmp_path / ONNX_FILE, inputs)
    assert list(tmp_path.iterdir()) == []


def test_mixed_precision_model_is_rebuilt_in_float32(real_inputs) -> None:
    cfg, inputs = real_inputs
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = _model(cfg, "effnetv2", inputs, use_wavenet=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert any(layer.dtype_policy.name == "mixed_float16" for layer in mixed.layers)
    plain = float32_model(mixed)
    assert all(layer.dtype_policy.name == "float32" for layer in plain.layers)
    x = [inputs["image"]]
    np.testing.assert_allclose(plain.predict_on_batch(x), mixed.predict_on_batch(x), atol=2e-2)
    for a, b in zip(plain.get_weights(), mixed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_export_fold_of_a_trained_run_writes_model_and_report(tiny_run) -> None:
    fold = tiny_run.run_dir / "fold1"
    report = export_fold(fold)
    assert (fold / ONNX_FILE).is_file()
    saved = json.loads((fold / EXPORT_REPORT).read_text())
    assert saved["inputs"] == report["inputs"] and sorted(saved["inputs"]) == ["image", "raw"]
    assert saved["parity"]["logits_rel_err"] <= PARITY_RTOL


@pytest.mark.slow
def test_a_fold_with_stored_parity_windows_exports_without_its_data(
    tiny_run, tmp_path, monkeypatch
) -> None:
    """package.py exports from files alone: with parity.npz in the fold (as training leaves it),
    the check runs on those windows and no dataset is opened; without one, the data is read."""
    fold = tmp_path / "fold1"
    shutil.copytree(tiny_run.run_dir / "fold1", fold, ignore=shutil.ignore_patterns("*.onnx"))
    stored = write_parity_windows(fold, parity_inputs(tiny_run.cfg))
    before = stored.read_bytes()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a dataset was opened")

    monkeypatch.setattr(export, "open_dataset", refuse)
    report = export_fold(fold)
    assert report["parity"]["rows"] == PACKAGED_PARITY_ROWS
    assert report["parity"]["logits_rel_err"] <= PARITY_RTOL
    assert report["parity_windows"] == PARITY_INPUTS
    assert stored.read_bytes() == before
    stored.unlink()
    with pytest.raises(AssertionError, match="a dataset was opened"):
        export_fold(fold)


def test_stored_parity_windows_without_a_model_input_are_an_error(tiny_run, tmp_path) -> None:
    fold = tmp_path / "fold1"
    shutil.copytree(tiny_run.run_dir / "fold1", fold, ignore=shutil.ignore_patterns("*.onnx"))
    write_parity_windows(fold, {"raw": np.zeros((2, 8, 4), np.float32)})
    with pytest.raises(ExportError, match=r"parity\.npz: no \['image'\] windows"):
        export_fold(fold)
    assert not (fold / ONNX_FILE).exists()
