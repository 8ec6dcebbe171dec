"""The background of every synthetic demo (the generic ones and HMS's): 1/f noise."""

from __future__ import annotations

import numpy as np
import scipy.fft


def pink_noise(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    beta: float,
    sample_rate: float,
    knee_hz: float = 1.0,
    dtype: type[np.floating] = np.float64,
) -> np.ndarray:
    """Unit-variance noise along the last axis, 1/f^beta above ``knee_hz`` and flat below (the
    EEG spectrum is roughly 1/f and flattens at the slowest frequencies); ``dtype`` is that of
    the white noise drawn, so float32 halves the memory of long recordings."""
    n = shape[-1]
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), knee_hz).astype(dtype)
    white = rng.standard_normal(shape, dtype=dtype)
    spec = scipy.fft.rfft(white, axis=-1, workers=-1) / f ** (beta / 2)
    x = scipy.fft.irfft(spec, n=n, axis=-1, workers=-1)
    return x / x.std(axis=-1, keepdims=True)
