"""Full-size synthetic HMS training data, with the real dataset's counts, at any fraction.

``python -m hmsbrain.hms.fullscale --fraction 0.05 --out data/hms-full-0.05`` writes a Kaggle
layout (``train.csv``, ``train_eegs/``, ``train_spectrograms/``) whose rows are the real ones of
``train_labels.parquet`` (106,519 windows of 17,001 EEGs and 11,087 spectrograms from 1,945
patients: their offsets, spectrogram ids, patients and votes), for a random ``fraction`` of the
patients. Each EEG is as long as its last labelled window needs (the median is 58 s, the
longest 57 minutes; 379 hours in all) and each spectrogram as long as its last 10-minute window
(2,368 hours of 2 s rows). Signals are the embedded demo's (1/f background, the class
signature of the EEG's majority vote, artefacts, EKG); spectrograms are smooth log-normal power
of the real files' range. It exists to measure what the real data costs: storage, build time,
memory and the input pipeline, at fractions small enough for a laptop, then extrapolated
(``python src/benchmark.py scale``).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from hmsbrain.atomic import atomic_dir, write_json
from hmsbrain.hms.constants import (
    CLASSES,
    EEG_COLUMNS,
    EEG_WINDOW_SECONDS,
    SPEC_SECONDS_PER_ROW,
    SPEC_WINDOW_ROWS,
    VOTE_COLUMNS,
)
from hmsbrain.hms.demo import _mix, _Patient, _recording, _spec_columns, _write_parquet

DEFAULT_LABELS = Path(__file__).resolve().parents[4] / "shared/data/hms-labels/train_labels.parquet"
MARKER = "fullscale.json"


def select_rows(labels: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """The rows of a random set of patients holding ``fraction`` of the EEGs (patients are
    whole, so the folds of the subset stay patient-grouped like the real ones)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"--fraction must lie in (0, 1], got {fraction}")
    per_patient = labels.groupby("patient_id")["eeg_id"].nunique()
    order = np.random.default_rng(seed).permutation(per_patient.index.to_numpy())
    cumulative = per_patient.loc[order].cumsum().to_numpy()
    keep = order[: int(np.searchsorted(cumulative, fraction * per_patient.sum())) + 1]
    return labels[labels["patient_id"].isin(keep)].reset_index(drop=True)


def _spectrogram(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Smooth log-normal power ``(rows, 400)`` in the real files' range (about e^-2..e^6)."""
    drift = np.cumsum(rng.normal(0, 0.15, (rows, 1)), axis=0)
    profile = np.linspace(2.5, -0.5, 100)  # power falls with frequency, per chain
    log_power = np.tile(profile, 4)[None, :] + drift + rng.normal(0, 0.6, (rows, 400))
    return np.round(np.exp(log_power), 2).astype(np.float32)


def generate(out: Path, rows: pd.DataFrame, seed: int, workers: int = 2) -> dict[str, float]:
    """Write the EEGs, spectrograms and ``train.csv`` of ``rows`` into the empty ``out``."""
    (out / "train_eegs").mkdir()
    (out / "train_spectrograms").mkdir()
    eeg_seconds = rows.groupby("eeg_id")["eeg_label_offset_seconds"].max() + EEG_WINDOW_SECONDS
    spec_rows = (
        rows.groupby("spectrogram_id")["spectrogram_label_offset_seconds"].max()
        // SPEC_SECONDS_PER_ROW
    ).astype(int) + SPEC_WINDOW_ROWS
    votes = rows.groupby("eeg_id")[list(VOTE_COLUMNS)].sum()
    patient_of = rows.groupby("eeg_id")["patient_id"].first()

    def write_eeg(eeg_id: int) -> None:
        rng = np.random.default_rng([seed, int(eeg_id)])  # per-EEG stream: order-independent
        patient = _Patient(
            int(patient_of[eeg_id]),
            float(rng.lognormal(0.0, 0.3)) * 20.0,
            float(rng.uniform(7.5, 11.5)),
            float(rng.uniform(0.9, 1.6)),
            float(rng.uniform(1.0, 8.0)),
            0,
        )
        mix, _ = _mix(rng, int(np.argmax(votes.loc[eeg_id].to_numpy())))
        signal = _recording(rng, patient, float(eeg_seconds[eeg_id]), mix)
        _write_parquet(out / "train_eegs" / f"{eeg_id}.parquet", signal, list(EEG_COLUMNS))

    columns = _spec_columns()

    def write_spec(spec_id: int) -> None:
        rng = np.random.default_rng([seed, int(spec_id), 1])
        spec = _spectrogram(rng, int(spec_rows[spec_id]))
        time = np.arange(len(spec), dtype=np.int64) * SPEC_SECONDS_PER_ROW + 1
        _write_parquet(out / "train_spectrograms" / f"{spec_id}.parquet", spec, columns, time)

    # The FFTs and parquet encoding release the GIL; each thread holds one recording at a time.
    with ThreadPoolExecutor(workers) as pool:
        list(tqdm(pool.map(write_eeg, eeg_seconds.index), total=len(eeg_seconds), desc="EEGs"))
        list(tqdm(pool.map(write_spec, spec_rows.index), total=len(spec_rows), desc="spectrograms"))
    rows.to_csv(out / "train.csv", index=False)
    return {
        "eegs": len(eeg_seconds),
        "windows": len(rows),
        "patients": int(rows["patient_id"].nunique()),
        "spectrograms": len(spec_rows),
        "eeg_hours": float(eeg_seconds.sum() / 3600),
        "spectrogram_rows": int(spec_rows.sum()),
    }


def ensure_fullscale(
    out: str | Path,
    fraction: float,
    seed: int = 0,
    labels: str | Path = DEFAULT_LABELS,
    workers: int = 2,
) -> tuple[Path, dict[str, float]]:
    """The dataset at ``out`` for ``fraction``, generated on first use; with its counts."""
    out = Path(out)
    wanted = {"fraction": fraction, "seed": seed, "classes": list(CLASSES)}
    marker = out / MARKER
    if marker.is_file():
        import json

        saved = json.loads(marker.read_text())
        if {k: saved.get(k) for k in wanted} == wanted:
            return out, saved["counts"]
    if out.exists() and any(out.iterdir()) and not marker.is_file():
        raise FileExistsError(
            f"{out}: exists and is not a full-scale dataset; choose another --out"
        )
    labels = Path(labels)
    if not labels.is_file():
        raise FileNotFoundError(
            f"{labels}: not found; the full-scale dataset copies the real vote table "
            "(train_labels.parquet); pass --labels"
        )
    rows = select_rows(pd.read_parquet(labels), fraction, seed)
    with atomic_dir(out, replace=True) as tmp:
        counts = generate(tmp, rows, seed, workers)
        write_json(tmp / MARKER, {**wanted, "counts": counts})
    return out, counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hmsbrain.hms.fullscale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the patients")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out, counts = ensure_fullscale(args.out, args.fraction, args.seed, args.labels)
    print(f"{out}: {counts}")


if __name__ == "__main__":
    main()
