"""Models: a registry of ImageNet backbones over the spectrogram image, a WaveNet branch over
the raw montage, and the hybrid that joins them into one 6-way softmax.

Everything is built from Keras core layers and ``keras.applications``, with no custom layer
classes, so a saved ``model.keras`` reloads in any process with plain ``keras.saving.load_model``
(the Kaggle kernel included) and exports to ONNX without custom converters.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers

from hmsbrain.config import ModelConfig
from hmsbrain.hms.constants import N_CLASSES
from hmsbrain.hms.inputs import IMAGE_INPUT, RAW_INPUT, WAVENET, model_inputs

BackboneFn = Callable[[ModelConfig, tuple[int, int, int], "str | None"], keras.Model]
BACKBONES: dict[str, BackboneFn] = {}


class WeightsError(RuntimeError):
    """Pretrained weights that cannot be had; the message says how to supply them."""


def register_backbone(name: str) -> Callable[[BackboneFn], BackboneFn]:
    """Register ``fn(cfg, input_shape, weights) -> keras.Model`` (features, no top) as ``name``."""

    def wrap(fn: BackboneFn) -> BackboneFn:
        BACKBONES[name] = fn
        return fn

    return wrap


def _choice(value: str, options: tuple[str, ...], key: str) -> str:
    if value not in options:
        raise ValueError(f"{key}={value!r} is not one of {list(options)}")
    return value


@register_backbone("effnetv2")
def _effnetv2(cfg: ModelConfig, shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    size = _choice(cfg.effnetv2_size, ("B0", "B1", "B2", "B3", "S", "M", "L"), "effnetv2_size")
    app = getattr(keras.applications, f"EfficientNetV2{size}")
    # include_preprocessing=False: inputs are standardised spectrograms, not 0-255 pixels, and the
    # rescaling constants would otherwise surface as extra ONNX graph inputs.
    return app(include_top=False, weights=weights, input_shape=shape, include_preprocessing=False)


@register_backbone("resnet50v2")
def _resnet50v2(cfg: ModelConfig, shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return keras.applications.ResNet50V2(include_top=False, weights=weights, input_shape=shape)


@register_backbone("mobilenetv3")
def _mobilenetv3(cfg: ModelConfig, shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    size = _choice(cfg.mobilenetv3_size, ("large", "small"), "mobilenetv3_size")
    app = (
        keras.applications.MobileNetV3Large
        if size == "large"
        else keras.applications.MobileNetV3Small
    )
    return app(include_top=False, weights=weights, input_shape=shape, include_preprocessing=False)


@register_backbone("densenet201")
def _densenet201(cfg: ModelConfig, shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return keras.applications.DenseNet201(include_top=False, weights=weights, input_shape=shape)


def backbone_names() -> list[str]:
    """Every valid ``--backbone``: the registered image backbones and ``wavenet``."""
    return [*BACKBONES, WAVENET]


def resolve_weights(weights: str) -> str | None:
    """Map the config's ``weights`` to what ``keras.applications`` takes, failing early."""
    if weights.lower() == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"model.weights: file not found: {path}")
    if not (path.name.endswith(".h5")):
        raise WeightsError(f"model.weights: {path} must be a .h5 or .weights.h5 file")
    return str(path)


def build_backbone(cfg: ModelConfig, shape: tuple[int, int, int]) -> keras.Model:
    """The registered backbone ``cfg.backbone``, with the requested weights or a clear error."""
    if cfg.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {cfg.backbone!r}; valid: {backbone_names()}")
    weights = resolve_weights(cfg.weights)
    try:
        return BACKBONES[cfg.backbone](cfg, shape, weights)
    except Exception as exc:
        if weights != "imagenet" or not _is_download_error(exc):
            raise
        raise WeightsError(
            f"ImageNet weights for {cfg.backbone!r} could not be downloaded ({exc}). Offline, "
            'supply them as a file: on a machine with internet run `python -c "import keras; '
            f'keras.applications.{_app_name(cfg)}(include_top=False)"`, copy the file it saved '
            "under ~/.keras/models/ (on Kaggle: attach it as a dataset), and pass "
            "model.weights=/path/to/file.h5; or model.weights=none to train from scratch."
        ) from exc


def _is_download_error(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(k in text for k in ("url", "fetch", "download", "connection", "resolve", "http"))


def _app_name(cfg: ModelConfig) -> str:
    return {
        "effnetv2": f"EfficientNetV2{cfg.effnetv2_size}",
        "resnet50v2": "ResNet50V2",
        "mobilenetv3": f"MobileNetV3{cfg.mobilenetv3_size.capitalize()}",
        "densenet201": "DenseNet201",
    }.get(cfg.backbone, cfg.backbone)


def wavenet_features(x: keras.KerasTensor, cfg: ModelConfig) -> keras.KerasTensor:
    """WaveNet over the raw montage ``(time, 16)`` -> pooled features.

    Each block is a stack of dilated, non-causal ("same"-padded) convolutions with gated
    activations (tanh * sigmoid) and residual connections, then 4x average pooling in time, so
    later blocks see seconds of context at a few convolutions' cost.
    """
    f = cfg.wavenet_filters
    x = layers.Conv1D(f, 1, name="wave_in")(x)
    for b in range(cfg.wavenet_blocks):
        for d in cfg.wavenet_dilations:
            name = f"wave_b{b}_d{d}"
            tanh = layers.Conv1D(f, 3, padding="same", dilation_rate=d, activation="tanh",
                                 name=f"{name}_tanh")(x)  # fmt: skip
            gate = layers.Conv1D(f, 3, padding="same", dilation_rate=d, activation="sigmoid",
                                 name=f"{name}_gate")(x)  # fmt: skip
            gated = layers.Multiply(name=f"{name}_mul")([tanh, gate])
            x = layers.Add(name=f"{name}_res")([x, layers.Conv1D(f, 1, name=f"{name}_proj")(gated)])
        x = layers.BatchNormalization(name=f"wave_b{b}_bn")(x)
        x = layers.AveragePooling1D(4, padding="same", name=f"wave_b{b}_pool")(x)
    return layers.Concatenate(name="wave_features")(
        [layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)]
    )


def build_model(
    cfg: ModelConfig, image_shape: tuple[int, ...] | None, raw_shape: tuple[int, ...] | None
) -> keras.Model:
    """The classifier: image backbone, WaveNet, or both, ending in a float32 6-way softmax.
    The shape of an input the model does not read may be None."""
    names = model_inputs(cfg)
    inputs, features = {}, []
    if IMAGE_INPUT in names:
        inputs[IMAGE_INPUT] = keras.Input(image_shape, name=IMAGE_INPUT)
        backbone = build_backbone(cfg, image_shape)
        features.append(
            layers.GlobalAveragePooling2D(name="image_pool")(backbone(inputs[IMAGE_INPUT]))
        )
    if RAW_INPUT in names:
        inputs[RAW_INPUT] = keras.Input(raw_shape, name=RAW_INPUT)
        features.append(wavenet_features(inputs[RAW_INPUT], cfg))
    x = features[0] if len(features) == 1 else layers.Concatenate(name="joint")(features)
    x = layers.Dropout(cfg.dropout, name="head_dropout")(x)
    logits = layers.Dense(N_CLASSES, name="logits", dtype="float32")(x)
    # Softmax in float32 under mixed precision: float16 probabilities lose the small votes.
    probs = layers.Activation("softmax", name="probs", dtype="float32")(logits)
    model = keras.Model([inputs[n] for n in names], probs, name=f"hms_{cfg.backbone}")
    if cfg.bn_momentum > 0:
        # Keras' 0.99 needs hundreds of steps before the moving statistics used at validation
        # match the batches; a short run from scratch has fewer, so inference-mode outputs lag.
        for layer in _all_layers(model):
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = cfg.bn_momentum
    return model


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found += _all_layers(layer)
    return found
