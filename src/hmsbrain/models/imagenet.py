"""ImageNet backbones over the spectrogram image, from ``keras.applications``, registered by
name; pretrained weights download online or load from a local file, with a clear error offline.
"""

from __future__ import annotations

from pathlib import Path

import keras

from hmsbrain.config import ModelConfig, model_kwargs
from hmsbrain.models.base import MODELS, register_model


class WeightsError(RuntimeError):
    """Pretrained weights that cannot be had; the message says how to supply them."""


@register_model("effnetv2", reads="image")
def _effnetv2(shape: tuple[int, int, int], weights: str | None, *, size: str = "B0") -> keras.Model:
    app = getattr(keras.applications, f"EfficientNetV2{size}")
    # include_preprocessing=False: inputs are standardised spectrograms, not 0-255 pixels, and the
    # rescaling constants would otherwise surface as extra ONNX graph inputs.
    return app(include_top=False, weights=weights, input_shape=shape, include_preprocessing=False)


@register_model("resnet50v2", reads="image")
def _resnet50v2(shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return keras.applications.ResNet50V2(include_top=False, weights=weights, input_shape=shape)


@register_model("mobilenetv3", reads="image")
def _mobilenetv3(
    shape: tuple[int, int, int], weights: str | None, *, size: str = "large"
) -> keras.Model:
    app = (
        keras.applications.MobileNetV3Large
        if size == "large"
        else keras.applications.MobileNetV3Small
    )
    return app(include_top=False, weights=weights, input_shape=shape, include_preprocessing=False)


@register_model("densenet201", reads="image")
def _densenet201(shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return keras.applications.DenseNet201(include_top=False, weights=weights, input_shape=shape)


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
    spec = MODELS.get(cfg.backbone)
    if spec is None or spec.reads != "image":
        images = [name for name, s in MODELS.items() if s.reads == "image"]
        raise ValueError(f"{cfg.backbone!r} is not an image backbone; valid: {images}")
    weights = resolve_weights(cfg.weights)
    try:
        return spec.build(shape, weights, **model_kwargs(cfg, cfg.backbone))
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
        "effnetv2": f"EfficientNetV2{cfg.effnetv2.size}",
        "resnet50v2": "ResNet50V2",
        "mobilenetv3": f"MobileNetV3{cfg.mobilenetv3.size.capitalize()}",
        "densenet201": "DenseNet201",
    }.get(cfg.backbone, cfg.backbone)
