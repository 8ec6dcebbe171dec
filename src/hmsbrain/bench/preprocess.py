"""Preprocessing speed: the public starter kernels' per-signal librosa loop against the batched
mel spectrogram, on the same windows, with a check that both give the same tiles."""

from __future__ import annotations

import time
from collections.abc import Callable

import librosa
import numpy as np

from hmsbrain.config import Config
from hmsbrain.data.sources import resolve_data_dir
from hmsbrain.dsp.mel import hop_length, mel_power
from hmsbrain.dsp.parallel import map_batch
from hmsbrain.hms.constants import CHAIN_NAMES, PAIRS_PER_CHAIN, SAMPLE_RATE
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.preprocess import clean_montage, eeg_tiles

MEL_RTOL = 1e-4  # the acceptance tolerance on the mel power spectrum


def starter_mel_power(montage: np.ndarray, cfg: Config) -> np.ndarray:
    """The public starter kernels' way: one ``librosa.feature.melspectrogram`` call per signal."""
    p = cfg.preprocess
    hop = hop_length(montage.shape[-1], p)
    out = np.empty((*montage.shape[:-1], p.n_mels, p.n_frames), dtype=np.float32)
    for index in np.ndindex(montage.shape[:-1]):
        out[index] = librosa.feature.melspectrogram(
            y=montage[index],
            sr=SAMPLE_RATE,
            n_fft=p.n_fft,
            hop_length=hop,
            win_length=p.win_length,
            n_mels=p.n_mels,
            fmin=p.fmin,
            fmax=p.fmax,
        )[:, : p.n_frames]
    return out


def starter_tiles(eeg: np.ndarray, cfg: Config) -> np.ndarray:
    """Starter-style tiles: the per-signal librosa loop, then ``power_to_db`` per signal."""
    p = cfg.preprocess
    power = starter_mel_power(clean_montage(eeg, p), cfg)
    db = np.empty_like(power)
    for index in np.ndindex(power.shape[:-3]):
        ref = power[index].max()  # the window's peak, as the project's tiles use
        for ch in range(power.shape[-3]):
            db[index][ch] = librosa.power_to_db(power[index][ch], ref=ref, top_db=None)
    db = np.maximum(db, -p.top_db)
    shape = (*db.shape[:-3], len(CHAIN_NAMES), PAIRS_PER_CHAIN, *db.shape[-2:])
    half = p.top_db / 2.0
    return (db.reshape(shape).mean(axis=-3) + half) / half


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference relative to each spectrogram's peak power."""
    peak = reference.max(axis=(-2, -1), keepdims=True)
    return float((np.abs(ours - reference) / peak).max())


def _rate(fn: Callable[[], object], n_windows: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n_windows / best


def load_windows(cfg: Config, n_windows: int) -> np.ndarray:
    """``n_windows`` raw EEG windows of the configured dataset (cycled if it has fewer)."""
    data = HMSData(resolve_data_dir(cfg), "train")
    rows = np.arange(n_windows) % len(data)
    return np.stack([data.eeg_window(i) for i in rows])


def bench_preprocess(cfg: Config, n_windows: int, repeats: int) -> float:
    eeg = load_windows(cfg, n_windows)
    montage = clean_montage(eeg, cfg.preprocess)
    starter_mel_power(montage[:1, :1], cfg)  # compile librosa's numba kernels outside the timing
    error = relative_error(mel_power(montage, cfg.preprocess), starter_mel_power(montage, cfg))
    tile_gap = float(np.abs(eeg_tiles(eeg, cfg.preprocess) - starter_tiles(eeg, cfg)).max())
    starter = _rate(lambda: starter_tiles(eeg, cfg), n_windows, repeats)
    ours = _rate(lambda: map_batch(lambda x: eeg_tiles(x, cfg.preprocess), eeg), n_windows, repeats)
    print(f"windows: {n_windows} x {eeg.shape[1]} samples x {eeg.shape[2]} channels")
    print(f"mel power max relative error vs librosa: {error:.2e} (tolerance {MEL_RTOL:.0e})")
    print(f"image tiles max abs difference vs starter loop: {tile_gap:.2e}")
    print(f"{'method':<34}{'windows/s':>12}")
    print(f"{'starter loop (librosa per signal)':<34}{starter:>12.1f}")
    print(f"{'hmsbrain (batched)':<34}{ours:>12.1f}")
    if error > MEL_RTOL:
        raise SystemExit(f"mel spectrogram differs from librosa by {error:.2e} > {MEL_RTOL:.0e}")
    speedup = ours / starter
    print(f"speedup: {speedup:.1f}x")
    return speedup
