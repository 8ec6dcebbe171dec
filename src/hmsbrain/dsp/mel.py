"""Mel spectrograms of a whole batch at once, equal to librosa's, and their dB tiles.

Every function takes ``(..., samples)`` signals with any leading dimensions (epochs, channels),
at any sampling rate; the recipe's rate is the default.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import scipy.signal

from hmsbrain.config import PreprocessConfig


def hop_length(n_samples: int, cfg: PreprocessConfig) -> int:
    """The starter-kernel hop: ``n_samples // n_frames`` (39 for a 50 s window, 256 frames)."""
    return n_samples // cfg.n_frames


@functools.lru_cache(maxsize=16)
def _mel_operators(
    sr: float, n_fft: int, win_length: int, n_mels: int, fmin: float, fmax: float
) -> tuple[np.ndarray, np.ndarray]:
    """A real DFT matrix over the frequency bins the mel filters use, and the filters themselves
    (the in-graph spectrogram, :mod:`hmsbrain.models.spectrogram`, computes with these).

    The Hann window is only ``win_length`` long inside an ``n_fft`` frame, so the zero-padded FFT
    equals a DFT of the ``win_length`` windowed samples. The mel filters stop at ``fmax`` (20 Hz
    of a 100 Hz band by default), so only the first few FFT bins are ever used. Evaluating just
    those bins as one matrix product is exact and far cheaper than full FFTs.
    """
    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    n_bins = int(np.flatnonzero(mel.any(axis=0)).max()) + 1
    window = scipy.signal.get_window("hann", win_length, fftbins=True)  # librosa's window
    # librosa centres the window in the n_fft frame; the offset only changes the phase.
    t = np.arange(win_length) + (n_fft - win_length) // 2
    angle = 2.0 * np.pi * np.outer(t, np.arange(n_bins)) / n_fft
    dft = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * window[:, None]
    return dft.astype(np.float32), np.ascontiguousarray(mel[:, :n_bins].T, dtype=np.float32)


@functools.lru_cache(maxsize=16)
def _paired_dft(n_fft: int, win_length: int, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The DFT of :func:`_mel_operators` folded by the window's symmetry, for the CPU: the
    matrices that take the sums and the differences of each frame's mirrored samples to the
    real and the imaginary parts, ``(win_length // 2, n_bins)`` each.

    The periodic Hann window is zero at its first sample and symmetric about its centre
    ``c = L / 2`` (``w[n] = w[L - n]``). With time counted from the centre (which changes only
    the phase, and the power drops it), a frame ``x`` has the spectrum
    ``sum_n w[n] ((x[n] + x[L - n]) cos(a (n - c)) - i (x[n] - x[L - n]) sin(a (n - c)))`` over
    ``n = 1 .. L // 2``: two products half the size of the full DFT's, the product that bounded
    preprocessing."""
    window = scipy.signal.get_window("hann", win_length, fftbins=True)  # librosa's window
    n = np.arange(1, win_length // 2 + 1)
    angle = 2.0 * np.pi * np.outer(n - win_length / 2, np.arange(n_bins)) / n_fft
    weight = window[n]
    # For an even length the centre sample is its own mirror: its sum counts it twice.
    cos_weight = np.where(2 * n == win_length, weight / 2, weight)
    real = np.cos(angle) * cos_weight[:, None]
    imaginary = -np.sin(angle) * weight[:, None]
    return real.astype(np.float32), imaginary.astype(np.float32)


def mel_power(signals: np.ndarray, cfg: PreprocessConfig, sr: float | None = None) -> np.ndarray:
    """Mel power spectrogram of ``(..., samples)``: ``(..., n_mels, n_frames)``.

    Equal to ``librosa.feature.melspectrogram(y, sr, n_fft, hop_length, win_length, n_mels,
    fmin, fmax)`` (centred frames, zero padding, power 2) cropped to its first ``n_frames``
    columns, for a whole batch at once.
    """
    signals = np.asarray(signals, dtype=np.float32)
    sr = cfg.sample_rate if sr is None else sr
    n = signals.shape[-1]
    hop = hop_length(n, cfg)
    win_length = min(cfg.win_length, n)  # a short epoch (0.5 s) is one window at most
    if win_length < 2:
        raise ValueError(f"a mel spectrogram needs windows of 2 samples or more, not {win_length}")
    _, mel = _mel_operators(sr, cfg.n_fft, win_length, cfg.n_mels, cfg.fmin, cfg.fmax)
    real, imaginary = _paired_dft(cfg.n_fft, win_length, mel.shape[0])
    # Frame t of librosa is centred on sample t * hop; its non-zero window part starts
    # n_fft // 2 - (n_fft - win_length) // 2 samples earlier.
    lead = cfg.n_fft // 2 - (cfg.n_fft - win_length) // 2
    pad_right = max(0, (cfg.n_frames - 1) * hop + win_length - lead - n)
    padded = np.pad(signals, [(0, 0)] * (signals.ndim - 1) + [(lead, pad_right)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, win_length, axis=-1)
    frames = frames[..., : (cfg.n_frames - 1) * hop + 1 : hop, :]  # (..., n_frames, win)
    half = win_length // 2
    head = frames[..., 1 : half + 1]  # x[1], ..., x[L // 2]
    mirror = frames[..., : win_length - half - 1 : -1]  # x[L - 1], ..., x[L - L // 2]
    # Squared in place: these are the largest arrays of preprocessing.
    power = (head + mirror) @ real
    np.square(power, out=power)
    imaginary_part = (head - mirror) @ imaginary
    power += np.square(imaginary_part, out=imaginary_part)
    return np.swapaxes(power @ mel, -1, -2)


def _floored_log(
    power: np.ndarray, top_db: float, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The natural log of ``(..., channels, rows, frames)`` power floored ``top_db`` below each
    window's peak over all its channels, and that peak (librosa.power_to_db's amin 1e-10).

    The floor is taken in the power domain (the log is monotonic), so the log is the only pass
    over every value; natural log because numpy vectorises it and not log10."""
    peak = np.maximum(power.max(axis=(-3, -2, -1), keepdims=True), 1e-10)
    floor = np.maximum(peak * np.float32(10.0 ** (-top_db / 10.0)), 1e-10)
    return np.log(np.maximum(power, floor, out=out), out=out), peak


def _db(log: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """:func:`_floored_log` values (or means of them) as dB relative to the peak."""
    return log * np.float32(10.0 / np.log(10.0)) - 10.0 * np.log10(peak)


def power_to_db(power: np.ndarray, top_db: float) -> np.ndarray:
    """dB of ``(..., channels, rows, frames)`` relative to each window's peak, ``top_db`` deep.

    The reference is the peak over all signals of a window, not each signal's own (as the
    starter kernels' ``ref=np.max`` per signal does): lateralised patterns (LPD, LRDA) differ
    from generalised ones mainly in how much stronger one hemisphere is, which per-signal
    referencing would erase. Patient amplitude still cancels, since the reference is per window.
    librosa.power_to_db's formula, written out because librosa's version took 4x longer here.
    """
    return _db(*_floored_log(np.asarray(power, np.float32), top_db))


def group_tiles(
    signals: np.ndarray, groups: tuple[tuple[int, ...], ...], cfg: PreprocessConfig
) -> np.ndarray:
    """Clean montage ``(..., channels, samples)`` -> one tile per channel group,
    ``(..., groups, n_mels, n_frames)``: :func:`power_tiles` of the mel power."""
    return power_tiles(mel_power(signals, cfg), groups, cfg)


def power_tiles(
    power: np.ndarray, groups: tuple[tuple[int, ...], ...], cfg: PreprocessConfig
) -> np.ndarray:
    """Power ``(..., channels, rows, frames)`` of any time-frequency view -> one tile per
    channel group, ``(..., groups, rows, frames)``; ``power`` is overwritten.

    Each tile is the mean of its channels' dB power (:func:`power_to_db`: relative to each
    window's peak over all its channels, ``top_db`` deep), scaled so that the peak is about +1
    and the floor -1.
    """
    # The dB reference and scale are linear, so they are applied to the group means of the
    # logs rather than to every value. The benchmark checks that this gives the starter loop's
    # tiles.
    log, peak = _floored_log(power, cfg.top_db, out=power)
    sizes = {len(g) for g in groups}
    if len(sizes) == 1 and np.array_equal(np.concatenate(groups), np.arange(log.shape[-3])):
        # Equal consecutive groups (the double banana's four chains of four): one reshape.
        shape = (*log.shape[:-3], len(groups), sizes.pop(), *log.shape[-2:])
        means = log.reshape(shape).mean(axis=-3)
    else:
        means = np.stack([log[..., list(g), :, :].mean(axis=-3) for g in groups], axis=-3)
    return scale_db(_db(means, peak), cfg)


def scale_db(db: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """dB in ``[-top_db, 0]`` -> about ``[-1, 1]``, the range of every spectral tile."""
    half = cfg.top_db / 2.0
    return ((db + half) / half).astype(np.float32)
