"""The Kaggle HMS layout as a :class:`~hmsbrain.data.dataset.Dataset`: labelled 50 s windows
read on demand, scored per EEG (the sum of its sub-windows' votes), folds kept per patient."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.config import ConfigError, PreprocessConfig
from hmsbrain.core.inputs import Batch
from hmsbrain.data.dataset import Dataset
from hmsbrain.dsp.parallel import map_batch
from hmsbrain.dsp.pipeline import band_limit, montage_inputs
from hmsbrain.hms.constants import (
    CHAIN_NAMES,
    EEG_COLUMNS,
    EEG_WINDOW_SAMPLES,
    EEG_WINDOW_SECONDS,
    SAMPLE_RATE,
    SPEC_BINS_PER_CHAIN,
    SPEC_SECONDS_PER_ROW,
    SPEC_WINDOW_ROWS,
    VOTE_COLUMNS,
)
from hmsbrain.hms.inputs import row_inputs, uses_spectrogram, window_inputs
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.preprocess import HMS_MONTAGE, kaggle_tiles_from_log
from hmsbrain.hms.store import RecordingStore


def eeg_targets(rows: pd.DataFrame) -> pd.DataFrame:
    """EEG-level targets: each EEG's sub-window votes summed, then normalised.

    Every EEG-level score (validation, OOF, CV) uses this target.
    """
    votes = rows.groupby("eeg_id", sort=True)[list(VOTE_COLUMNS)].sum()
    return votes.div(votes.sum(axis=1), axis=0)


def eeg_vote_counts(rows: pd.DataFrame) -> pd.Series:
    """Votes per EEG, indexed by eeg_id: the median of its sub-windows' totals (they rarely
    differ). The "at least N votes" subsets of training, selection and CV use it."""
    totals = rows[list(VOTE_COLUMNS)].sum(axis=1)
    return totals.groupby(rows["eeg_id"]).median()


def eeg_fold_units(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per EEG for the folds: ``id`` (eeg_id), ``group`` (its patient) and ``label``
    (the majority class of its summed votes)."""
    targets = eeg_targets(rows)
    patients = rows.groupby("eeg_id", sort=True)["patient_id"].first()
    return pd.DataFrame(
        {
            "id": targets.index.to_numpy(),
            "group": patients.loc[targets.index].to_numpy(),
            "label": targets.to_numpy().argmax(axis=1),
        }
    )


class HMSDataset(Dataset):
    id_column = "eeg_id"
    classes = VOTE_COLUMNS
    hard = False
    group_kind = "patient"
    montage = HMS_MONTAGE
    epoch_seconds = float(EEG_WINDOW_SECONDS)

    def __init__(
        self,
        root: str | Path,
        split: str,
        cfg: PreprocessConfig,
        store: RecordingStore | None = None,
    ) -> None:
        """``store``: read windows from this recording store instead of the parquet files."""
        self.data = HMSData(root, split)
        self.root, self.split, self.cfg, self.store = self.data.root, split, cfg, store
        self.rows = self.data.rows.assign(group=self.data.rows["patient_id"])

    def unit_targets(self, rows: pd.DataFrame) -> pd.DataFrame:
        return eeg_targets(rows)

    def unit_votes(self, rows: pd.DataFrame) -> pd.Series:
        return eeg_vote_counts(rows)

    def fold_units(self) -> pd.DataFrame:
        return eeg_fold_units(self.rows)

    def row_votes(self, rows: pd.DataFrame) -> np.ndarray:
        return rows[list(VOTE_COLUMNS)].sum(axis=1).to_numpy()

    def inputs(
        self, rows: Sequence[int], names: Sequence[str], shifts: np.ndarray | None = None
    ) -> Batch:
        if self.store is None:
            if shifts is not None:
                raise ConfigError("train.shift_seconds needs data.storage=recordings")
            return row_inputs(self.data, rows, self.cfg, names)
        return self._store_inputs(rows, names, shifts)

    def _store_inputs(
        self, rows: Sequence[int], names: Sequence[str], shifts: np.ndarray | None
    ) -> Batch:
        """Windows cut from the recording store, moved by ``shifts`` seconds (kept inside
        both files), then filtered and turned into inputs exactly as the per-window path."""
        store, table = self.store, self.data.rows.iloc[list(rows)]
        assert store is not None
        spectrogram = uses_spectrogram(self.cfg, names)
        shifts = np.zeros(len(table)) if shifts is None else np.asarray(shifts, np.float64)
        windows, logs = [], []
        for row, shift in zip(table.itertuples(index=False), shifts, strict=True):
            eeg_id, offset = int(row.eeg_id), float(row.eeg_label_offset_seconds)
            seconds = store.index[eeg_id][1] / SAMPLE_RATE if eeg_id in store.index else 0.0
            low, high = -offset, seconds - EEG_WINDOW_SECONDS - offset
            if spectrogram:
                spec_offset = float(row.spectrogram_label_offset_seconds)
                rows_there = len(store.log_spectrogram(int(row.spectrogram_id)))
                low = max(low, -spec_offset)
                high = min(
                    high, (rows_there - SPEC_WINDOW_ROWS) * SPEC_SECONDS_PER_ROW - spec_offset
                )
            shift = float(np.clip(shift, low, high)) if low <= high else 0.0
            windows.append(store.montage_window(eeg_id, offset + shift))
            if spectrogram:
                logs.append(store.spectrogram_window(int(row.spectrogram_id), spec_offset + shift))
        montage = map_batch(lambda m: band_limit(m, self.cfg), np.stack(windows))
        kaggle = np.stack([kaggle_tiles_from_log(w, self.cfg) for w in logs]) if logs else None
        return montage_inputs(montage, HMS_MONTAGE, self.cfg, names, side_tiles=kaggle)

    def blank_inputs(self, names: Sequence[str]) -> Batch:
        return window_inputs(
            np.zeros((1, EEG_WINDOW_SAMPLES, len(EEG_COLUMNS)), np.float32),
            [np.zeros((SPEC_WINDOW_ROWS, len(CHAIN_NAMES) * SPEC_BINS_PER_CHAIN), np.float32)],
            self.cfg,
            names,
        )

    def input_files(self, names: Sequence[str]) -> list[Path]:
        rows = self.data.rows
        files = [self.data.eeg_path(i) for i in rows["eeg_id"].unique()]
        if uses_spectrogram(self.cfg, names):
            files += [self.data.spectrogram_path(i) for i in rows["spectrogram_id"].unique()]
        return [self.data.root / ("train.csv" if self.split == "train" else "test.csv"), *files]

    def source(self, unit: object) -> str:
        return str(self.data.eeg_path(int(unit)))  # type: ignore[call-overload]
