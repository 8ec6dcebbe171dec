"""Patient-grouped, class-stratified K-fold, computed once per dataset and reused by every run.

Folds are assigned per EEG (all sub-windows of an EEG, and all EEGs of a patient, share a fold)
with scikit-learn's ``StratifiedGroupKFold`` on the EEG's majority class. The table is saved as
CSV beside the dataset's cache, so every backbone and every fold run sees the same split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from hmsbrain.atomic import atomic_path
from hmsbrain.hms.constants import VOTE_COLUMNS


class FoldError(ValueError):
    """Folds that cannot be formed or do not match the dataset."""


def eeg_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per EEG: ``eeg_id``, ``patient_id`` and its summed votes."""
    return (
        rows.groupby("eeg_id", sort=True)
        .agg(patient_id=("patient_id", "first"), **{c: (c, "sum") for c in VOTE_COLUMNS})
        .reset_index()
    )


def make_folds(rows: pd.DataFrame, n_folds: int, seed: int) -> pd.DataFrame:
    """``eeg_id, patient_id, fold`` for every EEG of a ``train.csv`` table."""
    eegs = eeg_table(rows)
    n_patients = eegs["patient_id"].nunique()
    if n_folds < 2:
        raise FoldError(f"n_folds must be at least 2, got {n_folds}")
    if n_patients < n_folds:
        raise FoldError(
            f"{n_folds} patient-grouped folds need at least {n_folds} patients, but the data has "
            f"{n_patients}; use a dataset with more patients or set folds.n_folds lower"
        )
    majority = eegs[list(VOTE_COLUMNS)].to_numpy().argmax(axis=1)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(eegs), -1, dtype=np.int64)
    try:
        for k, (_, val) in enumerate(splitter.split(eegs, majority, groups=eegs["patient_id"])):
            fold[val] = k
    except ValueError as exc:  # scikit-learn's wording names no remedy
        raise FoldError(
            f"cannot form {n_folds} stratified patient-grouped folds from {len(eegs)} EEGs of "
            f"{n_patients} patients ({exc}); set folds.n_folds lower or add data"
        ) from exc
    return pd.DataFrame({"eeg_id": eegs["eeg_id"], "patient_id": eegs["patient_id"], "fold": fold})


def load_or_make_folds(
    rows: pd.DataFrame, path: str | Path, n_folds: int, seed: int
) -> pd.DataFrame:
    """Read the saved folds at ``path``, or compute and save them on first use.

    A saved table that does not cover exactly this dataset's EEGs, or was made with another
    ``n_folds``, is an error: silently re-splitting would leak validation patients into the
    training set of runs already made.
    """
    path = Path(path)
    if path.is_file():
        folds = pd.read_csv(path)
        if not {"eeg_id", "fold"} <= set(folds.columns):
            raise FoldError(f"{path}: not a folds file (needs eeg_id and fold columns)")
        have, want = set(folds["eeg_id"]), set(rows["eeg_id"])
        if have != want or folds["fold"].nunique() != n_folds:
            raise FoldError(
                f"{path}: saved folds ({folds['fold'].nunique()} folds, {len(have)} EEGs) do not "
                f"match this dataset ({n_folds} folds, {len(want)} EEGs); delete the file to "
                "re-split, knowing that runs made with the old split are no longer comparable"
            )
        return folds
    folds = make_folds(rows, n_folds, seed)
    with atomic_path(path) as tmp:  # a crash never leaves half a fold file to be reused
        folds.to_csv(tmp, index=False)
    return folds


def attach_folds(rows: pd.DataFrame, folds: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a ``fold`` column from the per-EEG fold table."""
    return rows.merge(folds[["eeg_id", "fold"]], on="eeg_id", how="left", validate="m:1")
