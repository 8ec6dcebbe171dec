"""Model inputs of HMS rows: the spectrogram image (EEG chain tiles, with the Kaggle 10-minute
spectrogram tiles beside them) and the raw montage, in batches.

This is the one place that joins :mod:`hmsbrain.hms.layout` (which window of which file) to
the signal processing (:mod:`hmsbrain.hms.preprocess`, :mod:`hmsbrain.dsp`); training,
prediction and the Kaggle kernel all call it, so their inputs cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hmsbrain.config import PreprocessConfig
from hmsbrain.core.inputs import ALL_INPUTS, IMAGE_INPUT, KAGGLE_INPUT, Batch
from hmsbrain.dsp.parallel import map_batch
from hmsbrain.dsp.pipeline import montage_inputs
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.preprocess import HMS_MONTAGE, clean_montage, kaggle_tiles


def uses_spectrogram(cfg: PreprocessConfig, names: Sequence[str]) -> bool:
    """Whether inputs ``names`` need the Kaggle spectrogram files (only the image shows them)."""
    return bool({IMAGE_INPUT, KAGGLE_INPUT} & set(names)) and cfg.use_kaggle_spectrogram


def window_inputs(
    eeg_windows: np.ndarray,
    spec_windows: Sequence[np.ndarray] | None,
    cfg: PreprocessConfig,
    names: Sequence[str] = ALL_INPUTS,
) -> Batch:
    """Raw windows ``(rows, 10000, 20)`` (+ Kaggle windows) -> the model inputs ``names``."""
    montage = map_batch(lambda eeg: clean_montage(eeg, cfg), np.asarray(eeg_windows))
    kaggle = None
    if uses_spectrogram(cfg, names):
        if spec_windows is None:
            raise ValueError("preprocess.use_kaggle_spectrogram is on but no spectrogram was given")
        kaggle = np.stack([kaggle_tiles(s, cfg) for s in spec_windows])
    return montage_inputs(montage, HMS_MONTAGE, cfg, names, side_tiles=kaggle)


def row_inputs(
    data: HMSData, rows: Sequence[int], cfg: PreprocessConfig, names: Sequence[str] = ALL_INPUTS
) -> Batch:
    """Inputs ``names`` of the given rows of ``data``; only the files they need are read."""
    eeg = np.stack([data.eeg_window(i) for i in rows])
    spec = [data.spectrogram_window(i) for i in rows] if uses_spectrogram(cfg, names) else None
    return window_inputs(eeg, spec, cfg, names)
