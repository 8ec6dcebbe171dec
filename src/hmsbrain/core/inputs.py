"""The model inputs: their names, what each holds, and the ``Batch`` that carries them.

Every model reads some of these inputs, by name:

- ``image``: the image of the signal's views (``preprocess.views``: mel spectrogram, zoomed
  centre, STFT, CWT, the raw signals folded) for ImageNet backbones, ``(rows, H, W, 3)``;
- ``raw``: the clean montage for the 1D models, ``(rows, time, channels)``;
- ``montage``: the clean montage the model turns into its image itself
  (``preprocess.spectrogram=graph``), ``(rows, channels, samples)``;
- ``kaggle``: grey side tiles placed beside that image, ``(rows, H, W)``; an application may
  supply them (HMS: the Kaggle spectrogram of the same channel groups).

Which ones a model reads follows from the model config alone, so the data side computes,
caches and reads only those, and an inference notebook knows them without importing
TensorFlow. A :class:`Batch` maps each input's name to its array, so adding an input kind never
means adding a field to every place that copies a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hmsbrain.config import (
    RAW_BACKBONE_NAMES,
    Config,
    ConfigError,
    ModelConfig,
    PreprocessConfig,
)

IMAGE_INPUT = "image"
RAW_INPUT = "raw"
MONTAGE_INPUT = "montage"
KAGGLE_INPUT = "kaggle"
# What each input holds, per row (for messages and the architecture notes).
INPUT_LAYOUTS = {
    IMAGE_INPUT: "(H, W, 3) spectrogram image",
    RAW_INPUT: "(time, channels) clean montage",
    MONTAGE_INPUT: "(channels, samples) clean montage, turned into the image in the graph",
    KAGGLE_INPUT: "(H, W) grey side tiles beside the graph image",
}
ALL_INPUTS = (IMAGE_INPUT, RAW_INPUT)
WAVENET = "wavenet"  # the backbone name of the 1D WaveNet branch alone
# The views the model can compute itself (preprocess.spectrogram=graph): the others stay on the
# CPU (hmsbrain.dsp.views): stft_signals and cwt have no graph form written yet (the CWT's
# 0.5 Hz wavelets are 13 s long, a convolution the CPU does by FFT), and raw is the samples
# themselves, so the graph would spare the CPU no spectral work.
GRAPH_VIEWS = ("mel",)


class Batch(dict[str, np.ndarray]):
    """Model inputs of some rows, keyed by input name (an input no model reads is absent)."""

    @property
    def rows(self) -> int:
        return len(next(iter(self.values()))) if self else 0

    @classmethod
    def stack(cls, parts: Mapping[int, Batch], rows: Sequence[int], template: Batch) -> Batch:
        """One batch of ``rows`` from one-row batches ``parts`` (keyed by row); a row without a
        part gets zeros shaped like ``template``'s rows, in every input ``template`` holds."""
        return cls(
            {
                name: np.stack(
                    [parts[r][name][0] if r in parts else np.zeros_like(value[0]) for r in rows]
                )
                for name, value in template.items()
            }
        )


def model_inputs(cfg: ModelConfig, preprocess: PreprocessConfig | None = None) -> tuple[str, ...]:
    """Names of the inputs a model built from ``cfg`` reads, in order. Only these are computed
    and cached, and only the files they need are read: a WaveNet run never opens a side
    spectrogram. With ``preprocess.spectrogram=graph`` an image model reads the clean montage
    (and, where the application has them, the side tiles) and builds its image itself."""
    if cfg.backbone in RAW_BACKBONE_NAMES:
        return (RAW_INPUT,)
    image: tuple[str, ...] = (IMAGE_INPUT,)
    if preprocess is not None and preprocess.spectrogram == "graph":
        if set(preprocess.views) - set(GRAPH_VIEWS):
            raise ConfigError(
                f"preprocess.views={preprocess.views}: preprocess.spectrogram=graph computes "
                f"only {list(GRAPH_VIEWS)} in the model; use preprocess.spectrogram=cpu"
            )
        kaggle = (KAGGLE_INPUT,) if preprocess.use_kaggle_spectrogram else ()
        image = (MONTAGE_INPUT, *kaggle)
    return (*image, RAW_INPUT) if cfg.use_wavenet else image


def cached_inputs(cfg: Config) -> tuple[str, ...]:
    """The inputs a run preprocesses and caches: its model's, plus the raw montage when the
    band-power baseline is fitted beside it. Training, export and prediction all ask for these,
    so they share one cache per split."""
    names = model_inputs(cfg.model, cfg.preprocess)
    return tuple(dict.fromkeys((*names, RAW_INPUT))) if cfg.train.baseline else names
