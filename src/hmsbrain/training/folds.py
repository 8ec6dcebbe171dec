"""Grouped, class-stratified K-fold, computed once per dataset and reused by every run.

Folds are assigned per scoring unit (an HMS EEG, a generic epoch): all rows of a unit, and all
units of a group, share a fold. The group is the patient or subject where the data names one;
otherwise the file, so every epoch cut from one recording stays in one fold. scikit-learn's
``StratifiedGroupKFold`` balances the units' majority classes across folds. The table is saved
as CSV beside the dataset's cache, so every backbone and every fold run sees the same split.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from hmsbrain.atomic import atomic_path

log = logging.getLogger(__name__)


class FoldError(ValueError):
    """Folds that cannot be formed or do not match the dataset."""


def make_folds(units: pd.DataFrame, n_folds: int, seed: int, kind: str = "patient") -> pd.DataFrame:
    """``id, group, fold`` for a table of units with ``id``, ``group`` and ``label`` columns;
    ``kind`` names what a group is, for messages."""
    n_groups = units["group"].nunique()
    if n_folds < 2:
        raise FoldError(f"n_folds must be at least 2, got {n_folds}")
    if n_groups < n_folds:
        raise FoldError(
            f"{n_folds} {kind}-grouped folds need at least {n_folds} {kind}s, but the data has "
            f"{n_groups}; use a dataset with more {kind}s or set folds.n_folds lower"
        )
    if kind in ("file", "epoch"):
        log.warning(
            "no subject ids in this data: folds are grouped by %s, so the CV measures epochs of "
            "subjects it has seen and over-estimates accuracy on new subjects; give subjects "
            "(groups.npy, a subject/group column or dataset.yaml group_pattern) for a subject CV",
            kind,
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(units), -1, dtype=np.int64)
    try:
        for k, (_, val) in enumerate(splitter.split(units, units["label"], units["group"])):
            fold[val] = k
    except ValueError as exc:  # scikit-learn's wording names no remedy
        raise FoldError(
            f"cannot form {n_folds} stratified {kind}-grouped folds from {len(units)} units of "
            f"{n_groups} {kind}s ({exc}); set folds.n_folds lower or add data"
        ) from exc
    return pd.DataFrame({"id": units["id"], "group": units["group"], "fold": fold})


def load_or_make_folds(
    units: pd.DataFrame, path: str | Path, n_folds: int, seed: int, kind: str = "patient"
) -> pd.DataFrame:
    """Read the saved folds at ``path``, or compute and save them on first use.

    A saved table that does not cover exactly this dataset's units, or was made with another
    ``n_folds``, is an error: silently re-splitting would leak validation subjects into the
    training set of runs already made.
    """
    path = Path(path)
    if path.is_file():
        folds = pd.read_csv(path).rename(columns={"eeg_id": "id"})  # files of earlier versions
        if not {"id", "fold"} <= set(folds.columns):
            raise FoldError(f"{path}: not a folds file (needs id and fold columns)")
        have = set(folds["id"].astype(str))
        want = set(units["id"].astype(str))
        if have != want or folds["fold"].nunique() != n_folds:
            raise FoldError(
                f"{path}: saved folds ({folds['fold'].nunique()} folds, {len(have)} units) do "
                f"not match this dataset ({n_folds} folds, {len(want)} units); delete the file "
                "to re-split, knowing that runs made with the old split are no longer comparable"
            )
        # CSV reads numeric-looking ids back as numbers: key them as the dataset does.
        dtype = str if units["id"].dtype == object else units["id"].dtype
        return folds.assign(id=folds["id"].astype(dtype))
    folds = make_folds(units, n_folds, seed, kind)
    with atomic_path(path) as tmp:  # a crash never leaves half a fold file to be reused
        folds.to_csv(tmp, index=False)
    return folds


def attach_folds(rows: pd.DataFrame, folds: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """``rows`` with a ``fold`` column from the per-unit fold table."""
    keyed = folds[["id", "fold"]].rename(columns={"id": id_column})
    return rows.merge(keyed, on=id_column, how="left", validate="m:1").set_index(rows.index)


def inner_split(units: pd.DataFrame, n_splits: int, seed: int) -> np.ndarray | None:
    """Which of ``units`` (``id``, ``group``, ``label``: the training folds' units) form the inner
    selection set: one fold of a grouped, stratified ``n_splits`` split, so no group is on both
    sides. None when the units hold fewer than two groups."""
    n_splits = min(n_splits, units["group"].nunique())
    if n_splits < 2:
        return None
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    try:
        _, held = next(iter(splitter.split(units, units["label"], units["group"])))
    except ValueError as exc:  # too few units of a class for stratification: grouped only
        # A change of scheme changes which units select the epoch: the log says so, and why.
        log.warning(
            "inner selection split: StratifiedGroupKFold cannot split %d units of %d groups "
            "%d ways (%s); using GroupKFold, grouped but not stratified",
            len(units),
            units["group"].nunique(),
            n_splits,
            " ".join(str(exc).split()),
        )
        _, held = next(iter(GroupKFold(n_splits=n_splits).split(units, groups=units["group"])))
    selected = np.zeros(len(units), bool)
    selected[held] = True
    return selected
