"""Raw-signal augmentation for any EEG: small numpy transforms of a batch's ``raw`` input,
``(batch, time, channels)``, after braindecode's ``augmentation`` module (Rommel et al. 2022).

Each transform is one function registered here by name. ``train.augment`` lists the names to
apply, in that order; ``train.augment_params.<name>`` is its section: ``probability`` (the
share of a batch's samples it transforms, drawn per sample) and the function's keyword
arguments. Every draw comes from the batch's generator, so a resumed run sees the same data.

Adding one: a function ``(x, rng, sample_rate, *, magnitudes...) -> array`` registered with
``@register("name")``, its name in ``config.RawAugment`` and its section in
``config.AugmentParams`` (the config validates itself below this layer, so it keeps its own
list; a test holds the two together).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy.signal import hilbert

from hmsbrain.config import AugmentParams

Transform = Callable[..., np.ndarray]
TRANSFORMS: dict[str, Transform] = {}


def register(name: str) -> Callable[[Transform], Transform]:
    """Register a transform under ``name`` (the word ``train.augment`` lists)."""

    def add(fn: Transform) -> Transform:
        TRANSFORMS[name] = fn
        return fn

    return add


def augment_raw(
    raw: np.ndarray,
    rng: np.random.Generator,
    names: Sequence[str],
    params: AugmentParams,
    sample_rate: float,
) -> np.ndarray:
    """Apply the transforms ``names`` in order, each to the samples its probability picks.

    ``raw`` is changed in place and returned. With no names, no draw is made, so a run without
    raw augmentation sees exactly the batches it saw before this existed."""
    for name in names:
        kwargs = dataclasses.asdict(getattr(params, name))
        probability = kwargs.pop("probability")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(
                f"train.augment_params.{name}.probability: {probability} is not in [0, 1]"
            )
        chosen = rng.random(len(raw)) < probability
        if chosen.any():
            raw[chosen] = TRANSFORMS[name](raw[chosen], rng, sample_rate, **kwargs)
    return raw


@register("time_shift")
def time_shift(
    x: np.ndarray, rng: np.random.Generator, sample_rate: float, *, max_shift_seconds: float = 0.5
) -> np.ndarray:
    """Roll each sample circularly in time by a whole number of samples, uniform up to
    ``max_shift_seconds`` either way. A roll rather than a zero fill: a flat stretch would look
    like an electrode artefact, and the roll keeps the window's amplitude distribution."""
    limit = round(max_shift_seconds * sample_rate)
    shifts = rng.integers(-limit, limit + 1, len(x))
    n_time = x.shape[1]
    source = (np.arange(n_time)[None, :] - shifts[:, None]) % n_time  # np.roll, per sample
    return x[np.arange(len(x))[:, None], source]


@register("amplitude_scale")
def amplitude_scale(
    x: np.ndarray,
    rng: np.random.Generator,
    sample_rate: float,
    *,
    low: float = 0.5,
    high: float = 2.0,
) -> np.ndarray:
    """Multiply each sample by one factor, log-uniform in [low, high]: halving and doubling are
    equally likely. It matters because the model standardises with fixed training statistics,
    not per window."""
    if not 0.0 < low <= high:
        raise ValueError(
            f"train.augment_params.amplitude_scale: need 0 < low <= high, got {low}, {high}"
        )
    factors = np.exp(rng.uniform(np.log(low), np.log(high), len(x)))
    return x * factors[:, None, None].astype(x.dtype)


@register("sign_flip")
def sign_flip(x: np.ndarray, rng: np.random.Generator, sample_rate: float) -> np.ndarray:
    """Negate each sample (the EEG's polarity depends on the reference)."""
    return -x


@register("time_reverse")
def time_reverse(x: np.ndarray, rng: np.random.Generator, sample_rate: float) -> np.ndarray:
    """Reverse each sample in time (keeps every channel's power spectrum)."""
    return x[:, ::-1]


@register("channel_dropout")
def channel_dropout(
    x: np.ndarray, rng: np.random.Generator, sample_rate: float, *, p_drop: float = 0.2
) -> np.ndarray:
    """Zero each channel of each sample with probability ``p_drop`` (a lost electrode)."""
    keep = rng.random((len(x), 1, x.shape[2])) >= p_drop
    return x * keep


@register("gaussian_noise")
def gaussian_noise(
    x: np.ndarray, rng: np.random.Generator, sample_rate: float, *, std: float = 0.1
) -> np.ndarray:
    """Add white Gaussian noise of ``std`` times each channel's std over the transformed samples
    (relative, because the raw input is in whatever units the data came in; the model only
    standardises it later)."""
    scale = std * x.std(axis=(0, 1), keepdims=True, dtype=np.float64)
    return (x + scale * rng.standard_normal(x.shape)).astype(x.dtype)


@register("ft_surrogate")
def ft_surrogate(
    x: np.ndarray,
    rng: np.random.Generator,
    sample_rate: float,
    *,
    phase_noise_magnitude: float = 1.0,
    channel_indep: bool = False,
) -> np.ndarray:
    """Fourier-transform surrogate: add a random phase, uniform in [0, 2 pi magnitude), to every
    frequency, keeping each channel's amplitude spectrum. Without ``channel_indep`` all channels
    of a sample get the same phases, which keeps their cross-spectra (coherence) as well."""
    if not 0.0 <= phase_noise_magnitude <= 1.0:
        raise ValueError(
            "train.augment_params.ft_surrogate.phase_noise_magnitude: "
            f"{phase_noise_magnitude} is not in [0, 1]"
        )
    n_time = x.shape[1]
    spectrum = np.fft.rfft(x.astype(np.float64), axis=1)
    shape = (len(x), spectrum.shape[1], x.shape[2] if channel_indep else 1)
    phase = 2 * np.pi * phase_noise_magnitude * rng.random(shape)
    phase[:, 0] = 0.0  # the mean is real
    if n_time % 2 == 0:
        phase[:, -1] = 0.0  # so is the Nyquist bin of an even length
    return np.fft.irfft(spectrum * np.exp(1j * phase), n=n_time, axis=1).astype(x.dtype)


@register("frequency_shift")
def frequency_shift(
    x: np.ndarray, rng: np.random.Generator, sample_rate: float, *, max_delta_hz: float = 2.0
) -> np.ndarray:
    """Shift each sample's spectrum by a frequency uniform in [-max_delta_hz, max_delta_hz]:
    the real part of the analytic signal (Hilbert transform) times exp(2 pi i df t). The
    signal is zero-padded to a power of two first, as braindecode does, which keeps the FFT's
    circular wrap-around away from the window's ends."""
    n_time = x.shape[1]
    n_fft = 1 << (n_time - 1).bit_length()
    delta = rng.uniform(-max_delta_hz, max_delta_hz, len(x))
    analytic = hilbert(x.astype(np.float64), N=n_fft, axis=1)[:, :n_time]
    t = np.arange(n_time) / sample_rate
    carrier = np.exp(2j * np.pi * delta[:, None] * t[None, :])[..., None]
    return (analytic * carrier).real.astype(x.dtype)
