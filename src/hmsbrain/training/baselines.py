"""The classical baselines fitted in the same folds as the network (``train.baseline``): log band
power per channel plus a logistic regression (:mod:`hmsbrain.models.bandpower`), and the
Riemannian tangent space of the channel covariance plus the same classifier
(:mod:`hmsbrain.models.tangent`). Both read the training rows' raw inputs in chunks, so memory
stays small whatever the dataset's size."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import pandas as pd

from hmsbrain.config import Config
from hmsbrain.core.inputs import RAW_INPUT
from hmsbrain.core.predict import BatchSource
from hmsbrain.data.dataset import Dataset
from hmsbrain.models.bandpower import BandpowerFit, Periodogram, fit_features
from hmsbrain.models.tangent import TangentFit, fit_tangent_space

BASELINE_MAX_ROWS = 20_000  # rows a baseline is fitted on (enough for 7 x 20 terms)
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


def fit_tangent(
    cfg: Config, data: Dataset, inputs: BatchSource, train_rows: pd.DataFrame
) -> TangentFit:
    """The tangent-space baseline fitted on the training folds' rows (:func:`fit_rows`); its
    reference point is their Riemannian mean. Its L2 strengths are band power's
    (``model.bandpower.cs``), so the two are chosen alike."""
    index = fit_rows(cfg, train_rows)
    targets = data.row_targets(train_rows.loc[index])
    groups = train_rows.loc[index, "group"].to_numpy()
    weights = sample_weights(cfg, targets)
    chunks = raw_chunks(inputs, index)
    return fit_tangent_space(chunks, targets, cfg.model.bandpower.cs, weights, groups)


class BaselineFit(Protocol):
    """What a fitted baseline offers its fold: probabilities of raw epochs, and the inverse L2
    strength it chose (reported in the fold summary)."""

    c: float

    def predict(self, raw: np.ndarray) -> np.ndarray: ...


def fit_baselines(
    cfg: Config,
    data: Dataset,
    inputs: BatchSource,
    train_rows: pd.DataFrame,
    raw_len: int,
    sample_rate: float,
) -> dict[str, BaselineFit]:
    """Every baseline ``train.baseline`` names, by name, fitted on the training folds' rows."""
    fits: dict[str, BaselineFit] = {}
    for name in cfg.train.baseline:
        if name == "bandpower":
            fits[name] = fit_bandpower(cfg, data, inputs, train_rows, raw_len, sample_rate)
        else:
            fits[name] = fit_tangent(cfg, data, inputs, train_rows)
    return fits


def predict_baseline(fit: BaselineFit, inputs: BatchSource, rows: np.ndarray) -> np.ndarray:
    """A fitted baseline's probabilities for ``rows``."""
    return np.concatenate([fit.predict(raw) for raw in raw_chunks(inputs, rows)])
