"""The Kaggle HMS layout as a :class:`~hmsbrain.data.dataset.Dataset`: labelled 50 s windows
read on demand, scored per EEG (the sum of its sub-windows' votes), folds kept per patient."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.config import PreprocessConfig
from hmsbrain.data.dataset import Dataset
from hmsbrain.hms.constants import (
    CHAIN_NAMES,
    EEG_COLUMNS,
    EEG_WINDOW_SAMPLES,
    EEG_WINDOW_SECONDS,
    SPEC_BINS_PER_CHAIN,
    SPEC_WINDOW_ROWS,
    VOTE_COLUMNS,
)
from hmsbrain.hms.inputs import row_inputs, uses_spectrogram, window_inputs
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.preprocess import HMS_MONTAGE
from hmsbrain.models.inputs import Batch


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
    return pd.DataFrame({
        "id": targets.index.to_numpy(), "group": patients.loc[targets.index].to_numpy(),
        "label": targets.to_numpy().argmax(axis=1),
    })  # fmt: skip


class HMSDataset(Dataset):
    id_column = "eeg_id"
    classes = VOTE_COLUMNS
    hard = False
    group_kind = "patient"
    montage = HMS_MONTAGE
    epoch_seconds = float(EEG_WINDOW_SECONDS)

    def __init__(self, root: str | Path, split: str, cfg: PreprocessConfig) -> None:
        self.data = HMSData(root, split)
        self.root, self.split, self.cfg = self.data.root, split, cfg
        self.rows = self.data.rows.assign(group=self.data.rows["patient_id"])

    def unit_targets(self, rows: pd.DataFrame) -> pd.DataFrame:
        return eeg_targets(rows)

    def unit_votes(self, rows: pd.DataFrame) -> pd.Series:
        return eeg_vote_counts(rows)

    def fold_units(self) -> pd.DataFrame:
        return eeg_fold_units(self.rows)

    def row_votes(self, rows: pd.DataFrame) -> np.ndarray:
        return rows[list(VOTE_COLUMNS)].sum(axis=1).to_numpy()

    def inputs(self, rows: Sequence[int], names: Sequence[str]) -> Batch:
        return row_inputs(self.data, rows, self.cfg, names)

    def blank_inputs(self, names: Sequence[str]) -> Batch:
        return window_inputs(
            np.zeros((1, EEG_WINDOW_SAMPLES, len(EEG_COLUMNS)), np.float32),
            [np.zeros((SPEC_WINDOW_ROWS, len(CHAIN_NAMES) * SPEC_BINS_PER_CHAIN), np.float32)],
            self.cfg, names,
        )  # fmt: skip

    def input_files(self, names: Sequence[str]) -> list[Path]:
        rows = self.data.rows
        files = [self.data.eeg_path(i) for i in rows["eeg_id"].unique()]
        if uses_spectrogram(self.cfg, names):
            files += [self.data.spectrogram_path(i) for i in rows["spectrogram_id"].unique()]
        return [self.data.root / ("train.csv" if self.split == "train" else "test.csv"), *files]

    def source(self, unit: object) -> str:
        return str(self.data.eeg_path(int(unit)))  # type: ignore[call-overload]
