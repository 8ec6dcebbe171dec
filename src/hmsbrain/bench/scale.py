"""What the real HMS training set costs, measured at fractions of its full size and extrapolated.

For each fraction, the full-scale synthetic dataset (:mod:`hmsbrain.hms.fullscale`: the real
counts, lengths, offsets, spectrogram ids, patients and votes) is generated once, then the
recording store is built in a child process, which reports its wall time and its own peak
resident memory. Sizes and times are fitted against the EEG hours and spectrogram rows the
fraction holds (through the origin: no fixed cost), and extrapolated to the whole set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.hms.fullscale import DEFAULT_LABELS, ensure_fullscale

SRC = Path(__file__).resolve().parents[2]
# Build the store of one split in this child and report its cost (the parent's memory, holding
# the benchmark itself, must not count).
_CHILD = """
import json, resource, shutil, sys, time
from pathlib import Path
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.store import open_store, store_bytes
cache = Path(sys.argv[2]); shutil.rmtree(cache, ignore_errors=True)
start = time.perf_counter()
store = open_store(HMSData(sys.argv[1]), cache, sys.argv[3], True, False, int(sys.argv[4]))
seconds = time.perf_counter() - start
print(json.dumps({
    "build_s": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "montage_bytes": (store.root / "montage.npy").stat().st_size,
    "spectrogram_bytes": store_bytes(store.root / "spectrograms"),
    "cache_bytes": store_bytes(store.root),
}))
"""


def full_counts(labels: Path = DEFAULT_LABELS) -> dict[str, float]:
    """The whole train set's counts, from the vote table."""
    rows = pd.read_parquet(labels)
    hours = (rows.groupby("eeg_id")["eeg_label_offset_seconds"].max() + 50).sum() / 3600
    spec = rows.groupby("spectrogram_id")["spectrogram_label_offset_seconds"].max() // 2 + 300
    return {
        "eegs": rows["eeg_id"].nunique(),
        "windows": len(rows),
        "eeg_hours": float(hours),
        "spectrogram_rows": int(spec.sum()),
    }


def build_cost(data_dir: Path, cache: Path, dtype: str, workers: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data_dir), str(cache), dtype, str(workers)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the store of {data_dir} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_scale(
    fractions: list[float],
    root: Path,
    dtype: str = "float16",
    workers: int = 2,
    seed: int = 0,
    labels: Path = DEFAULT_LABELS,
) -> pd.DataFrame:
    """One row of counts and costs per fraction, printed with the extrapolation to full size."""
    rows = []
    for fraction in fractions:
        data_dir, counts = ensure_fullscale(
            root / f"fraction-{fraction:g}", fraction, seed, labels, workers
        )
        cost = build_cost(data_dir, root / f"store-{fraction:g}", dtype, workers)
        rows.append({"fraction": fraction, **counts, **cost})
    table = pd.DataFrame(rows)
    full = full_counts(labels)
    drivers = table[["eeg_hours", "spectrogram_rows"]].to_numpy(np.float64)
    target = np.array([full["eeg_hours"], full["spectrogram_rows"]])
    extrapolated = {}
    for column in ("montage_bytes", "spectrogram_bytes", "build_s"):
        # Each cost is linear in what the store holds: hours of montage, rows of spectrogram.
        coef, *_ = np.linalg.lstsq(drivers, table[column].to_numpy(np.float64), rcond=None)
        extrapolated[column] = float(coef @ target)
        table[f"{column}_fit_error"] = (drivers @ coef - table[column]) / table[column]
    _print(table, full, extrapolated, dtype)
    return table


def _print(table: pd.DataFrame, full: dict, extra: dict, dtype: str) -> None:
    print(f"recording store ({dtype} montage, 16-bit compressed spectrograms), one build each:")
    header = (
        f"{'fraction':>8} {'EEGs':>6} {'windows':>8} {'hours':>7} {'cache GB':>9} "
        f"{'build s':>8} {'peak RSS GB':>12} {'GB/hour':>8} {'s/hour':>7}"
    )
    print(header)
    for r in table.itertuples():
        print(
            f"{r.fraction:>8g} {r.eegs:>6} {r.windows:>8} {r.eeg_hours:>7.1f} "
            f"{r.cache_bytes / 1e9:>9.3f} {r.build_s:>8.1f} {r.peak_rss / 1e9:>12.2f} "
            f"{r.montage_bytes / 1e9 / r.eeg_hours:>8.4f} "
            f"{r.build_s / r.eeg_hours:>7.2f}"
        )
    worst_fit = table.filter(like="fit_error").abs().to_numpy().max()
    cache = extra["montage_bytes"] + extra["spectrogram_bytes"]
    print(
        f"full set (extrapolated, linear fit within {worst_fit:.1%} at every fraction): "
        f"{full['eegs']} EEGs, {full['windows']} windows, {full['eeg_hours']:.0f} hours, "
        f"{full['spectrogram_rows']} spectrogram rows -> cache {cache / 1e9:.2f} GB "
        f"(montage {extra['montage_bytes'] / 1e9:.2f}, spectrograms "
        f"{extra['spectrogram_bytes'] / 1e9:.2f}), build {extra['build_s'] / 60:.1f} min, peak "
        f"RSS {table['peak_rss'].max() / 1e9:.2f} GB (the largest at any fraction; the build "
        "holds a few recordings at a time, whatever the size)"
    )
