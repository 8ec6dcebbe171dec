"""The classical baseline fitted in the same folds as the network: log band power per channel
plus a logistic regression (:mod:`hmsbrain.models.bandpower`), its fit read in chunks so memory
stays small whatever the dataset's size."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hmsbrain.config import Config
from hmsbrain.core.inputs import RAW_INPUT
from hmsbrain.core.predict import BatchSource
from hmsbrain.data.dataset import Dataset
from hmsbrain.models.bandpower import BandpowerFit, Periodogram, fit_features

BASELINE_MAX_ROWS = 20_000  # rows the band-power baseline is fitted on (enough for 7 x 20 terms)
CHUNK = 512  # rows read at a time


def fit_bandpower(
    cfg: Config,
    data: Dataset,
    inputs: BatchSource,
    train_rows: pd.DataFrame,
    raw_len: int,
    sample_rate: float,
) -> BandpowerFit:
    """The band-power baseline fitted on the training folds' rows (a seeded sample of at most
    :data:`BASELINE_MAX_ROWS`), on raw inputs of ``raw_len`` samples at ``sample_rate``."""
    index = train_rows.index.to_numpy()
    if len(index) > BASELINE_MAX_ROWS:
        index = np.sort(np.random.default_rng(cfg.train.seed).choice(index, BASELINE_MAX_ROWS))
    period = Periodogram.of(raw_len, sample_rate, cfg.model.bandpower.bands)
    features = np.concatenate(
        [
            period.features(inputs.batch(index[s : s + CHUNK])[RAW_INPUT])
            for s in range(0, len(index), CHUNK)
        ]
    )
    targets = data.row_targets(train_rows.loc[index])
    weights = None
    if cfg.train.class_weights == "balanced":
        counts = np.bincount(targets.argmax(axis=1), minlength=targets.shape[1])
        weights = (len(targets) / np.maximum(counts, 1))[targets.argmax(axis=1)]
    groups = train_rows.loc[index, "group"].to_numpy()
    return fit_features(features, targets, period, cfg.model.bandpower.cs, weights, groups)


def predict_bandpower(fit: BandpowerFit, inputs: BatchSource, rows: np.ndarray) -> np.ndarray:
    """The fitted baseline's probabilities for ``rows``."""
    return np.concatenate(
        [
            fit.predict(inputs.batch(rows[s : s + CHUNK])[RAW_INPUT])
            for s in range(0, len(rows), CHUNK)
        ]
    )
