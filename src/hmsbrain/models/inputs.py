"""The names of model inputs and the batch that carries them; no Keras here.

Every model reads ``image`` (a spectrogram image for ImageNet backbones), ``raw`` (the clean
montage, time by channels) or both. Which ones follows from the model config alone, so the data
side computes, caches and reads only those, and the Kaggle notebook can know them without
importing TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hmsbrain.config import Config, ModelConfig, PreprocessConfig

IMAGE_INPUT = "image"
RAW_INPUT = "raw"
MONTAGE_INPUT = "montage"  # the clean montage the model turns into the image itself
KAGGLE_INPUT = "kaggle"  # HMS: the Kaggle spectrogram tiles beside that image (grey)
ALL_INPUTS = (IMAGE_INPUT, RAW_INPUT)
WAVENET = "wavenet"  # the backbone name of the 1D WaveNet branch alone
# Backbones that read the raw montage only.
RAW_BACKBONES = (WAVENET, "eegnet", "shallow", "bandpower")


def model_inputs(cfg: ModelConfig, preprocess: PreprocessConfig | None = None) -> tuple[str, ...]:
    """Names of the inputs a model built from ``cfg`` reads, in order. Only these are computed
    and cached, and only the files they need are read: a WaveNet run never opens a Kaggle
    spectrogram. With ``preprocess.spectrogram=graph`` an image model reads the clean montage
    (and, for HMS, the Kaggle tiles) and builds its image itself."""
    if cfg.backbone in RAW_BACKBONES:
        return (RAW_INPUT,)
    image: tuple[str, ...] = (IMAGE_INPUT,)
    if preprocess is not None and preprocess.spectrogram == "graph":
        kaggle = (KAGGLE_INPUT,) if preprocess.use_kaggle_spectrogram else ()
        image = (MONTAGE_INPUT, *kaggle)
    return (*image, RAW_INPUT) if cfg.use_wavenet else image


def cached_inputs(cfg: Config) -> tuple[str, ...]:
    """The inputs a run preprocesses and caches: its model's, plus the raw montage when the
    band-power baseline is fitted beside it. Training, export and prediction all ask for these,
    so they share one cache per split."""
    names = model_inputs(cfg.model, cfg.preprocess)
    return tuple(dict.fromkeys((*names, RAW_INPUT))) if cfg.train.baseline else names


@dataclass
class Batch:
    """Model inputs of some rows; an input the model does not read is None (never computed)."""

    image: np.ndarray | None  # (rows, H, W, 3) float32
    raw: np.ndarray | None  # (rows, time, channels) float32
    montage: np.ndarray | None = None  # (rows, channels, samples) float32, clean
    kaggle: np.ndarray | None = None  # (rows, H, W) float32, grey

    def as_dict(self) -> dict[str, np.ndarray]:
        pairs = (
            (IMAGE_INPUT, self.image),
            (RAW_INPUT, self.raw),
            (MONTAGE_INPUT, self.montage),
            (KAGGLE_INPUT, self.kaggle),
        )
        return {k: v for k, v in pairs if v is not None}
