"""The one interface training, prediction, export and ensembling use for any data source.

A :class:`Dataset` is one split of windows (labelled epochs, or windows to predict). Its
``rows`` table has one row per window with the scoring unit's id (``id_column``), a ``group``
(the subject, patient or file that folds keep together) and, when labelled, one target column
per class. Several rows may share a unit: an HMS EEG has several labelled sub-windows, scored as
one. ``inputs`` turns rows into model inputs; the source decides how (:class:`EpochDataset` for
every generic layout, :class:`hmsbrain.hms.dataset.HMSDataset` for the Kaggle layout).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.config import ConfigError, PreprocessConfig
from hmsbrain.core.inputs import Batch
from hmsbrain.data.base import DataError, Epochs
from hmsbrain.dsp.filters import resample
from hmsbrain.dsp.montage import Montage, choose_montage
from hmsbrain.dsp.pipeline import crop_grid, epoch_inputs

EPOCH_ID = "epoch"


class Dataset(ABC):
    root: Path
    split: str
    id_column: str
    classes: tuple[str, ...]
    hard: bool
    group_kind: str  # what a fold keeps together: "patient", "subject", "file" or "epoch"
    rows: pd.DataFrame
    montage: Montage
    cfg: PreprocessConfig
    epoch_seconds: float  # the length of one window

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labelled(self) -> bool:
        return bool(self.classes) and set(self.classes) <= set(self.rows.columns)

    def _need_labels(self) -> None:
        if not self.labelled:
            raise DataError(f"{self.root}: the {self.split} split has no labels")

    def row_targets(self, rows: pd.DataFrame | None = None) -> np.ndarray:
        """Target distribution of each row, ``(rows, classes)`` float32."""
        self._need_labels()
        rows = self.rows if rows is None else rows
        values = rows[list(self.classes)].to_numpy(np.float64)
        return (values / values.sum(axis=1, keepdims=True)).astype(np.float32)

    @abstractmethod
    def unit_targets(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The target of each unit among ``rows`` (index: unit id; columns: classes)."""

    @abstractmethod
    def unit_votes(self, rows: pd.DataFrame) -> pd.Series:
        """Raters behind each unit's target (index: unit id): the HMS vote counts; 1 for a
        hard label. The "at least N votes" subsets use it."""

    def row_votes(self, rows: pd.DataFrame) -> np.ndarray:
        """Raters behind each row's target."""
        return self.unit_votes(rows).loc[rows[self.id_column]].to_numpy()

    def fold_units(self) -> pd.DataFrame:
        """One row per unit: ``id``, ``group`` and ``label`` (its majority class), for folds."""
        targets = self.unit_targets(self.rows)
        groups = self.rows.groupby(self.id_column, sort=True)["group"].first()
        return pd.DataFrame(
            {
                "id": targets.index.to_numpy(),
                "group": groups.loc[targets.index].to_numpy(),
                "label": targets.to_numpy().argmax(axis=1),
            }
        )

    @abstractmethod
    def inputs(
        self, rows: Sequence[int], names: Sequence[str], shifts: np.ndarray | None = None
    ) -> Batch:
        """Model inputs ``names`` of the rows at positions ``rows``, each window moved by
        ``shifts`` seconds where the source can cut windows anywhere (else an error)."""

    @abstractmethod
    def blank_inputs(self, names: Sequence[str]) -> Batch:
        """Inputs of one all-zero window: their shapes, before any file is read."""

    @abstractmethod
    def input_files(self, names: Sequence[str]) -> list[Path]:
        """Every file the inputs ``names`` are read from (their stats key the input cache)."""

    @abstractmethod
    def source(self, unit: object) -> str:
        """The file a unit comes from, for messages."""


class EpochDataset(Dataset):
    """Epochs read by a generic layout reader (:mod:`hmsbrain.data.layouts`), preprocessed by
    the generic pipeline (:mod:`hmsbrain.dsp.pipeline`) in the recipe's montage."""

    id_column = EPOCH_ID

    def __init__(
        self,
        epochs: Epochs,
        root: Path,
        split: str,
        cfg: PreprocessConfig,
        extra_files: Sequence[Path] = (),
    ) -> None:
        self.epochs, self.root, self.split, self.cfg = epochs, Path(root), split, cfg
        self.classes = tuple(epochs.classes)
        self.hard = epochs.hard
        self.epoch_seconds = epochs.signals.shape[-1] / epochs.sfreq
        self._extra = tuple(map(Path, extra_files))
        self._files = [*sorted({self.root / f for f in epochs.files}), *self._extra]
        self.montage = choose_montage(cfg.montage, epochs.channels, cfg.max_image_groups)
        if epochs.groups is not None:
            groups, self.group_kind = epochs.groups, "subject"
        elif 1 < len(set(epochs.files)) < len(epochs.files):
            groups, self.group_kind = epochs.files, "file"  # every epoch of a file in one fold
        # One file holding every epoch (X.npy without groups.npy) cannot be split by file.
        else:
            groups, self.group_kind = epochs.ids, "epoch"
        rows = pd.DataFrame({EPOCH_ID: epochs.ids, "group": groups, "file": epochs.files})
        if epochs.starts is not None:
            rows["start"] = epochs.starts
        if epochs.targets is not None:
            for i, name in enumerate(self.classes):
                rows[name] = epochs.targets[:, i]
        # Without crops a row is an epoch; with them, a crop of one (the epoch stays the unit).
        self.epoch_of_row = np.arange(len(rows))
        self.crop: tuple[np.ndarray, int] | None = None
        if cfg.crop_seconds > 0:
            rows = self._cut_crops(rows)
        self.rows = rows

    def with_preprocess(self, cfg: PreprocessConfig) -> EpochDataset:
        """The same epochs under another recipe's preprocessing (a portfolio member's crops):
        read from the files once, cut and cached per recipe."""
        return EpochDataset(self.epochs, self.root, self.split, cfg, self._extra)

    def _cut_crops(self, rows: pd.DataFrame) -> pd.DataFrame:
        """One row per crop of every epoch (``crop_start``: seconds into the epoch), the crops on
        :func:`crop_grid` at the recipe's rate."""
        cfg, n_native = self.cfg, self.epochs.signals.shape[-1]
        # The epoch's length at the recipe's rate, as resampling makes it.
        n_samples = resample(
            np.zeros((1, n_native), np.float32), self.epochs.sfreq, cfg.sample_rate
        )
        starts, length = crop_grid(
            n_samples.shape[-1], cfg.sample_rate, cfg.crop_seconds, cfg.crop_stride_seconds
        )
        self.epoch_of_row = np.repeat(np.arange(len(rows)), len(starts))
        self.crop = (np.tile(starts, len(rows)), length)
        crops = rows.iloc[self.epoch_of_row].reset_index(drop=True)
        crops["crop_start"] = self.crop[0] / cfg.sample_rate
        return crops

    def unit_targets(self, rows: pd.DataFrame) -> pd.DataFrame:
        # The crops of an epoch share its target: one row per epoch.
        frame = pd.DataFrame(
            self.row_targets(rows), index=rows[EPOCH_ID].to_numpy(), columns=list(self.classes)
        )
        return frame.groupby(level=0, sort=True).first()

    def unit_votes(self, rows: pd.DataFrame) -> pd.Series:
        votes = self.epochs.votes
        epochs = self.epoch_of_row[rows.index.to_numpy()]
        per_row = np.ones(len(rows)) if votes is None else votes[epochs]
        return pd.Series(per_row, index=rows[EPOCH_ID].to_numpy()).groupby(level=0).first()

    def inputs(
        self, rows: Sequence[int], names: Sequence[str], shifts: np.ndarray | None = None
    ) -> Batch:
        if shifts is not None:
            raise ConfigError("train.shift_seconds: these epochs are fixed cuts; set it to 0")
        rows = np.asarray(rows)
        signals = self.epochs.signals[self.epoch_of_row[rows]]
        crops = None if self.crop is None else (self.crop[0][rows], self.crop[1])
        return epoch_inputs(signals, self.epochs.sfreq, self.montage, self.cfg, names, crops)

    def blank_inputs(self, names: Sequence[str]) -> Batch:
        blank = np.zeros((1, *self.epochs.signals.shape[1:]), np.float32)
        crops = None if self.crop is None else (np.zeros(1, int), self.crop[1])
        return epoch_inputs(blank, self.epochs.sfreq, self.montage, self.cfg, names, crops)

    def input_files(self, names: Sequence[str]) -> list[Path]:
        return list(self._files)

    def source(self, unit: object) -> str:
        match = self.rows.index[self.rows[EPOCH_ID] == unit]
        return str(self.root / self.rows["file"].iloc[match[0]]) if len(match) else str(self.root)
