"""Model inputs of a dataset's rows: the spectrogram image and the raw montage, in batches.

This is the one place that joins :mod:`hmsbrain.dataio` (which window of which file) to
:mod:`hmsbrain.preprocess` (what to compute from it); training, prediction and the Kaggle kernel
all call it, so their inputs cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmsbrain import demo
from hmsbrain.config import Config, PreprocessConfig
from hmsbrain.dataio import HMSData
from hmsbrain.preprocess import (
    build_image,
    clean_montage,
    kaggle_tiles,
    map_batch,
    montage_tiles,
    raw_signal,
)

log = logging.getLogger(__name__)


def resolve_data_dir(cfg: Config) -> Path:
    """``data.data_dir``, or the demo dataset (generated on first use) when it is empty."""
    if cfg.data.data_dir:
        return Path(cfg.data.data_dir)
    root = demo.ensure_demo(cfg.data.demo_dir, cfg.data.demo_seed)
    log.info("no data.data_dir given: using the embedded demo dataset at %s", root)
    return root


@dataclass
class Batch:
    image: np.ndarray  # (rows, H, W, 3) float32
    raw: np.ndarray  # (rows, time, 16) float32


def window_inputs(
    eeg_windows: np.ndarray, spec_windows: Sequence[np.ndarray] | None, cfg: PreprocessConfig
) -> Batch:
    """Raw windows ``(rows, 10000, 20)`` (+ Kaggle windows) -> model inputs, vectorised."""
    montage = map_batch(lambda eeg: clean_montage(eeg, cfg), np.asarray(eeg_windows))
    tiles = map_batch(lambda m: montage_tiles(m, cfg), montage)
    kaggle = None
    if cfg.use_kaggle_spectrogram:
        if spec_windows is None:
            raise ValueError("preprocess.use_kaggle_spectrogram is on but no spectrogram was given")
        kaggle = np.stack([kaggle_tiles(s, cfg) for s in spec_windows])
    return Batch(image=build_image(tiles, kaggle), raw=raw_signal(montage, cfg))


def row_inputs(data: HMSData, rows: Sequence[int], cfg: PreprocessConfig) -> Batch:
    """Inputs of the given rows of ``data``."""
    eeg = np.stack([data.eeg_window(i) for i in rows])
    spec = [data.spectrogram_window(i) for i in rows] if cfg.use_kaggle_spectrogram else None
    return window_inputs(eeg, spec, cfg)


def iter_inputs(
    data: HMSData, cfg: PreprocessConfig, batch_size: int = 32, rows: Sequence[int] | None = None
) -> Iterator[tuple[np.ndarray, Batch]]:
    """``(row indices, Batch)`` over ``rows`` (default: all), ``batch_size`` rows at a time."""
    order = np.arange(len(data)) if rows is None else np.asarray(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        yield chunk, row_inputs(data, chunk, cfg)
