"""Cleaning and rate changes along the last (time) axis, for any channel count and rate."""

from __future__ import annotations

import functools
import logging
import math
from fractions import Fraction

import numpy as np
import scipy.signal

from hmsbrain.config import PreprocessConfig

log = logging.getLogger(__name__)


def fill_nan(eeg: np.ndarray) -> np.ndarray:
    """Linearly interpolate NaN (and infinite) runs in each channel of ``(samples, channels)``.

    Real HMS files contain flat or missing stretches stored as NaN. Interpolation keeps the
    signal continuous (a constant fill would put a step into the filter and the spectrogram);
    leading/trailing runs take the nearest valid value, and an all-NaN channel becomes zeros, so
    no NaN can reach the model. Returns a new float32 array; the input is not modified.
    """
    out = np.array(eeg, dtype=np.float32, copy=True)
    bad = ~np.isfinite(out)
    if not bad.any():
        return out
    idx = np.arange(out.shape[0])
    for ch in np.flatnonzero(bad.any(axis=0)):
        good = ~bad[:, ch]
        if not good.any():
            out[:, ch] = 0.0
        else:
            out[bad[:, ch], ch] = np.interp(idx[bad[:, ch]], idx[good], out[good, ch])
    return out


@functools.lru_cache(maxsize=16)
def _bandpass_sos(low: float, high: float, order: int, fs: float) -> np.ndarray:
    sos = scipy.signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    # float32 sections make sosfiltfilt run in float32: twice as fast, and within 1e-4 of the
    # float64 result relative to the signal peak, far below EEG noise.
    return sos.astype(np.float32)


def bandpass(signals: np.ndarray, cfg: PreprocessConfig, fs: float | None = None) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (no phase shift of discharges).

    ``fs`` defaults to the recipe's rate, which every signal has after :func:`resample`."""
    fs = cfg.sample_rate if fs is None else fs
    if not 0 < cfg.bandpass_low < cfg.bandpass_high < fs / 2:
        raise ValueError(
            f"preprocess.bandpass_low/high ({cfg.bandpass_low}, {cfg.bandpass_high} Hz) must lie "
            f"inside (0, {fs / 2:g}) Hz, the band of a {fs:g} Hz signal"
        )
    sos = _bandpass_sos(cfg.bandpass_low, cfg.bandpass_high, cfg.filter_order, fs)
    return scipy.signal.sosfiltfilt(sos, np.asarray(signals, dtype=np.float32), axis=-1)


# A ratio this close to the true one is exact (rates such as 1000/3 Hz are rounded floats);
# one within MAX_RATE_ERROR is a close approximation, used and logged.
_EXACT = 1e-9
MAX_RATE_ERROR = 1e-4
# Up/down factors up to this size first: resample_poly's filter grows with them.
_FIRST_BOUND = 1000


@functools.lru_cache(maxsize=64)
def rate_ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """``(up, down)`` with ``fs_in * up / down`` equal to ``fs_out``, for any two rates.

    The exact ratio when its factors are at most 1000 (160 -> 128 Hz is 4/5, 1000/3 -> 128 Hz
    48/125); otherwise the rational approximation with the smallest factors whose rate is within
    :data:`MAX_RATE_ERROR` of ``fs_out`` (173.61 -> 128 Hz is 87/118), the bound on the factors
    raised tenfold until one is. An approximation is logged once per pair of rates (the result
    is cached), since the output rate is then not quite ``fs_out``."""
    for name, rate in (("input", fs_in), ("output", fs_out)):
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(
                f"cannot resample: the {name} rate {rate:g} Hz is not a positive number"
            )
    bound = _FIRST_BOUND
    while True:
        ratio = Fraction(fs_out / fs_in).limit_denominator(bound)
        error = abs(float(ratio) * fs_in - fs_out) / fs_out
        if ratio and error < MAX_RATE_ERROR:
            break
        # The float ratio is itself a fraction, so a large enough bound always ends the loop.
        bound *= 10
    if error > _EXACT:
        log.info(
            "resampling %.10g Hz to %.10g Hz by up %d / down %d: %.10g Hz, rate error %.2g",
            fs_in,
            fs_out,
            ratio.numerator,
            ratio.denominator,
            float(ratio) * fs_in,
            error,
        )
    return ratio.numerator, ratio.denominator


def resample(signals: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis, with its anti-alias FIR filter; a no-op (the
    same array) when the rates already agree, so equal-rate data is bit-identical."""
    if fs_in == fs_out:
        return signals
    up, down = rate_ratio(fs_in, fs_out)
    out = scipy.signal.resample_poly(np.asarray(signals, np.float32), up, down, axis=-1)
    return out.astype(np.float32)


def decimate(signals: np.ndarray, factor: int) -> np.ndarray:
    """Keep every ``factor``-th sample after a polyphase anti-alias filter.

    A band-pass edge at the new Nyquist frequency is no anti-alias filter: keeping every 5th
    sample of a 20 Hz-low-passed 200 Hz signal would fold 20-40 Hz activity (muscle) into the
    band the model reads."""
    if factor == 1:
        return signals
    return scipy.signal.resample_poly(signals, 1, factor, axis=-1)
