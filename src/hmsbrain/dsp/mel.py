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
    """A real DFT matrix over the frequency bins the mel filters use, and the filters themselves.

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
    dft, mel = _mel_operators(sr, cfg.n_fft, win_length, cfg.n_mels, cfg.fmin, cfg.fmax)
    # Frame t of librosa is centred on sample t * hop; its non-zero window part starts
    # n_fft // 2 - (n_fft - win_length) // 2 samples earlier.
    lead = cfg.n_fft // 2 - (cfg.n_fft - win_length) // 2
    pad_right = max(0, (cfg.n_frames - 1) * hop + win_length - lead - n)
    padded = np.pad(signals, [(0, 0)] * (signals.ndim - 1) + [(lead, pad_right)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, win_length, axis=-1)
    frames = frames[..., : (cfg.n_frames - 1) * hop + 1 : hop, :]  # (..., n_frames, win)
    spectrum = frames @ dft  # (..., n_frames, 2 * n_bins): real parts, then imaginary parts
    n_bins = mel.shape[0]
    power = spectrum[..., :n_bins] ** 2 + spectrum[..., n_bins:] ** 2
    return np.swapaxes(power @ mel, -1, -2)


def power_to_db(power: np.ndarray, top_db: float) -> np.ndarray:
    """dB of ``(..., 16, n_mels, n_frames)`` relative to each window's peak, ``top_db`` deep.

    The reference is the peak over all 16 signals of a window, not each signal's own (as the
    starter kernels' ``ref=np.max`` per signal does): lateralised patterns (LPD, LRDA) differ
    from generalised ones mainly in how much stronger one hemisphere is, which per-signal
    referencing would erase. Patient amplitude still cancels, since the reference is per window.
    """
    # librosa.power_to_db's formula (amin 1e-10), written out because librosa's version took 4x
    # longer here; natural log because numpy vectorises it and not log10. The benchmark checks
    # that both give the same tiles.
    db = np.log(np.maximum(power, 1e-10, dtype=np.float32))
    db *= np.float32(10.0 / np.log(10.0))
    db -= db.max(axis=(-3, -2, -1), keepdims=True)
    return np.maximum(db, -top_db)


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
    channel group, ``(..., groups, rows, frames)``.

    Each tile is the mean of its channels' dB power, scaled so that the peak is about +1 and the
    ``top_db`` floor is -1. dB is relative to each window's peak over all its channels
    (:func:`power_to_db`), so one region's dominance over another survives.
    """
    db = power_to_db(power, cfg.top_db)
    sizes = {len(g) for g in groups}
    if len(sizes) == 1 and np.array_equal(np.concatenate(groups), np.arange(db.shape[-3])):
        # Equal consecutive groups (the double banana's four chains of four): one reshape.
        shape = (*db.shape[:-3], len(groups), sizes.pop(), *db.shape[-2:])
        tiles = db.reshape(shape).mean(axis=-3)
    else:
        tiles = np.stack([db[..., list(g), :, :].mean(axis=-3) for g in groups], axis=-3)
    return scale_db(tiles, cfg)


def scale_db(db: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """dB in ``[-top_db, 0]`` -> about ``[-1, 1]``, the range of every spectral tile."""
    half = cfg.top_db / 2.0
    return ((db + half) / half).astype(np.float32)
