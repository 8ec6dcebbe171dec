"""The classical baseline: log band power per channel, standardised, into a logistic regression.

Every CV table shows it beside the network, fitted in the same folds, so a user sees at once
whether a network beats what spectral power alone gives. It is fitted with scikit-learn, then
written out as a Keras graph with the fitted numbers as fixed weights (Welch periodogram as a
strided convolution with Hann-windowed DFT kernels, band averaging as a matrix, the scaler as a
Normalization layer, the classifier as the logits layer), so ``--backbone bandpower`` runs are
saved, exported to ONNX, served by every runtime and ensembled exactly like network runs, and
give the same probabilities as scikit-learn.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops
from sklearn.preprocessing import StandardScaler

from hmsbrain.core.inputs import RAW_INPUT
from hmsbrain.models.base import register_model
from hmsbrain.models.linear import LOG_FLOOR, logistic, soft_rows, strength

MISSING_CLASS_BIAS = -30.0  # a class absent from the training fold: probability ~1e-13


@dataclass(frozen=True)
class Periodogram:
    """Welch's method on an epoch of ``n_samples``: 1 s Hann frames (the whole epoch when
    shorter) with 50% overlap, power of the DFT bins the bands use, averaged over frames."""

    frame: int
    hop: int
    n_frames: int
    bins: np.ndarray  # DFT bin numbers used
    bands: np.ndarray  # (len(bins), n_bands) averaging matrix
    band_edges: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, n_samples: int, sample_rate: float, edges: Sequence[float]) -> Periodogram:
        frame = min(n_samples, round(sample_rate))
        hop = max(1, frame // 2)
        freqs = np.arange(frame // 2 + 1) * sample_rate / frame
        kept, columns = [], []
        for lo, hi in itertools.pairwise(edges):
            inside = (freqs >= lo) & (freqs < hi)
            if hi <= sample_rate / 2 and inside.any():  # bands beyond Nyquist do not exist
                kept.append((float(lo), float(hi)))
                columns.append(inside / inside.sum())
        if not kept:
            raise ValueError(
                f"no band of {list(edges)} Hz has a DFT bin in a {frame}-sample frame at "
                f"{sample_rate:g} Hz; set model.bandpower.bands"
            )
        matrix = np.stack(columns, axis=1)
        used = np.flatnonzero(matrix.any(axis=1))
        n_frames = 1 + (n_samples - frame) // hop
        return cls(frame, hop, n_frames, used, matrix[used], tuple(kept))

    def dft(self) -> tuple[np.ndarray, np.ndarray]:
        """Hann-windowed cosine and sine kernels ``(frame, bins)``."""
        window = np.hanning(self.frame + 1)[:-1]  # periodic Hann, as scipy.signal.get_window
        angle = 2 * np.pi * np.outer(np.arange(self.frame), self.bins) / self.frame
        return window[:, None] * np.cos(angle), window[:, None] * np.sin(angle)

    def features(self, raw: np.ndarray) -> np.ndarray:
        """``(n, samples, channels)`` -> log band power ``(n, channels * bands)``, channel-major."""
        raw = np.asarray(raw, np.float64)
        starts = np.arange(self.n_frames) * self.hop
        frames = np.stack([raw[:, s : s + self.frame] for s in starts], axis=1)  # n, f, L, C
        cos, sin = self.dft()
        power = np.einsum("nflc,lk->nfkc", frames, cos) ** 2
        power += np.einsum("nflc,lk->nfkc", frames, sin) ** 2
        band = np.einsum("nkc,kb->ncb", power.mean(axis=1), self.bands)
        return np.log(band + LOG_FLOOR).reshape(len(raw), -1)


@dataclass
class BandpowerFit:
    """A fitted baseline: features, scaler and classifier, all as plain arrays."""

    periodogram: Periodogram
    mean: np.ndarray
    var: np.ndarray
    coef: np.ndarray  # (classes, features)
    intercept: np.ndarray  # (classes,)
    c: float  # the inverse L2 strength used

    def logits(self, raw: np.ndarray) -> np.ndarray:
        x = (self.periodogram.features(raw) - self.mean) / np.sqrt(self.var)
        return x @ self.coef.T + self.intercept

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, classes)``: what scikit-learn's ``predict_proba`` gives."""
        z = self.logits(raw)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)


def fit_bandpower(
    raw: np.ndarray,
    targets: np.ndarray,
    sample_rate: float,
    edges: Sequence[float],
    cs: Sequence[float] = (1.0,),
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> BandpowerFit:
    """Fit on ``raw`` epochs ``(n, samples, channels)`` with target distributions ``(n, K)``."""
    period = Periodogram.of(raw.shape[1], sample_rate, edges)
    return fit_features(period.features(raw), targets, period, cs, weights, groups)


def fit_features(
    features: np.ndarray,
    targets: np.ndarray,
    period: Periodogram,
    cs: Sequence[float] = (1.0,),
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> BandpowerFit:
    """Fit on precomputed ``period.features`` (callers with many epochs read them in chunks).

    Soft targets are fitted as weighted hard ones: each epoch once per class it has some
    probability of, weighted by that probability (the multinomial log loss is then the soft
    cross-entropy). ``weights`` scale each epoch (class balancing). With several inverse L2
    strengths ``cs``, the one of lowest weighted log loss in grouped inner folds (``groups``:
    subject or patient per epoch, so no subject is on both sides) is refitted on everything:
    a fixed strength overfits many channels x bands on a few hundred epochs (a log loss far
    above the class prior's) and makes a straw man of the baseline."""
    scaler = StandardScaler().fit(features)
    x = scaler.transform(features)
    rows, classes, sample_weight = soft_rows(targets, weights)
    n_classes = targets.shape[1]
    coef = np.zeros((n_classes, x.shape[1]))
    intercept = np.full(n_classes, MISSING_CLASS_BIAS)
    present = np.unique(classes)
    c = float(cs[-1])
    if len(present) == 1:  # one class in the fold: predict it
        intercept[present[0]] = 0.0
    else:
        clf = logistic(x, rows, classes, sample_weight, cs, groups)
        c = strength(clf)
        if len(present) == 2:  # scikit-learn's binary model is a sigmoid of one logit
            coef[present[1]], intercept[present[0]], intercept[present[1]] = (
                clf.coef_[0],
                0.0,
                clf.intercept_[0],
            )
        else:
            coef[present], intercept[present] = clf.coef_, clf.intercept_
    var = np.where(scaler.var_ > 0, scaler.var_, 1.0)
    return BandpowerFit(period, scaler.mean_, var, coef, intercept, c)


def bandpower_model(fit: BandpowerFit, raw_shape: tuple[int, ...], name: str) -> keras.Model:
    """The fitted baseline as a Keras model of ``raw`` (no training left to do)."""
    period = fit.periodogram
    n_samples, n_channels = raw_shape
    n_bins = len(period.bins)
    raw = keras.Input(raw_shape, name=RAW_INPUT)
    # Only the samples the frames cover, and no stride for a single frame: TF 2.21's oneDNN
    # convolution returns wrong numbers for a batch > 1 when one output position has a stride
    # (e.g. a 65-sample frame on a 65-sample epoch, stride 32: every 0.5 s epoch at 128 Hz).
    used = (period.n_frames - 1) * period.hop + period.frame
    x = layers.Cropping1D((0, n_samples - used), name="bp_crop")(raw)
    x = layers.Permute((2, 1), name="bp_channels_first")(x)
    x = layers.Reshape((n_channels, used, 1), name="bp_frames_in")(x)
    cos, sin = period.dft()
    kernel = np.concatenate([cos, sin], axis=1)[None, :, None, :].astype(np.float32)
    stride = period.hop if period.n_frames > 1 else 1
    dft = layers.Conv2D(
        2 * n_bins,
        (1, period.frame),
        strides=(1, stride),
        use_bias=False,
        trainable=False,
        name="bp_dft",
    )
    spectrum = dft(x)  # (channels, frames, 2 * bins)
    dft.set_weights([kernel])
    squared = ops.square(spectrum)
    power = ops.mean(squared[..., :n_bins] + squared[..., n_bins:], axis=2)  # channels, bins
    # Band averaging as a 1x1 convolution over the channel axis: the same product as a Dense
    # layer, but tf2onnx mis-shapes a Dense over a 3-D tensor's last axis (its Tensordot).
    bands = layers.Conv1D(
        period.bands.shape[1], 1, use_bias=False, trainable=False, name="bp_bands"
    )
    band = bands(power)
    bands.set_weights([period.bands[None].astype(np.float32)])
    logs = layers.Flatten(name="bp_features")(ops.log(band + LOG_FLOOR))
    scaled = layers.Normalization(mean=fit.mean, variance=fit.var, name="bp_scaler")(logs)
    head = layers.Dense(len(fit.intercept), name="logits", dtype="float32")
    logits = head(scaled)
    head.set_weights([fit.coef.T.astype(np.float32), fit.intercept.astype(np.float32)])
    probs = layers.Activation("softmax", name="probs", dtype="float32")(logits)
    return keras.Model(raw, probs, name=name)


@register_model("bandpower", reads="raw", kind="fitted")
def fit_bandpower_model(
    chunks: Iterable[np.ndarray],
    targets: np.ndarray,
    raw_shape: tuple[int, ...],
    sample_rate: float,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    *,
    bands: Sequence[float] = (1.0, 4.0, 8.0, 13.0, 20.0, 30.0, 45.0),
    cs: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0),
) -> keras.Model:
    """The band-power model fitted on raw epochs given as ``chunks`` of ``(n, samples,
    channels)`` (their targets in the same order), as a Keras graph; ``bands`` and ``cs`` are
    the ``model.bandpower`` section."""
    period = Periodogram.of(raw_shape[0], sample_rate, bands)
    features = np.concatenate([period.features(chunk) for chunk in chunks])
    fit = fit_features(features, targets, period, cs, weights, groups)
    return bandpower_model(fit, raw_shape, name="bandpower")
