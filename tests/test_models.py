"""Backbone registry, WaveNet branch and hybrid model, on tiny shapes (CPU, seconds each)."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

from hmsbrain.config import MobileNetV3Config, ModelConfig, WaveNetConfig
from hmsbrain.core.inputs import WAVENET
from hmsbrain.models.imagenet import WeightsError, build_backbone
from hmsbrain.models.registry import build_model, model_spec, registered

IMAGE = (64, 64, 3)
RAW = (200, 16)


def _inputs(model: keras.Model, n: int = 2, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((n, *t.shape[1:])).astype("float32") for t in model.inputs)


def _tiny(backbone: str, **kw) -> ModelConfig:
    return ModelConfig(
        backbone=backbone,
        weights="none",
        wavenet=WaveNetConfig(filters=8, dilations=[1, 2], blocks=2),
        **kw,
    )


def test_saved_hybrid_reloads_in_a_fresh_process_without_project_code(tmp_path) -> None:
    """model.keras has no custom objects: plain Keras in a new process gives identical outputs."""
    model = build_model(_tiny("effnetv2"), IMAGE, RAW, 6)
    x = _inputs(model)
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "io.npz", *x, probs=np.asarray(model.predict_on_batch(x)))
    code = f"""
import keras, numpy as np
m = keras.saving.load_model(r"{tmp_path / "model.keras"}")
d = np.load(r"{tmp_path / "io.npz"}")
x = tuple(d[f"arr_{{i}}"] for i in range(len(m.inputs)))
np.testing.assert_array_equal(np.asarray(m.predict_on_batch(x)), d["probs"])
print("identical")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "identical" in out.stdout


def test_image_only_and_wavenet_only_inputs() -> None:
    image_only = build_model(
        _tiny("mobilenetv3", use_wavenet=False, mobilenetv3=MobileNetV3Config(size="small")),
        IMAGE,
        RAW,
        6,
    )
    assert [t.name for t in image_only.inputs] == ["image"]
    wave = build_model(_tiny(WAVENET), IMAGE, RAW, 6)
    assert [t.name for t in wave.inputs] == ["raw"]


def test_unknown_backbone_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="valid") as err:
        build_backbone(_tiny("vgg16"), IMAGE)
    for name in registered():
        if model_spec(name).reads == "image":
            assert name in str(err.value)


def test_offline_imagenet_request_says_how_to_supply_weights(monkeypatch) -> None:
    """Offline, 'imagenet' must fail with instructions, never silently train from scratch."""
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/x.h5: "
            "[Errno -3] Temporary failure in name resolution"
        )

    monkeypatch.setattr(file_utils, "get_file", offline)
    cfg = ModelConfig(backbone="effnetv2", weights="imagenet")
    with pytest.raises(WeightsError, match=r"model\.weights=/path/to/file\.h5"):
        build_backbone(cfg, IMAGE)


def test_local_weights_file_loads(tmp_path) -> None:
    """A local .weights.h5 (how offline Kaggle notebooks get ImageNet weights) is loaded."""
    cfg = ModelConfig(
        backbone="mobilenetv3", mobilenetv3=MobileNetV3Config(size="small"), weights="none"
    )
    source = build_backbone(cfg, IMAGE)
    path = tmp_path / "mobilenet.weights.h5"
    source.save_weights(path)
    cfg.weights = str(path)
    loaded = build_backbone(cfg, IMAGE)
    for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_weights_file_is_a_clear_error(tmp_path) -> None:
    cfg = ModelConfig(backbone="resnet50v2", weights=str(tmp_path / "nope.h5"))
    with pytest.raises(WeightsError, match="not found"):
        build_backbone(cfg, IMAGE)


@pytest.mark.gpu
def test_mixed_precision_hybrid_outputs_float32_distributions() -> None:
    """On a GPU, training runs in mixed_float16; the head must still emit float32 softmax."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(_tiny("effnetv2"), IMAGE, RAW, 6)
        probs = model.predict_on_batch(_inputs(model))
        assert probs.dtype == np.float32
        np.testing.assert_allclose(np.asarray(probs).sum(axis=1), 1.0, atol=1e-5)
    finally:
        keras.mixed_precision.set_global_policy("float32")
