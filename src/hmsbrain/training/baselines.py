"""The classical baseline fitted in the same folds as the network: log band power per channel
plus a logistic regression (:mod:`hmsbrain.models.bandpower`), its fit read in chunks so memory
stays small whatever the dataset's size."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from hmsbrain.config import Config
from hmsbrain.core.inputs import RAW_INPUT
from hmsbrain.core.predict import BatchSource
from hmsbrain.data.dataset import Dataset
from hmsbrain.models.bandpower import BandpowerFit, Periodogram, fit_features

BASELINE_MAX_ROWS = 20_000  # rows the band-power baseline is fitted on (enough for 7 x 20 terms)
CHUNK = 512  # rows read at a time


def fit_rows(cfg: Config, train_rows: pd.DataFrame) -> np.ndarray:
    """The training rows a fitted model learns from: all of them, or a seeded sample of
    :data:`BASELINE_MAX_ROWS`."""
    index = train_rows.index.to_numpy()
    if len(index) > BASELINE_MAX_ROWS:
        index = np.sort(np.random.default_rng(cfg.train.seed).choice(index, BASELINE_MAX_ROWS))
    return index


def sample_weights(cfg: Config, targets: np.ndarray) -> np.ndarray | None:
    """Inverse class frequency with ``train.class_weights=balanced``, else None."""
    if cfg.train.class_weights != "balanced":
        return None
    counts = np.bincount(targets.argmax(axis=1), minlength=targets.shape[1])
    return (len(targets) / np.maximum(counts, 1))[targets.argmax(axis=1)]


def raw_chunks(inputs: BatchSource, index: np.ndarray) -> Iterator[np.ndarray]:
    """The raw inputs of ``index``, :data:`CHUNK` rows at a time."""
    for start in range(0, len(index), CHUNK):
        yield inputs.batch(index[start : start + CHUNK])[RAW_INPUT]


def fit_bandpower(
    cfg: Config,
    data: Dataset,
    inputs: BatchSource,
    train_rows: pd.DataFrame,
    raw_len: int,
    sample_rate: float,
) -> BandpowerFit:
    """The band-power baseline fitted on the training folds' rows (:func:`fit_rows`), on raw
    inputs of ``raw_len`` samples at ``sample_rate``."""
    index = fit_rows(cfg, train_rows)
    period = Periodogram.of(raw_len, sample_rate, cfg.model.bandpower.bands)
    features = np.concatenate([period.features(raw) for raw in raw_chunks(inputs, index)])
    targets = data.row_targets(train_rows.loc[index])
    groups = train_rows.loc[index, "group"].to_numpy()
    weights = sample_weights(cfg, targets)
    return fit_features(features, targets, period, cfg.model.bandpower.cs, weights, groups)


def predict_bandpower(fit: BandpowerFit, inputs: BatchSource, rows: np.ndarray) -> np.ndarray:
    """The fitted baseline's probabilities for ``rows``."""
    return np.concatenate([fit.predict(raw) for raw in raw_chunks(inputs, rows)])
