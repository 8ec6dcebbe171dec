"""HMS windows -> clean montage and spectrogram tiles, with the parts only HMS has: the
20-column Kaggle window, its missing stretches and the Kaggle 10-minute spectrogram tiles. The
hemisphere swap of a batch is the generic one (:mod:`hmsbrain.core.mirror`), with the double
banana's mirror permutations (``HMS_MONTAGE.mirror``, ``HMS_MONTAGE.group_mirror``).

Conventions: a raw EEG window is ``(..., samples, 20)`` float32 in the Kaggle column order; a
montage is ``(..., 16, samples)``, channels first, in the double banana's order (chains LL, RL,
LP, RP; :data:`~hmsbrain.hms.constants.BIPOLAR_PAIRS`); spectrogram tiles are
``(..., 4, n_mels, n_frames)`` in that chain order. The signal processing itself is the generic
:mod:`hmsbrain.dsp` code every dataset uses.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from hmsbrain.config import PreprocessConfig
from hmsbrain.dsp.filters import fill_nan
from hmsbrain.dsp.mel import group_tiles
from hmsbrain.dsp.montage import double_banana
from hmsbrain.dsp.pipeline import clean
from hmsbrain.hms.constants import CHAIN_NAMES, EEG_COLUMNS, SAMPLE_RATE, SPEC_BINS_PER_CHAIN

# The generic double banana of the Kaggle columns: the same 16 derivations, in the order of
# BIPOLAR_PAIRS, grouped into the four chains of the Kaggle spectrogram files.
HMS_MONTAGE = double_banana(EEG_COLUMNS)


def bipolar_montage(eeg: np.ndarray) -> np.ndarray:
    """``(..., samples, 20)`` referential EEG -> ``(..., 16, samples)`` double-banana montage."""
    return HMS_MONTAGE.apply(np.swapaxes(np.asarray(eeg, dtype=np.float32), -1, -2))


def clean_montage(eeg: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """NaN-filled, band-passed, clipped montage in microvolts, ``(..., 16, samples)``."""
    eeg = np.asarray(eeg, dtype=np.float32)
    if not np.isfinite(eeg).all():
        flat = eeg.reshape(-1, *eeg.shape[-2:])
        eeg = np.stack([fill_nan(w) for w in flat]).reshape(eeg.shape)
    return clean(np.swapaxes(eeg, -1, -2), SAMPLE_RATE, HMS_MONTAGE, cfg)


def montage_tiles(montage: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Clean montage ``(..., 16, samples)`` -> chain tiles ``(..., 4, n_mels, n_frames)``: each
    the mean of its four bipolar signals' dB mel spectrograms."""
    return group_tiles(montage, HMS_MONTAGE.groups, cfg)


def eeg_tiles(eeg: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Raw window(s) ``(..., samples, 20)`` -> chain tiles ``(..., 4, n_mels, n_frames)``."""
    return montage_tiles(clean_montage(eeg, cfg), cfg)


def kaggle_log(spec: np.ndarray) -> np.ndarray:
    """Kaggle spectrogram power -> the log power the tiles are made of, with the clip range of
    the public starter kernels (the recording store keeps exactly this)."""
    return np.log(np.clip(np.asarray(spec, dtype=np.float32), np.exp(-4.0), np.exp(8.0)))


def kaggle_tiles(spec: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """A Kaggle spectrogram window ``(rows, 400)`` -> tiles ``(4, n_mels, n_frames)``."""
    return kaggle_tiles_from_log(kaggle_log(spec), cfg)


def kaggle_tiles_from_log(log: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """A window of Kaggle log power ``(rows, 400)`` -> tiles ``(4, n_mels, n_frames)``.

    Standardised over the window and resized to the EEG tile shape so both sources stack into
    one image. NaN (missing rows in real files) becomes 0, the window mean, after standardising.
    """
    mean, std = np.nanmean(log), np.nanstd(log)
    log = np.nan_to_num((log - mean) / (std + 1e-6), nan=0.0)
    # (rows, chain*bins) -> (chain, bins, rows): frequency up the tile, time along it.
    tiles = log.reshape(log.shape[0], len(CHAIN_NAMES), SPEC_BINS_PER_CHAIN).transpose(1, 2, 0)
    zoom = (1.0, cfg.n_mels / tiles.shape[1], cfg.n_frames / tiles.shape[2])
    return scipy.ndimage.zoom(tiles, zoom, order=1, grid_mode=True, mode="nearest").astype(
        np.float32
    )
