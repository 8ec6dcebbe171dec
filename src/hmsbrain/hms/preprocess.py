"""EEG window -> model inputs: montage, band-pass, mel spectrogram tiles, image and raw branch.

Conventions: a raw EEG window is ``(..., samples, 20)`` float32 in the Kaggle column order; a
montage is ``(..., 16, samples)``, channels first, in :data:`~hmsbrain.constants.BIPOLAR_PAIRS`
order; spectrogram tiles are ``(..., 4, n_mels, n_frames)`` in chain order LL, RL, LP, RP.
Every function accepts a leading batch dimension, so a whole batch is one vectorised call.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import librosa
import numpy as np
import scipy.ndimage
import scipy.signal
from threadpoolctl import threadpool_limits

from hmsbrain.config import PreprocessConfig
from hmsbrain.hms.constants import (
    BIPOLAR_PAIRS,
    CHAIN_NAMES,
    EEG_COLUMNS,
    MIRROR_CHAIN,
    MIRROR_ELECTRODE,
    PAIRS_PER_CHAIN,
    SAMPLE_RATE,
    SPEC_BINS_PER_CHAIN,
)

# Bump whenever a change here changes what any function computes from the same window: the input
# cache is keyed on it, so inputs made by older code are never reused.
PREPROCESS_VERSION = 2

_COL = {name: i for i, name in enumerate(EEG_COLUMNS)}
_ANODES = np.array([_COL[a] for a, _ in BIPOLAR_PAIRS])
_CATHODES = np.array([_COL[b] for _, b in BIPOLAR_PAIRS])
# Index permutations that mirror the head left <-> right.
RAW_MIRROR = np.array([_COL[MIRROR_ELECTRODE[name]] for name in EEG_COLUMNS])
_PAIR_INDEX = {pair: i for i, pair in enumerate(BIPOLAR_PAIRS)}
MONTAGE_MIRROR = np.array(
    [_PAIR_INDEX[(MIRROR_ELECTRODE[a], MIRROR_ELECTRODE[b])] for a, b in BIPOLAR_PAIRS]
)
CHAIN_MIRROR = np.array([CHAIN_NAMES.index(MIRROR_CHAIN[c]) for c in CHAIN_NAMES])


# --- Cleaning ------------------------------------------------------------------------------------


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


# --- Montage and filtering -----------------------------------------------------------------------


def bipolar_montage(eeg: np.ndarray) -> np.ndarray:
    """``(..., samples, 20)`` referential EEG -> ``(..., 16, samples)`` double-banana montage."""
    eeg = np.asarray(eeg, dtype=np.float32)
    return np.swapaxes(eeg[..., _ANODES] - eeg[..., _CATHODES], -1, -2)


@functools.lru_cache(maxsize=16)
def _bandpass_sos(low: float, high: float, order: int, fs: float) -> np.ndarray:
    sos = scipy.signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    # float32 sections make sosfiltfilt run in float32: twice as fast, and within 1e-4 of the
    # float64 result relative to the signal peak, far below EEG noise.
    return sos.astype(np.float32)


def bandpass(signals: np.ndarray, cfg: PreprocessConfig, fs: float = SAMPLE_RATE) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (no phase shift of discharges)."""
    sos = _bandpass_sos(cfg.bandpass_low, cfg.bandpass_high, cfg.filter_order, fs)
    return scipy.signal.sosfiltfilt(sos, np.asarray(signals, dtype=np.float32), axis=-1)


def clean_montage(eeg: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """NaN-filled, band-passed, clipped montage in microvolts, ``(..., 16, samples)``."""
    eeg = np.asarray(eeg, dtype=np.float32)
    if not np.isfinite(eeg).all():
        flat = eeg.reshape(-1, *eeg.shape[-2:])
        eeg = np.stack([fill_nan(w) for w in flat]).reshape(eeg.shape)
    montage = bandpass(bipolar_montage(eeg), cfg)
    return np.clip(montage, -cfg.clip_uv, cfg.clip_uv)


# --- Mel spectrograms ----------------------------------------------------------------------------


def hop_length(n_samples: int, cfg: PreprocessConfig) -> int:
    """The starter-kernel hop: ``n_samples // n_frames`` (39 for a 50 s window, 256 frames)."""
    return n_samples // cfg.n_frames


@functools.lru_cache(maxsize=16)
def _mel_operators(
    sr: int, n_fft: int, win_length: int, n_mels: int, fmin: float, fmax: float
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


def mel_power(signals: np.ndarray, cfg: PreprocessConfig, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mel power spectrogram of ``(..., samples)``: ``(..., n_mels, n_frames)``.

    Equal to ``librosa.feature.melspectrogram(y, sr, n_fft, hop_length, win_length, n_mels,
    fmin, fmax)`` (centred frames, zero padding, power 2) cropped to its first ``n_frames``
    columns, for a whole batch at once.
    """
    signals = np.asarray(signals, dtype=np.float32)
    n = signals.shape[-1]
    hop = hop_length(n, cfg)
    dft, mel = _mel_operators(sr, cfg.n_fft, cfg.win_length, cfg.n_mels, cfg.fmin, cfg.fmax)
    # Frame t of librosa is centred on sample t * hop; its non-zero window part starts
    # n_fft // 2 - (n_fft - win_length) // 2 samples earlier.
    lead = cfg.n_fft // 2 - (cfg.n_fft - cfg.win_length) // 2
    pad_right = max(0, (cfg.n_frames - 1) * hop + cfg.win_length - lead - n)
    padded = np.pad(signals, [(0, 0)] * (signals.ndim - 1) + [(lead, pad_right)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.win_length, axis=-1)
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


def eeg_tiles(eeg: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Raw window(s) ``(..., samples, 20)`` -> chain tiles ``(..., 4, n_mels, n_frames)``."""
    return montage_tiles(clean_montage(eeg, cfg), cfg)


def montage_tiles(montage: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Clean montage ``(..., 16, samples)`` -> chain tiles ``(..., 4, n_mels, n_frames)``.

    Each chain tile is the mean of its four bipolar signals' dB mel spectrograms, scaled so
    that the peak is about +1 and the ``top_db`` floor is -1.
    """
    db = power_to_db(mel_power(montage, cfg), cfg.top_db)
    shape = (*db.shape[:-3], len(CHAIN_NAMES), PAIRS_PER_CHAIN, *db.shape[-2:])
    tiles = db.reshape(shape).mean(axis=-3)
    half = cfg.top_db / 2.0
    return ((tiles + half) / half).astype(np.float32)


def kaggle_tiles(spec: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """A Kaggle spectrogram window ``(rows, 400)`` -> tiles ``(4, n_mels, n_frames)``.

    Power is log-compressed with the clip range of the public starter kernels, standardised over
    the window, and resized to the EEG tile shape so both sources stack into one image. NaN
    (missing rows in real files) becomes 0, the window mean, after standardising.
    """
    spec = np.asarray(spec, dtype=np.float32)
    log = np.log(np.clip(spec, np.exp(-4.0), np.exp(8.0)))
    mean, std = np.nanmean(log), np.nanstd(log)
    log = np.nan_to_num((log - mean) / (std + 1e-6), nan=0.0)
    # (rows, chain*bins) -> (chain, bins, rows): frequency up the tile, time along it.
    tiles = log.reshape(log.shape[0], len(CHAIN_NAMES), SPEC_BINS_PER_CHAIN).transpose(1, 2, 0)
    zoom = (1.0, cfg.n_mels / tiles.shape[1], cfg.n_frames / tiles.shape[2])
    return scipy.ndimage.zoom(tiles, zoom, order=1, grid_mode=True, mode="nearest").astype(
        np.float32
    )


def build_image(eeg_tile: np.ndarray, kaggle_tile: np.ndarray | None = None) -> np.ndarray:
    """Tiles -> an ImageNet-shaped image ``(..., H, W, 3)``.

    The four chain tiles are stacked top to bottom (LL, RL, LP, RP); the Kaggle tiles, when given,
    sit to the right of the EEG tiles. The grey image is repeated over three channels because
    ImageNet backbones and their pretrained stems expect RGB.
    """
    image = _stack_chains(eeg_tile)
    if kaggle_tile is not None:
        image = np.concatenate([image, _stack_chains(kaggle_tile)], axis=-1)
    return np.repeat(image[..., None], 3, axis=-1)


def _stack_chains(tiles: np.ndarray) -> np.ndarray:
    """``(..., 4, n_mels, n_frames)`` -> ``(..., 4 * n_mels, n_frames)``, high frequency on top."""
    flipped = tiles[..., ::-1, :]  # row 0 of an image is its top
    return flipped.reshape(*tiles.shape[:-3], -1, tiles.shape[-1])


def raw_signal(montage: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Input of the 1D branch from a clean montage: scaled and decimated, ``(..., time, 16)``.

    Decimation is polyphase with its own anti-alias FIR filter: the band-pass edge (20 Hz) sits
    at the new Nyquist frequency (20 Hz at the default factor 5), and a Butterworth skirt is no
    anti-alias filter, so keeping every 5th sample would fold 20-40 Hz activity (muscle) into
    the band the model reads.
    """
    decimated = scipy.signal.resample_poly(montage, 1, cfg.raw_downsample, axis=-1)
    return np.swapaxes(decimated / cfg.scale_uv, -1, -2).astype(np.float32)


def map_batch(
    fn: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, workers: int = 0
) -> np.ndarray:
    """``fn(batch)``, computed on chunks of the leading axis in parallel threads.

    The filters, matrix products and logarithms above release the GIL, so threads use every
    core; BLAS is held to one thread per chunk meanwhile, since two levels of threading on the
    same cores only contend (measured: 1.8x over the serial batch on 2 cores, vs 1.0x without
    the limit). ``workers=0`` means one per CPU.
    """
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(batch) < 2:
        return fn(batch)
    chunks = np.array_split(batch, min(len(batch), 2 * workers))
    with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(fn, chunks)))


# --- Hemisphere swap -----------------------------------------------------------------------------


def swap_hemispheres_raw(eeg: np.ndarray) -> np.ndarray:
    """Mirror a referential window ``(..., samples, 20)`` left <-> right."""
    return eeg[..., RAW_MIRROR]


def swap_hemispheres_montage(montage: np.ndarray, axis: int = -2) -> np.ndarray:
    """Mirror a montage: ``montage(swap_raw(x)) == swap_montage(montage(x))``."""
    return np.take(montage, MONTAGE_MIRROR, axis=axis)


def swap_hemispheres_tiles(tiles: np.ndarray, axis: int = -3) -> np.ndarray:
    """Mirror chain tiles (LL <-> RL, LP <-> RP), EEG-derived or Kaggle."""
    return np.take(tiles, CHAIN_MIRROR, axis=axis)


def swap_hemispheres_spectrogram(spec: np.ndarray) -> np.ndarray:
    """Mirror a Kaggle spectrogram window ``(..., rows, 400)``: its chain column blocks swap
    LL <-> RL and LP <-> RP, as if the recording had been mirrored before it was computed."""
    blocks = spec.reshape(*spec.shape[:-1], len(CHAIN_NAMES), SPEC_BINS_PER_CHAIN)
    return np.take(blocks, CHAIN_MIRROR, axis=-2).reshape(spec.shape)


def swap_hemispheres_image(image: np.ndarray, axis: int = -3) -> np.ndarray:
    """Mirror an image built by :func:`build_image`: its four chain bands swap LL <-> RL, LP <-> RP.

    ``axis`` is the image's row axis (-3 for ``(..., H, W, C)``, -2 for ``(..., H, W)``). Both
    the EEG and the Kaggle tiles of a band belong to the same chain, so one permutation of the
    row bands mirrors the whole image, exactly as if the raw EEG had been mirrored first.
    """
    axis = axis % image.ndim
    bands = np.split(image, len(CHAIN_NAMES), axis=axis)
    # build_image stacks bands top to bottom in chain order; the swap permutes whole bands.
    return np.concatenate([bands[j] for j in CHAIN_MIRROR], axis=axis)
