"""Storage that scales with hours of EEG, not with labelled windows (``data.storage: recordings``).

The real HMS train set has 106,800 labelled 50 s windows over 379 hours of EEG: the windows
overlap heavily, so caching every window's model inputs (0.6 MB each at the full recipe, 60 GB)
stores the same seconds many times and computes every spectrogram before training starts. This
store keeps each recording once instead, and windows are cut, filtered and turned into model
inputs at batch time (in the input pipeline's worker threads), which also makes random time
shifts free:

- ``montage.npy``: every EEG's double-banana montage, NaN-filled, one after another in one
  memory-mapped ``(total samples, 16)`` array, float16 by default (``data.store_dtype``); a
  window is one contiguous slice. ``index.parquet`` maps eeg_id to its first sample and length.
- ``spectrograms/<spectrogram_id>.npz``: each Kaggle spectrogram once, as the log values the
  model uses (``log(clip(power, e^-4, e^8))``) in 16-bit fixed point (steps of 1.8e-4, below
  the 1e-4-of-scale the tiles need after standardising), compressed (1.5x on the real files).

Filtering stays per window, after the cut, so a window's inputs are the per-window path's
computed from the stored montage. float32 storage reproduces that path exactly; float16 halves
the size and changes only the spectrogram's noise floor (see the storage figures in
docs/how-to/scale.md).
The store is keyed like the input cache (code version, recipe, file stats), built in a unique
temporary folder and renamed into place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from hmsbrain.atomic import atomic_dir, atomic_path, write_json
from hmsbrain.data.base import DataError
from hmsbrain.dsp.filters import fill_nan
from hmsbrain.hms.constants import (
    EEG_WINDOW_SAMPLES,
    SAMPLE_RATE,
    SPEC_SECONDS_PER_ROW,
    SPEC_WINDOW_ROWS,
)
from hmsbrain.hms.layout import HMSData, read_eeg, read_spectrogram
from hmsbrain.hms.preprocess import bipolar_montage

log = logging.getLogger(__name__)

STORE_VERSION = 1
STORE_DTYPES = ("float16", "float32")
LOG_LOW, LOG_HIGH = -4.0, 8.0  # the log clip of kaggle_tiles (public starter kernels')
NAN_CODE = np.iinfo(np.int16).min
_STEP = (LOG_HIGH - LOG_LOW) / (np.iinfo(np.int16).max - NAN_CODE - 1)


def encode_log_spectrogram(spec: np.ndarray) -> np.ndarray:
    """Power ``(rows, 400)`` -> int16 fixed-point log power; NaN (missing rows) -> NAN_CODE."""
    log_power = np.log(np.clip(spec.astype(np.float64), np.exp(LOG_LOW), np.exp(LOG_HIGH)))
    codes = np.round((log_power - LOG_LOW) / _STEP) + NAN_CODE + 1
    return np.where(np.isnan(spec), NAN_CODE, codes).astype(np.int16)


def decode_log_spectrogram(codes: np.ndarray) -> np.ndarray:
    """The float32 log power of :func:`encode_log_spectrogram`, NaN where it was missing."""
    values = (codes.astype(np.float32) - (NAN_CODE + 1)) * np.float32(_STEP) + np.float32(LOG_LOW)
    return np.where(codes == NAN_CODE, np.float32(np.nan), values)


@dataclass(eq=False)  # compared by identity: one store per split and process
class RecordingStore:
    """Every recording of one split, once; windows are cut on demand."""

    root: Path
    montage: np.ndarray  # (total samples, 16) memory map
    index: dict[int, tuple[int, int]]  # eeg_id -> (first sample, samples)
    failed: dict[int, str]  # eeg_id -> why it could not be stored (fallback builds)
    sources: dict[int, str]  # eeg_id -> its parquet file, for messages
    failed_spectrograms: dict[int, str]  # spectrogram_id -> why it could not be stored

    def __post_init__(self) -> None:
        # A few spectrograms, decoded, per store: the windows of one EEG share its spectrogram.
        self.log_spectrogram = functools.lru_cache(maxsize=64)(self._read_log_spectrogram)

    def montage_window(self, eeg_id: int, offset_seconds: float) -> np.ndarray:
        """The 50 s montage window at ``offset_seconds``, ``(16, 10000)`` float32."""
        if eeg_id in self.failed:
            raise DataError(self.failed[eeg_id])
        first, length = self.index[eeg_id]
        start = round(offset_seconds * SAMPLE_RATE)
        if start < 0 or start + EEG_WINDOW_SAMPLES > length:
            raise DataError(
                f"{self.sources[eeg_id]}: too short: the window at offset {offset_seconds:g} s "
                f"needs samples {start}..{start + EEG_WINDOW_SAMPLES}, but the recording has "
                f"{length}"
            )
        window = self.montage[first + start : first + start + EEG_WINDOW_SAMPLES]
        return np.asarray(window, dtype=np.float32).T

    def _read_log_spectrogram(self, spec_id: int) -> np.ndarray:
        if spec_id in self.failed_spectrograms:
            raise DataError(self.failed_spectrograms[spec_id])
        path = self.root / "spectrograms" / f"{spec_id}.npz"
        with np.load(path) as stored:
            return decode_log_spectrogram(stored["codes"])

    def spectrogram_window(self, spec_id: int, offset_seconds: float) -> np.ndarray:
        """The 10 min window of log power at ``offset_seconds``, ``(300, 400)``."""
        spec = self.log_spectrogram(spec_id)
        start = int(offset_seconds // SPEC_SECONDS_PER_ROW)
        if start < 0 or start + SPEC_WINDOW_ROWS > len(spec):
            raise DataError(
                f"spectrogram {spec_id}: too short: the window at offset {offset_seconds:g} s "
                f"needs rows {start}..{start + SPEC_WINDOW_ROWS}, but it has {len(spec)} rows"
            )
        return spec[start : start + SPEC_WINDOW_ROWS]


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def store_key(data: HMSData, dtype: str, spectrograms: bool) -> str:
    """Hash of everything the store depends on: code version, dtype, and every file's stats."""
    digest = hashlib.sha1(f"{STORE_VERSION}|{dtype}|{spectrograms}|{data.split}".encode())
    digest.update(str(data.root.resolve()).encode())
    for eeg_id in sorted(data.rows["eeg_id"].unique()):
        digest.update(f"{eeg_id}:{_stat(data.eeg_path(eeg_id))};".encode())
    if spectrograms:
        for spec_id in sorted(data.rows["spectrogram_id"].unique()):
            digest.update(f"s{spec_id}:{_stat(data.spectrogram_path(spec_id))};".encode())
    return digest.hexdigest()[:16]


def open_store(
    data: HMSData,
    cache_dir: str | Path,
    dtype: str = "float16",
    spectrograms: bool = True,
    fallback: bool = False,
    workers: int = 2,
) -> RecordingStore:
    """The store of ``data`` under ``cache_dir``, built on first use."""
    if dtype not in STORE_DTYPES:
        raise DataError(f"data.store_dtype={dtype!r} is not one of {list(STORE_DTYPES)}")
    root = Path(cache_dir) / f"store-{data.split}-{store_key(data, dtype, spectrograms)}"
    if not (root / "meta.json").is_file():
        with atomic_dir(root) as tmp:
            build_store(data, tmp, dtype, spectrograms, fallback, workers)
    meta = json.loads((root / "meta.json").read_text())
    failed = {int(k): v for k, v in meta["failed"].items()}
    if failed and not fallback:
        reason = next(iter(failed.values()))
        raise DataError(f"{reason} ({len(failed)} EEGs of {data.split} could not be stored)")
    index = pd.read_parquet(root / "index.parquet")
    return RecordingStore(
        root,
        np.load(root / "montage.npy", mmap_mode="r"),
        {int(e): (int(f), int(n)) for e, f, n in index.itertuples(index=False)},
        failed,
        {int(e): str(data.eeg_path(e)) for e in data.rows["eeg_id"].unique()},
        {int(k): v for k, v in meta["failed_spectrograms"].items()},
    )


def _recording_length(path: Path) -> int | str:
    """Samples in an EEG file, from its parquet footer alone, or why it cannot be read."""
    try:
        return pq.read_metadata(path).num_rows
    except (OSError, ValueError) as exc:  # missing, not parquet, truncated
        return f"{path}: cannot be read ({exc})"


def build_store(
    data: HMSData, root: Path, dtype: str, spectrograms: bool, fallback: bool, workers: int
) -> None:
    """Write the store of ``data`` into the (empty) folder ``root``."""
    eeg_ids = sorted(int(i) for i in data.rows["eeg_id"].unique())
    lengths = {e: _recording_length(data.eeg_path(e)) for e in eeg_ids}
    failed = {e: str(n) for e, n in lengths.items() if isinstance(n, str)}
    if failed and not fallback:
        raise DataError(next(iter(failed.values())))
    kept = [e for e in eeg_ids if e not in failed]
    sizes = np.array([lengths[e] for e in kept], dtype=np.int64)
    firsts = np.cumsum(sizes) - sizes
    # The .npy header comes from numpy; the samples are then written with positioned writes, not
    # through a memory map: written pages of a map stay resident in the process, so its memory
    # would grow with the store (to 9 GB at full size) instead of holding a few recordings.
    header = np.lib.format.open_memmap(
        root / "montage.npy", "w+", np.dtype(dtype), (int(sizes.sum()), 16)
    )
    data_offset = header.offset
    del header
    fd = os.open(root / "montage.npy", os.O_WRONLY)
    row_bytes = 16 * np.dtype(dtype).itemsize

    def store_one(position: int) -> tuple[int, str | None]:
        eeg_id = kept[position]
        try:
            eeg = fill_nan(read_eeg(data.eeg_path(eeg_id)))
        except DataError as exc:
            if not fallback:
                raise
            return eeg_id, str(exc)
        samples = np.ascontiguousarray(bipolar_montage(eeg).T, dtype=dtype)
        os.pwrite(fd, samples.tobytes(), data_offset + int(firsts[position]) * row_bytes)
        return eeg_id, None

    # Parquet decoding and the montage release the GIL: threads use every core. Each thread
    # holds one recording at a time, so memory stays at a few recordings whatever the size.
    try:
        with ThreadPoolExecutor(workers) as pool, tqdm(total=len(kept), desc="storing EEGs") as bar:
            for eeg_id, reason in pool.map(store_one, range(len(kept))):
                if reason is not None:
                    failed[eeg_id] = reason
                bar.update()
    finally:
        os.close(fd)
    index = pd.DataFrame({"eeg_id": kept, "first": firsts, "samples": sizes})
    with atomic_path(root / "index.parquet") as tmp:
        index.to_parquet(tmp, index=False)
    spec_ids = sorted(int(i) for i in data.rows["spectrogram_id"].unique()) if spectrograms else []
    if spec_ids:
        (root / "spectrograms").mkdir()

    def store_spec(spec_id: int) -> str | None:
        try:
            codes = encode_log_spectrogram(read_spectrogram(data.spectrogram_path(spec_id)))
        except DataError as exc:
            if not fallback:
                raise
            return str(exc)
        with (root / "spectrograms" / f"{spec_id}.npz").open("wb") as handle:
            np.savez_compressed(handle, codes=codes)
        return None

    failed_specs: dict[int, str] = {}
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(spec_ids), desc="storing spectrograms") as bar,
    ):
        for spec_id, reason in zip(spec_ids, pool.map(store_spec, spec_ids), strict=True):
            if reason is not None:  # its EEGs' windows fail at batch time, naming it
                log.warning("spectrogram %s cannot be stored: %s", spec_id, reason)
                failed_specs[spec_id] = reason
            bar.update()
    write_json(
        root / "meta.json",
        {
            "version": STORE_VERSION,
            "dtype": dtype,
            "split": data.split,
            "eegs": len(kept),
            "samples": int(sizes.sum()),
            "spectrograms": len(spec_ids),
            "failed": {str(k): v for k, v in failed.items()},
            "failed_spectrograms": {str(k): v for k, v in failed_specs.items()},
        },
    )


def store_bytes(root: Path) -> int:
    """Bytes the store takes on disk."""
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())
