"""Epochs of any channel count and rate -> model inputs: resample, montage, band-pass, clip;
then the spectrogram image (one tile per channel group) and the raw branch.

The HMS path (:mod:`hmsbrain.hms.inputs`) runs these same steps on its 20-column windows, after
filling their missing stretches, and adds the Kaggle spectrogram tiles to the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hmsbrain.config import PreprocessConfig
from hmsbrain.core.inputs import IMAGE_INPUT, KAGGLE_INPUT, MONTAGE_INPUT, RAW_INPUT, Batch
from hmsbrain.dsp.filters import bandpass, decimate, resample
from hmsbrain.dsp.image import build_image, stack_tiles
from hmsbrain.dsp.montage import Montage
from hmsbrain.dsp.parallel import map_batch
from hmsbrain.dsp.views import view_tiles

# Bump whenever a change to preprocessing changes what it computes from the same data: the
# input cache is keyed on it, so inputs made by older code are never reused.
PREPROCESS_VERSION = 4


def clean(signals: np.ndarray, fs: float, montage: Montage, cfg: PreprocessConfig) -> np.ndarray:
    """Epochs ``(..., channels, samples)`` in microvolts at ``fs`` -> the clean montage at the
    recipe's rate: resampled, re-referenced, band-passed and clipped (artefacts)."""
    return band_limit(montage.apply(resample(signals, fs, cfg.sample_rate)), cfg)


def band_limit(montage_signals: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """A montage at the recipe's rate, band-passed and clipped: the per-window part of
    :func:`clean` (the recording store keeps montages and filters each window it cuts)."""
    return np.clip(bandpass(montage_signals, cfg), -cfg.clip_uv, cfg.clip_uv)


def raw_branch(montage_signals: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Input of the 1D models from a clean montage: decimated and scaled, ``(..., time, ch)``."""
    decimated = decimate(montage_signals, cfg.raw_downsample)
    return np.swapaxes(decimated / cfg.scale_uv, -1, -2).astype(np.float32)


def montage_inputs(
    clean_signals: np.ndarray,
    montage: Montage,
    cfg: PreprocessConfig,
    names: Sequence[str],
    side_tiles: np.ndarray | None = None,
) -> Batch:
    """Clean montage signals ``(n, montage channels, samples)`` -> the model inputs ``names``:
    the image of ``preprocess.views`` (or, when the model computes it, the montage itself and
    the side tiles stacked like the image's right half) and the raw branch."""
    batch = Batch()
    if IMAGE_INPUT in names:
        tiles = map_batch(lambda m: view_tiles(m, montage.groups, cfg), clean_signals)
        batch[IMAGE_INPUT] = build_image(tiles, side_tiles)
    if MONTAGE_INPUT in names:
        batch[MONTAGE_INPUT] = np.asarray(clean_signals, np.float32)
    if KAGGLE_INPUT in names and side_tiles is not None:
        batch[KAGGLE_INPUT] = stack_tiles(side_tiles)
    if RAW_INPUT in names:
        batch[RAW_INPUT] = raw_branch(clean_signals, cfg)
    return batch


def epoch_inputs(
    signals: np.ndarray,
    fs: float,
    montage: Montage,
    cfg: PreprocessConfig,
    names: Sequence[str],
    crops: tuple[np.ndarray, int] | None = None,
) -> Batch:
    """Epochs ``(n, channels, samples)`` in microvolts at ``fs`` -> the model inputs ``names``.

    ``crops`` = (start of each epoch's crop, crop length), in samples at the recipe's rate: the
    clean epoch is cut after filtering, so a crop has no filter edge of its own."""
    cleaned = map_batch(lambda s: clean(s, fs, montage, cfg), np.asarray(signals, np.float32))
    if crops is not None:
        starts, length = crops
        cleaned = np.stack([c[:, s : s + length] for c, s in zip(cleaned, starts, strict=True)])
    return montage_inputs(cleaned, montage, cfg, names)


def crop_grid(
    n_samples: int, fs: float, crop_seconds: float, stride_seconds: float
) -> tuple[np.ndarray, int]:
    """(start samples, length) of the crops of an epoch of ``n_samples`` at ``fs``: every
    ``stride_seconds`` (default a quarter crop), the last one flush with the epoch's end. A crop
    as long as the epoch or longer is the whole epoch, so one recipe fits short epochs too."""
    length = min(max(1, round(crop_seconds * fs)), n_samples)
    step = max(1, round((stride_seconds or crop_seconds / 4) * fs))
    starts = np.arange(0, n_samples - length + 1, step)
    return np.unique(np.append(starts, n_samples - length)), length
