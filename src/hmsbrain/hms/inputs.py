"""Model inputs of a dataset's rows: the spectrogram image and the raw montage, in batches.

This is the one place that joins :mod:`hmsbrain.hms.layout` (which window of which file) to
:mod:`hmsbrain.hms.preprocess` (what to compute from it); training, prediction and the Kaggle kernel
all call it, so their inputs cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmsbrain.config import Config, ModelConfig, PreprocessConfig
from hmsbrain.hms import demo
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.preprocess import (
    build_image,
    clean_montage,
    kaggle_tiles,
    map_batch,
    montage_tiles,
    raw_signal,
)

log = logging.getLogger(__name__)

IMAGE_INPUT = "image"
RAW_INPUT = "raw"
WAVENET = "wavenet"  # the backbone name of the 1D branch alone
ALL_INPUTS = (IMAGE_INPUT, RAW_INPUT)


def model_inputs(cfg: ModelConfig) -> tuple[str, ...]:
    """Names of the inputs a model built from ``cfg`` reads, in order. Only these are computed
    and cached, and only the files they need are read: a WaveNet run never opens a Kaggle
    spectrogram. (Here rather than in :mod:`hmsbrain.models.registry`, which imports Keras.)"""
    if cfg.backbone == WAVENET:
        return (RAW_INPUT,)
    return (IMAGE_INPUT, RAW_INPUT) if cfg.use_wavenet else (IMAGE_INPUT,)


def resolve_data_dir(cfg: Config) -> Path:
    """``data.data_dir``, or the demo dataset (generated on first use) when it is empty."""
    if cfg.data.data_dir:
        return Path(cfg.data.data_dir)
    root = demo.ensure_demo(cfg.data.demo_dir, cfg.data.demo_seed)
    log.info("no data.data_dir given: using the embedded demo dataset at %s", root)
    return root


@dataclass
class Batch:
    """Model inputs of some rows; an input the model does not read is None (never computed)."""

    image: np.ndarray | None  # (rows, H, W, 3) float32
    raw: np.ndarray | None  # (rows, time, 16) float32

    def as_dict(self) -> dict[str, np.ndarray]:
        return {
            k: v for k, v in ((IMAGE_INPUT, self.image), (RAW_INPUT, self.raw)) if v is not None
        }


def uses_spectrogram(cfg: PreprocessConfig, names: Sequence[str]) -> bool:
    """Whether inputs ``names`` need the Kaggle spectrogram files (only the image shows them)."""
    return IMAGE_INPUT in names and cfg.use_kaggle_spectrogram


def window_inputs(
    eeg_windows: np.ndarray, spec_windows: Sequence[np.ndarray] | None, cfg: PreprocessConfig,
    names: Sequence[str] = ALL_INPUTS,
) -> Batch:  # fmt: skip
    """Raw windows ``(rows, 10000, 20)`` (+ Kaggle windows) -> the model inputs ``names``."""
    montage = map_batch(lambda eeg: clean_montage(eeg, cfg), np.asarray(eeg_windows))
    image = None
    if IMAGE_INPUT in names:
        tiles = map_batch(lambda m: montage_tiles(m, cfg), montage)
        kaggle = None
        if uses_spectrogram(cfg, names):
            if spec_windows is None:
                raise ValueError(
                    "preprocess.use_kaggle_spectrogram is on but no spectrogram was given"
                )
            kaggle = np.stack([kaggle_tiles(s, cfg) for s in spec_windows])
        image = build_image(tiles, kaggle)
    raw = raw_signal(montage, cfg) if RAW_INPUT in names else None
    return Batch(image=image, raw=raw)


def row_inputs(
    data: HMSData, rows: Sequence[int], cfg: PreprocessConfig, names: Sequence[str] = ALL_INPUTS
) -> Batch:
    """Inputs ``names`` of the given rows of ``data``; only the files they need are read."""
    eeg = np.stack([data.eeg_window(i) for i in rows])
    spec = [data.spectrogram_window(i) for i in rows] if uses_spectrogram(cfg, names) else None
    return window_inputs(eeg, spec, cfg, names)


def iter_inputs(
    data: HMSData, cfg: PreprocessConfig, batch_size: int = 32, rows: Sequence[int] | None = None,
    names: Sequence[str] = ALL_INPUTS,
) -> Iterator[tuple[np.ndarray, Batch]]:  # fmt: skip
    """``(row indices, Batch)`` over ``rows`` (default: all), ``batch_size`` rows at a time."""
    order = np.arange(len(data)) if rows is None else np.asarray(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        yield chunk, row_inputs(data, chunk, cfg, names)
