"""The views of a clean montage that the image can show (``preprocess.views``), each a
registered kind, so that any image backbone can read any of them and an ensemble can mix
members that read different ones (the top HMS teams' blends did).

Every view maps a clean montage ``(..., channels, samples)`` to one tile per channel group,
``(..., groups, n_mels, width)``: the same rows and the same group bands as the mel tiles, so
views sit side by side in one image (:func:`view_tiles`), the Kaggle tiles still fit to their
right, and the hemisphere swap (a permutation of the group bands) mirrors every view at once.

- ``mel``: the dB mel spectrogram (:func:`hmsbrain.dsp.mel.group_tiles`).
- ``zoom``: the same, of the central ``zoom_seconds`` only, so its ``n_frames`` columns are a
  finer time step over the labelled centre (3rd place: mel plus a zoomed centre-10 s mel).
- ``stft``: log power of the short-time Fourier transform, each group's mean over its signals;
  rows are linear frequency bins from ``fmin`` to ``fmax``.
- ``stft_signals``: the same per signal, the signals of a group stacked in its tile (2nd
  place: the STFT of the 16 bipolar signals).
- ``cwt``: power of a complex Morlet filter bank at ``n_mels`` log-spaced frequencies from
  ``cwt_fmin`` to ``cwt_fmax``, each group's mean (1st place: CWT images).
- ``raw``: the raw branch's signals folded into rows (each row the next stretch of time), the
  signals of a group stacked in its tile (2nd place: raw EEG reshaped to 2D).

The per-signal views (``stft_signals``, ``raw``) give each signal ``n_mels // largest group``
rows; a smaller group's tile is padded below with the floor value.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import scipy.signal

from hmsbrain.config import VIEW_NAMES, ConfigError, PreprocessConfig
from hmsbrain.dsp.filters import decimate
from hmsbrain.dsp.mel import group_tiles, hop_length, power_tiles, power_to_db, scale_db

Groups = tuple[tuple[int, ...], ...]
ViewFn = Callable[[np.ndarray, Groups, PreprocessConfig], np.ndarray]
VIEWS: dict[str, ViewFn] = {}


def register_view(name: str) -> Callable[[ViewFn], ViewFn]:
    """Register the decorated function as view ``name`` (a value of ``preprocess.views``)."""

    def wrap(fn: ViewFn) -> ViewFn:
        if name in VIEWS:
            raise ValueError(f"view {name!r} is registered twice")
        VIEWS[name] = fn
        return fn

    return wrap


def view_tiles(montage: np.ndarray, groups: Groups, cfg: PreprocessConfig) -> np.ndarray:
    """Clean montage ``(..., channels, samples)`` -> the tiles of every view of
    ``preprocess.views``, side by side: ``(..., groups, n_mels, total width)``."""
    if not cfg.views:
        raise ConfigError(f"preprocess.views is empty; name at least one of {list(VIEW_NAMES)}")
    if len(set(cfg.views)) != len(cfg.views):
        raise ConfigError(f"preprocess.views names a view twice: {cfg.views}")
    return np.concatenate([VIEWS[name](montage, groups, cfg) for name in cfg.views], axis=-1)


def signal_rows(groups: Groups, cfg: PreprocessConfig) -> int:
    """Rows of each signal in a per-signal view: the largest group's signals fill a tile."""
    rows = cfg.n_mels // max(len(g) for g in groups)
    if rows < 1:
        raise ConfigError(
            f"preprocess.n_mels={cfg.n_mels} is fewer rows than the {max(map(len, groups))} "
            "signals of a group: a per-signal view needs at least one row each"
        )
    return rows


def stack_signals(per_signal: np.ndarray, groups: Groups, n_rows: int, fill: float) -> np.ndarray:
    """``(..., channels, rows, width)`` -> each group's signals stacked along the rows, padded
    to ``n_rows`` with ``fill``: ``(..., groups, n_rows, width)``."""
    tiles = []
    for group in groups:
        tile = np.concatenate([per_signal[..., c, :, :] for c in group], axis=-2)
        pad = [(0, 0)] * (tile.ndim - 2) + [(0, n_rows - tile.shape[-2]), (0, 0)]
        tiles.append(np.pad(tile, pad, constant_values=fill))
    return np.stack(tiles, axis=-3)


@register_view("mel")
def mel_view(montage: np.ndarray, groups: Groups, cfg: PreprocessConfig) -> np.ndarray:
    return group_tiles(montage, groups, cfg)


def zoom_span(n_samples: int, cfg: PreprocessConfig) -> tuple[int, int]:
    """(first sample, samples) of the central ``zoom_seconds`` of an ``n_samples`` window; the
    whole window when it is shorter."""
    keep = min(n_samples, max(1, round(cfg.zoom_seconds * cfg.sample_rate)))
    return (n_samples - keep) // 2, keep


@register_view("zoom")
def zoom_view(montage: np.ndarray, groups: Groups, cfg: PreprocessConfig) -> np.ndarray:
    # Cut from the clean (already filtered) montage, so the crop has no filter edge of its own.
    start, keep = zoom_span(montage.shape[-1], cfg)
    return group_tiles(montage[..., start : start + keep], groups, cfg)


@functools.lru_cache(maxsize=16)
def stft_transform(
    sr: float, win_length: int, hop: int, rows: int, fmin: float, fmax: float
) -> tuple[scipy.signal.ShortTimeFFT, int]:
    """The STFT whose bins ``first .. first + rows`` step evenly from ``fmin`` to ``fmax``, and
    ``first``: a Hann window of ``win_length``, in an FFT of ``sr * rows / (fmax - fmin)``
    points (zero-padded beyond the window), frames centred every ``hop`` samples."""
    mfft = round(sr * rows / (fmax - fmin))
    if mfft < win_length:
        raise ConfigError(
            f"preprocess.views: the STFT's {rows} bins per signal over {fmin:g}-{fmax:g} Hz "
            f"need an FFT of {mfft} points, shorter than preprocess.win_length={win_length}; raise "
            "preprocess.n_mels or lower preprocess.win_length"
        )
    window = scipy.signal.get_window("hann", win_length)  # periodic, as the mel path's
    transform = scipy.signal.ShortTimeFFT(window, hop, fs=sr, mfft=mfft)
    return transform, round(fmin * mfft / sr)


def stft_power(montage: np.ndarray, cfg: PreprocessConfig, rows: int) -> np.ndarray:
    """STFT power ``(..., channels, rows, n_frames)``: frame ``t`` centred on sample
    ``t * hop``, as the mel path's (zeros beyond the window's ends)."""
    win_length = min(cfg.win_length, montage.shape[-1])
    hop = hop_length(montage.shape[-1], cfg)
    transform, first = stft_transform(cfg.sample_rate, win_length, hop, rows, cfg.fmin, cfg.fmax)
    signals = np.asarray(montage, np.float32)
    # Flattened to (signals, samples): ShortTimeFFT zero-pads frames to mfft with np.hstack,
    # which joins the wrong axis of a 3D input.
    spectrum = transform.stft(signals.reshape(-1, signals.shape[-1]), p0=0, p1=cfg.n_frames)
    power = np.abs(spectrum[:, first : first + rows, :]) ** 2
    return power.reshape(*signals.shape[:-1], rows, cfg.n_frames)


@register_view("stft")
def stft_view(montage: np.ndarray, groups: Groups, cfg: PreprocessConfig) -> np.ndarray:
    return power_tiles(stft_power(montage, cfg, cfg.n_mels), groups, cfg)


@register_view("stft_signals")
def stft_signals_view(montage: np.ndarray, groups: Groups, cfg: PreprocessConfig) -> np.ndarray:
    power = stft_power(montage, cfg, signal_rows(groups, cfg))
    return stack_signals(scale_db(power_to_db(power, cfg.top_db), cfg), groups, cfg.n_mels, -1.0)


@functools.lru_cache(maxsize=16)
def morlet_bank(sr: float, rows: int, fmin: float, fmax: float, cycles: float) -> np.ndarray:
    """Complex Morlet wavelets ``(rows, taps)`` at ``rows`` log-spaced frequencies, each of unit
    gain at its centre frequency, all as long as the lowest one's +/- 3 standard deviations."""
    if not 0 < fmin < fmax < sr / 2:
        raise ConfigError(
            f"preprocess.cwt_fmin/cwt_fmax ({fmin:g}, {fmax:g} Hz) must lie inside "
            f"(0, {sr / 2:g}) Hz, the band of a {sr:g} Hz signal"
        )
    freqs = np.geomspace(fmin, fmax, rows)[:, None]
    sigma = cycles / (2.0 * np.pi * freqs)  # seconds
    half = math.ceil(3.0 * float(sigma.max()) * sr)
    t = np.arange(-half, half + 1) / sr
    envelope = np.exp(-(t**2) / (2.0 * sigma**2))
    wavelets = envelope * np.exp(2j * np.pi * freqs * t)
    return (wavelets / envelope.sum(axis=1, keepdims=True)).astype(np.complex64)


def cwt_power(montage: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Morlet power ``(..., channels, n_mels, n_frames)`` at samples ``t * hop`` (the mel
    frames' centres): a fixed convolution, by FFT, zero beyond the window's ends."""
    signals = np.asarray(montage, np.float32)
    bank = morlet_bank(cfg.sample_rate, cfg.n_mels, cfg.cwt_fmin, cfg.cwt_fmax, cfg.cwt_cycles)
    hop = hop_length(signals.shape[-1], cfg)
    half = bank.shape[-1] // 2
    # Sample t of the centred convolution is sample t + half of the full one.
    centres = half + hop * np.arange(cfg.n_frames)
    # One signal at a time, all its frequencies at once: a few MB, not the (channels,
    # frequencies, samples) complex array of the whole window.
    power = np.stack(
        [
            np.abs(scipy.signal.fftconvolve(x[None], bank, mode="full", axes=-1)[:, centres]) ** 2
            for x in signals.reshape(-1, signals.shape[-1])
        ]
    )
    return power.reshape(*signals.shape[:-1], cfg.n_mels, cfg.n_frames)


@register_view("cwt")
def cwt_view(montage: np.ndarray, groups: Groups, cfg: PreprocessConfig) -> np.ndarray:
    return power_tiles(cwt_power(montage, cfg), groups, cfg)


def fold_signals(signals: np.ndarray, rows: int) -> np.ndarray:
    """``(..., samples)`` -> ``(..., rows, ceil(samples / rows))``: row ``r`` is the ``r``-th
    stretch of time, the last one zero-padded."""
    cols = -(-signals.shape[-1] // rows)
    pad = [(0, 0)] * (signals.ndim - 1) + [(0, rows * cols - signals.shape[-1])]
    return np.pad(signals, pad).reshape(*signals.shape[:-1], rows, cols)


@register_view("raw")
def raw_view(montage: np.ndarray, groups: Groups, cfg: PreprocessConfig) -> np.ndarray:
    # The raw branch's samples (decimated by raw_downsample, scaled by scale_uv): the same
    # signal the 1D models read, as an image.
    signals = (decimate(montage, cfg.raw_downsample) / cfg.scale_uv).astype(np.float32)
    return stack_signals(fold_signals(signals, signal_rows(groups, cfg)), groups, cfg.n_mels, 0.0)
