"""Preprocessing speed: the public starter kernels' per-signal librosa loop against the batched
mel spectrogram, on the same windows, with a check that both give the same tiles, and where the
batched path spends its time.

The methods take turns inside each repeat, so a slow spell of a shared machine hits all of them,
and the speedup is formed per repeat: median and range over the repeats. The starter loop is
timed twice, with the BLAS threads as configured and held to one: its many small products only
contend for the cores on a loaded machine (measured 4 against 22 windows/s on 2 busy cores), so
the speedup is taken against the faster of the two, the starter at its best. Both are also
timed on one thread each, the ratio a loaded machine disturbs least.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import librosa
import numpy as np
from threadpoolctl import threadpool_limits

from hmsbrain.bench.inference import spread
from hmsbrain.config import Config
from hmsbrain.data.sources import resolve_data_dir
from hmsbrain.dsp.image import build_image
from hmsbrain.dsp.mel import group_tiles, hop_length, mel_power
from hmsbrain.dsp.parallel import map_batch
from hmsbrain.dsp.pipeline import band_limit
from hmsbrain.hms.constants import CHAIN_NAMES, PAIRS_PER_CHAIN, SAMPLE_RATE
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.preprocess import HMS_MONTAGE, bipolar_montage, clean_montage, eeg_tiles

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


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_seconds(eeg: np.ndarray, cfg: Config, calls: int = 3) -> dict[str, float]:
    """Seconds of each step of the batched path on ``eeg``, one thread, the best of ``calls``
    (the first call after the starter loop's can be twice as slow, its BLAS threads still
    spinning): the montage (missing stretches filled), the band-pass filter (and clip), the mel
    spectrogram (framing, DFT, power, mel projection), dB and the chain tiles, and the image
    assembly the tiles then go to."""
    p = cfg.preprocess

    def best(fn: Callable[[], object]) -> float:
        return min(_seconds(fn) for _ in range(calls))

    with threadpool_limits(1):
        montage = bipolar_montage(eeg)
        clean = band_limit(montage, p)
        tiles = group_tiles(clean, HMS_MONTAGE.groups, p)
        times = {
            "montage": best(lambda: bipolar_montage(eeg)),
            "band-pass filter": best(lambda: band_limit(montage, p)),
            "mel spectrogram": best(lambda: mel_power(clean, p)),
            "dB and tiles": best(lambda: group_tiles(clean, HMS_MONTAGE.groups, p)),
            "image assembly (after the tiles)": best(lambda: build_image(tiles, tiles)),
        }
    times["dB and tiles"] = max(times["dB and tiles"] - times["mel spectrogram"], 0.0)
    return times


def load_windows(cfg: Config, n_windows: int) -> np.ndarray:
    """``n_windows`` raw EEG windows of the configured dataset (cycled if it has fewer)."""
    data = HMSData(resolve_data_dir(cfg), "train")
    rows = np.arange(n_windows) % len(data)
    return np.stack([data.eeg_window(i) for i in rows])


def bench_preprocess(cfg: Config, n_windows: int, repeats: int) -> float:
    """Windows/s of the starter loop and of the batched path over ``repeats`` turns, and the
    speedup's median (returned) and range; then the share of each step."""
    eeg = load_windows(cfg, n_windows)
    montage = clean_montage(eeg, cfg.preprocess)
    starter_mel_power(montage[:1, :1], cfg)  # compile librosa's numba kernels outside the timing
    error = relative_error(mel_power(montage, cfg.preprocess), starter_mel_power(montage, cfg))
    tile_gap = float(np.abs(eeg_tiles(eeg, cfg.preprocess) - starter_tiles(eeg, cfg)).max())
    if error > MEL_RTOL:
        raise SystemExit(f"mel spectrogram differs from librosa by {error:.2e} > {MEL_RTOL:.0e}")

    def one_thread(fn: Callable[[], object]) -> Callable[[], object]:
        def held() -> None:
            with threadpool_limits(1):
                fn()

        return held

    methods: dict[str, Callable[[], object]] = {
        "starter loop (librosa per signal)": lambda: starter_tiles(eeg, cfg),
        "starter loop, 1 BLAS thread": one_thread(lambda: starter_tiles(eeg, cfg)),
        "hmsbrain (batched, every core)": lambda: map_batch(
            lambda x: eeg_tiles(x, cfg.preprocess), eeg
        ),
        "hmsbrain (batched, one thread)": one_thread(lambda: eeg_tiles(eeg, cfg.preprocess)),
    }
    rates: dict[str, list[float]] = {name: [] for name in methods}
    steps: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, fn in methods.items():
            rates[name].append(n_windows / _seconds(fn))
        for step, seconds in step_seconds(eeg, cfg).items():
            steps.setdefault(step, []).append(1000 * seconds / n_windows)
    starter, starter_serial, ours, ours_serial = rates.values()
    best_starter = np.maximum(starter, starter_serial)
    speedups = (np.asarray(ours) / best_starter).tolist()
    serial = (np.asarray(ours_serial) / np.asarray(starter_serial)).tolist()
    print(f"windows: {n_windows} x {eeg.shape[1]} samples x {eeg.shape[2]} channels")
    print(f"mel power max relative error vs librosa: {error:.2e} (tolerance {MEL_RTOL:.0e})")
    print(f"image tiles max abs difference vs starter loop: {tile_gap:.2e}")
    print(f"{repeats} repeats, in turns; median [min-max]")
    print(f"{'method':<36}{'windows/s':>20}")
    for name, values in rates.items():
        print(f"{name:<36}{spread(values, 1):>20}")
    print(f"speedup over the starter at its best: {spread(speedups, 1)}x")
    print(f"speedup on one thread each: {spread(serial, 1)}x")
    total = sum(float(np.median(v)) for v in steps.values())
    print(f"{'batched path, one thread':<36}{'ms/window':>20}{'share':>8}")
    for step, values in steps.items():
        print(f"{step:<36}{spread(values, 2):>20}{np.median(values) / total:>8.0%}")
    return float(np.median(speedups))
