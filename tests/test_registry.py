"""The one test harness every registered model passes by being registered: it builds (or, for
a fitted model, fits) a small instance, gives class distributions, saves and reloads to
identical outputs, and exports to ONNX with parity. A new model needs no test of its own to be
covered; image backbones are tested as the hybrid with the WaveNet branch, which covers it too.
"""

from __future__ import annotations

import keras
import numpy as np
import onnx
import pytest

from hmsbrain.config import ModelConfig, WaveNetConfig
from hmsbrain.models.registry import MODELS, build_model, fit_model, model_spec, registered

IMAGE = (32, 32, 3)
RAW = (200, 4)  # 2 s at 100 Hz: shorter than EEGNet's pools' product, so partial windows too
RATE = 100.0
CLASSES = 3


def tiny_model(name: str) -> keras.Model:
    """A small instance of registered model ``name``."""
    cfg = ModelConfig(
        backbone=name, weights="none", wavenet=WaveNetConfig(filters=8, dilations=[1, 2], blocks=2)
    )
    spec = model_spec(name)
    if spec.kind == "fitted":
        rng = np.random.default_rng(0)
        raw = rng.standard_normal((60, *RAW)).astype(np.float32)
        targets = np.eye(CLASSES, dtype=np.float32)[np.arange(60) % CLASSES]
        return fit_model(cfg, [raw[:30], raw[30:]], targets, RAW, RATE)
    image = IMAGE if spec.reads == "image" else None
    return build_model(cfg, image, RAW, CLASSES, RATE)


def inputs_of(model: keras.Model, n: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        t.name.split(":")[0]: rng.standard_normal((n, *t.shape[1:])).astype(np.float32)
        for t in model.inputs
    }


def _predict(model: keras.Model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    arrays = [inputs[t.name.split(":")[0]] for t in model.inputs]
    return np.asarray(model.predict_on_batch(arrays[0] if len(arrays) == 1 else arrays))


def test_every_model_says_what_it_reads_and_its_kind():
    assert registered() and set(registered()) == set(MODELS)
    for name in registered():
        spec = model_spec(name)
        assert spec.reads in ("image", "raw") and spec.kind in ("gradient", "fitted")
    with pytest.raises(ValueError, match="valid"):
        model_spec("vgg16")


@pytest.mark.parametrize("name", registered())
def test_builds_predicts_and_round_trips(name, tmp_path):
    model = tiny_model(name)
    reads = {t.name.split(":")[0] for t in model.inputs}
    assert reads == ({"image", "raw"} if model_spec(name).reads == "image" else {"raw"})
    x = inputs_of(model)
    probs = _predict(model, x)
    assert probs.shape == (4, CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_array_equal(_predict(keras.saving.load_model(path), x), probs)


@pytest.mark.slow
@pytest.mark.parametrize("name", registered())
def test_exports_to_onnx_with_parity(name, tmp_path):
    # Imported here: the exporter pulls in the data pipeline, which the other tests do not need.
    from hmsbrain.inference.export import PARITY_RTOL, export_model
    from hmsbrain.inference.runtimes import onnx_session

    model = tiny_model(name)
    x = inputs_of(model, n=8)
    path = tmp_path / "model.onnx"
    report = export_model(model, path, x)  # raises on disagreement
    assert report["parity"]["logits_rel_err"] <= PARITY_RTOL
    # Exactly the model's inputs (EfficientNetV2 once added normalisation constants as graph
    # inputs), two named outputs, and a dynamic batch that really works.
    graph = onnx.load(str(path)).graph
    assert sorted(i.name for i in graph.input) == sorted(x)
    assert sorted(o.name for o in graph.output) == ["logits", "probs"]
    session = onnx_session(path, providers=["CPUExecutionProvider"])
    for n in (1, 8):
        (probs,) = session.run(["probs"], {k: v[:n] for k, v in x.items()})
        np.testing.assert_allclose(
            probs, _predict(model, {k: v[:n] for k, v in x.items()}), atol=1e-5
        )
