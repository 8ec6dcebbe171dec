"""The classical members of the portfolio: scikit-learn and pyRiemann pipelines fitted on whole
epochs at the recording's own rate.

The networks read 128 Hz crops band-passed to 40 Hz; these members read every epoch whole, as a
researcher's plain pipeline does, so nothing the networks' recipe throws away (a 60 Hz spike
component at 173 Hz, a 10 s seizure's evolution) is lost to them. Each is a featurizer, then a
classifier:

- ``bandpower_lr``: log absolute and log relative Welch power in fine bands (1 Hz wide to 8 Hz,
  2 Hz to 30 Hz, 5 Hz above, up to 0.45 x the rate and at most :data:`FMAX`), so a 20 Hz and a
  30 Hz rhythm, or an alpha peak at 9 or 11 Hz, fall in different features; relative power is
  free of each subject's overall amplitude. Into a logistic regression.
- ``tangent_lr``: OAS channel covariances mapped to the Riemannian tangent space at the training
  epochs' mean (Barachant et al. 2013), into a logistic regression (two channels or more).
- ``xdawn_lr``: xDAWN-filtered covariances (Rivet et al. 2009; pyRiemann's
  ``XdawnCovariances``), the ERP standard: the filters enhance each class's evoked response
  before the tangent space (two channels or more).
- ``features_gbt``: gradient-boosted trees (LightGBM) on waveform features: wavelet sub-band
  statistics (PyWavelets), Hjorth parameters, line length, zero crossings, moments, amplitude
  quantiles, and the band powers above. Trees find the non-linear thresholds (a spike's
  amplitude, a sharp wave's slope) a linear model cannot.

Every logistic regression is :func:`hmsbrain.models.linear.logistic`: soft targets as weighted
copies, the L2 strength chosen by log loss in grouped inner folds. The fitted member is one
picklable :class:`ClassicalModel` (``model.joblib`` in a fold's folder) that predicts new epochs
at its own rate and channels; these members run in Python (scikit-learn has no ONNX export of
pyRiemann's matrix logarithms), which the export says.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import joblib
import numpy as np
import pywt
import scipy.signal
import scipy.stats
from sklearn.dummy import DummyClassifier
from sklearn.preprocessing import StandardScaler

from hmsbrain.atomic import atomic_path
from hmsbrain.models.linear import LOG_FLOOR, inner_score, logistic, soft_rows, strength

CLASSICAL_MEMBERS = ("bandpower_lr", "tangent_lr", "xdawn_lr", "features_gbt")
SPATIAL = ("tangent_lr", "xdawn_lr")  # need two channels or more
CLASSIC_BANDS = (1.0, 4.0, 8.0, 13.0, 20.0, 30.0, 45.0)  # Hz: delta .. gamma, as most papers
FMAX = 100.0  # Hz: the top of the spectral features (scalp EEG above it is muscle and mains)
COVARIANCE_FMAX = 45.0  # Hz: covariances above it are dominated by muscle, as in MOABB's pipelines
BAND_LOW = 0.5  # Hz: the band-pass's lower edge (drifts below it carry no class)
WELCH_SECONDS = 2.0  # Welch segment: 0.5 Hz resolution, or the whole epoch when shorter
WAVELET = "db4"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TREE_FEATURES = 256  # features_gbt: the most features one tree draws from


class ClassicalError(ValueError):
    """Epochs a classical member cannot read (other channels than it was fitted on)."""


def top_frequency(sfreq: float, cap: float = FMAX) -> float:
    """The highest frequency a member at ``sfreq`` reads: 0.45 x the rate (the filter's margin
    below Nyquist), at most ``cap``."""
    return min(0.45 * sfreq, cap)


def band_edges(sfreq: float, resolution: str = "fine") -> np.ndarray:
    """Band edges up to :func:`top_frequency`: ``fine``, 1 Hz wide from 1 to 8 Hz, 2 Hz to
    30 Hz, 5 Hz above; ``classic``, the delta-theta-alpha-beta-gamma bands of
    :data:`CLASSIC_BANDS`."""
    if resolution == "classic":
        edges = np.asarray(CLASSIC_BANDS, float)
    else:
        edges = np.concatenate([np.arange(1, 8), np.arange(8, 30, 2), np.arange(30, FMAX + 1, 5)])
    top = top_frequency(sfreq)
    return np.append(edges[edges < top], min(top, edges[-1])).astype(float)


def band_powers(x: np.ndarray, sfreq: float, edges: np.ndarray) -> np.ndarray:
    """Mean Welch power ``(n, channels, bands)`` of ``x`` ``(n, channels, samples)`` in the
    bands of ``edges`` that hold a frequency bin of the segment (a short epoch's coarse
    resolution leaves the narrow low bands out; their power is in the neighbours)."""
    nperseg = min(x.shape[-1], round(WELCH_SECONDS * sfreq))
    freqs, power = scipy.signal.welch(x, fs=sfreq, nperseg=nperseg, axis=-1)
    columns = []
    for lo, hi in itertools.pairwise(edges):
        inside = (freqs >= lo) & (freqs < hi)
        if inside.any():
            columns.append(power[..., inside].mean(axis=-1))
    return np.stack(columns, axis=-1)


def spectral_features(x: np.ndarray, sfreq: float, resolution: str = "fine") -> np.ndarray:
    """Log absolute and log relative band power per channel in the bands of
    :func:`band_edges`, ``(n, channels * 2 * bands)``."""
    power = band_powers(x, sfreq, band_edges(sfreq, resolution))
    relative = power / np.maximum(power.sum(axis=-1, keepdims=True), LOG_FLOOR)
    both = np.concatenate([np.log(power + LOG_FLOOR), np.log(relative + LOG_FLOOR)], axis=-1)
    return both.reshape(len(x), -1)


def _log(values: np.ndarray) -> np.ndarray:
    return np.log(np.abs(values) + LOG_FLOOR)


def wavelet_features(x: np.ndarray, sfreq: float) -> np.ndarray:
    """Per channel and wavelet sub-band (``db4``, down to about 1 Hz): log mean absolute
    coefficient, log standard deviation, skewness, kurtosis, log mean absolute difference, and
    the sub-band's share of the energy; ``(n, channels * 6 * sub-bands)``."""
    wanted = max(1, int(np.log2(sfreq / 2)))  # the coarsest detail band ends near 1 Hz
    level = max(1, min(wanted, pywt.dwt_max_level(x.shape[-1], pywt.Wavelet(WAVELET).dec_len)))
    coeffs = pywt.wavedec(x, WAVELET, level=level, axis=-1)
    energy = np.stack([(c**2).sum(axis=-1) for c in coeffs], axis=-1)
    share = energy / np.maximum(energy.sum(axis=-1, keepdims=True), LOG_FLOOR)
    per_band = [
        np.stack(
            [
                _log(np.abs(c).mean(axis=-1)),
                _log(c.std(axis=-1)),
                np.nan_to_num(scipy.stats.skew(c, axis=-1)),
                np.nan_to_num(scipy.stats.kurtosis(c, axis=-1)),
                _log(np.abs(np.diff(c, axis=-1)).mean(axis=-1)),
            ],
            axis=-1,
        )
        for c in coeffs
    ]
    stats = np.concatenate([np.stack(per_band, axis=-2), np.log(share + LOG_FLOOR)[..., None]], -1)
    return stats.reshape(len(x), -1)


def time_features(x: np.ndarray) -> np.ndarray:
    """Per channel: log variance, Hjorth mobility and complexity (log), log line length, the
    zero-crossing rate, skewness, kurtosis and amplitude quantiles over the standard deviation;
    ``(n, channels * 14)``."""
    d1, d2 = np.diff(x, axis=-1), np.diff(x, n=2, axis=-1)
    v0, v1, v2 = x.var(axis=-1), d1.var(axis=-1), d2.var(axis=-1)
    mobility = np.sqrt(v1 / np.maximum(v0, LOG_FLOOR))
    complexity = np.sqrt(v2 / np.maximum(v1, LOG_FLOOR)) / np.maximum(mobility, LOG_FLOOR)
    sd = np.sqrt(np.maximum(v0, LOG_FLOOR))
    quantiles = np.quantile(x, QUANTILES, axis=-1) / sd
    columns = [
        _log(v0),
        _log(mobility),
        _log(complexity),
        _log(np.abs(d1).mean(axis=-1)),
        (np.diff(np.signbit(x), axis=-1) != 0).mean(axis=-1),
        np.nan_to_num(scipy.stats.skew(x, axis=-1)),
        np.nan_to_num(scipy.stats.kurtosis(x, axis=-1)),
        *quantiles,
    ]
    return np.stack(columns, axis=-1).reshape(len(x), -1)


class Featurizer(Protocol):
    def transform(self, x: np.ndarray) -> np.ndarray: ...


@dataclass
class Spectral:
    """``bandpower_lr``'s features, at the band resolution its inner folds chose."""

    sfreq: float
    resolution: str  # "fine" or "classic" (band_edges)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return spectral_features(x, self.sfreq, self.resolution)


@dataclass
class Waveform:
    """``features_gbt``'s features."""

    sfreq: float

    def transform(self, x: np.ndarray) -> np.ndarray:
        wavelets, spectrum = wavelet_features(x, self.sfreq), spectral_features(x, self.sfreq)
        return np.concatenate([wavelets, time_features(x), spectrum], axis=1)


@dataclass
class Tangent:
    """Fitted covariances (plain OAS, or xDAWN-filtered) and their tangent space."""

    covariances: object  # pyriemann.estimation.Covariances or XdawnCovariances, fitted
    tangent: object  # pyriemann.tangentspace.TangentSpace, fitted

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self.tangent.transform(self.covariances.transform(x))  # type: ignore[attr-defined]


@dataclass
class Head:
    """A classifier over features: standardised into a logistic regression, or trees; it
    predicts every class of the run, a class absent from the training epochs with zero."""

    scaler: StandardScaler | None
    classifier: object  # a fitted scikit-learn classifier with predict_proba
    n_classes: int
    c: float | None = None  # the logistic regression's chosen inverse L2 strength
    score: float | None = None  # its negated log loss in the inner folds

    def predict(self, features: np.ndarray) -> np.ndarray:
        x = features if self.scaler is None else self.scaler.transform(features)
        probs = np.zeros((len(features), self.n_classes))
        probs[:, self.classifier.classes_] = self.classifier.predict_proba(x)  # type: ignore[attr-defined]
        return probs


@dataclass
class ClassicalModel:
    """A fitted classical member: band-pass, featurizer and head, at the rate and channels it
    was fitted on."""

    name: str
    sfreq: float
    channels: tuple[str, ...]
    band: tuple[float, float]
    featurizer: Featurizer
    head: Head

    def predict(self, signals: np.ndarray, channels: Sequence[str] | None = None) -> np.ndarray:
        """Class probabilities of epochs ``(n, channels, samples)`` in microvolts at the
        member's rate; ``channels`` (default: the member's own order) are reordered to the
        member's, and a missing one is a :class:`ClassicalError`."""
        if channels is not None and tuple(channels) != self.channels:
            missing = [c for c in self.channels if c not in channels]
            if missing:
                raise ClassicalError(
                    f"the {self.name} member was fitted on channels {list(self.channels)}; "
                    f"these epochs lack {missing}"
                )
            signals = signals[:, [list(channels).index(c) for c in self.channels]]
        x = band_pass(signals, self.sfreq, self.band)
        return self.head.predict(self.featurizer.transform(x))


def save_classical(model: ClassicalModel, path: Path) -> None:
    """``model`` as a joblib file at ``path``, written atomically."""
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp)


def load_classical(path: Path) -> ClassicalModel:
    """A member saved by :func:`save_classical`."""
    return joblib.load(path)


def band_pass(signals: np.ndarray, sfreq: float, band: tuple[float, float]) -> np.ndarray:
    """Zero-phase 4th-order Butterworth band-pass along the last axis, in float64 (covariances
    and their matrix logarithm need the digits)."""
    sos = scipy.signal.butter(4, band, btype="bandpass", fs=sfreq, output="sos")
    return scipy.signal.sosfiltfilt(sos, np.asarray(signals, np.float64), axis=-1)


@dataclass(frozen=True)
class ClassicalSettings:
    """What the members' fits take from the config (``portfolio.*``)."""

    cs: tuple[float, ...]  # inverse L2 strengths the logistic regressions choose from
    xdawn_filters: int
    gbt_iterations: int
    gbt_learning_rate: float
    gbt_leaves: int
    gbt_min_leaf: int
    seed: int


def fit_classical(
    name: str,
    signals: np.ndarray,
    sfreq: float,
    channels: Sequence[str],
    targets: np.ndarray,
    settings: ClassicalSettings,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> ClassicalModel:
    """Member ``name`` (:data:`CLASSICAL_MEMBERS`) fitted on epochs ``(n, channels, samples)``
    at ``sfreq`` with target distributions ``(n, K)``; ``weights`` scale each epoch (class
    balance), ``groups`` keep each subject on one side of the inner folds."""
    if name in SPATIAL and signals.shape[1] < 2:
        raise ClassicalError(f"{name} needs two channels or more, the epochs have one")
    covariance = name in SPATIAL
    band = (BAND_LOW, top_frequency(sfreq, COVARIANCE_FMAX if covariance else FMAX))
    x = band_pass(signals, sfreq, band)
    featurizer: Featurizer
    if name == "bandpower_lr":
        featurizer, head = _fit_spectral(x, sfreq, targets, weights, groups, settings.cs)
    elif name == "features_gbt":
        featurizer = Waveform(sfreq)
        head = _fit_trees(featurizer.transform(x), targets, weights, settings)
    else:
        featurizer = _fit_tangent(name, x, targets, settings.xdawn_filters)
        head = _fit_linear(featurizer.transform(x), targets, weights, groups, settings.cs)
    return ClassicalModel(name, sfreq, tuple(channels), band, featurizer, head)


def _fit_spectral(
    x: np.ndarray,
    sfreq: float,
    targets: np.ndarray,
    weights: np.ndarray | None,
    groups: np.ndarray | None,
    cs: Sequence[float],
) -> tuple[Spectral, Head]:
    """Fine bands or the classic ones, whichever scores the lower log loss in the inner folds:
    a single channel's spectrum gains from 1 Hz detail (an alpha peak at 9 or 11 Hz), while 64
    channels x 60 fine bands over-fit 30 training epochs that 64 x 12 classic ones do not."""
    fits = []
    for resolution in ("fine", "classic"):
        featurizer = Spectral(sfreq, resolution)
        head = _fit_linear(featurizer.transform(x), targets, weights, groups, cs)
        fits.append((head.score if head.score is not None else -np.inf, featurizer, head))
    _, featurizer, head = max(fits, key=lambda fit: fit[0])
    return featurizer, head


def _fit_tangent(name: str, x: np.ndarray, targets: np.ndarray, filters: int) -> Tangent:
    from pyriemann.estimation import Covariances, XdawnCovariances
    from pyriemann.tangentspace import TangentSpace

    labels = targets.argmax(axis=1)
    if name == "xdawn_lr" and len(np.unique(labels)) > 1:
        covariances = XdawnCovariances(filters, estimator="oas").fit(x, labels)
    else:  # one class in the training epochs: xDAWN has no contrast to filter for
        covariances = Covariances(estimator="oas").fit(x)
    covs = covariances.transform(x)
    return Tangent(covariances, TangentSpace(metric="riemann").fit(covs))


def _fit_linear(
    features: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray | None,
    groups: np.ndarray | None,
    cs: Sequence[float],
) -> Head:
    scaler = StandardScaler().fit(features)
    x = scaler.transform(features)
    rows, classes, sample_weight = soft_rows(targets, weights)
    if len(np.unique(classes)) == 1:  # one class in the fold: predict it
        prior = DummyClassifier(strategy="prior").fit(x[rows], classes)
        return Head(scaler, prior, targets.shape[1])
    clf = logistic(x, rows, classes, sample_weight, cs, groups)
    return Head(scaler, clf, targets.shape[1], strength(clf), inner_score(clf))


def _fit_trees(
    features: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray | None,
    settings: ClassicalSettings,
) -> Head:
    rows, classes, sample_weight = soft_rows(targets, weights)
    if len(np.unique(classes)) == 1:
        return Head(
            None, DummyClassifier(strategy="prior").fit(features[rows], classes), targets.shape[1]
        )
    import lightgbm

    # Shallow trees, a slow rate and L2 on the leaves: a few hundred epochs of many features
    # overfit deeper trees; no early stopping, which would hold out a tenth of an already small
    # training set. Each tree draws at most TREE_FEATURES features, so 64 channels x 116
    # features cost what 2 channels do. One thread: OpenMP's workers spin, and beside any other
    # busy process (a network's input pipeline, a second run) two threads ran 10x slower.
    clf = lightgbm.LGBMClassifier(
        n_estimators=settings.gbt_iterations,
        learning_rate=settings.gbt_learning_rate,
        num_leaves=settings.gbt_leaves,
        min_child_samples=settings.gbt_min_leaf,
        reg_lambda=1.0,
        colsample_bytree=min(1.0, TREE_FEATURES / features.shape[1]),
        subsample_freq=0,
        n_jobs=1,
        random_state=settings.seed,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    ).fit(features[rows], classes, sample_weight=sample_weight)
    return Head(None, clf, targets.shape[1])
