"""Patient-grouped folds: no patient (hence no EEG) may sit on both sides of a split.

A patient in two folds leaks their idiosyncratic background into validation and inflates CV;
unbalanced folds make per-fold scores incomparable. These tests run at full scale on the real
label table, where such problems would actually show.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.dataset import eeg_fold_units
from hmsbrain.training.folds import (
    FoldError,
    attach_folds,
    inner_split,
    load_or_make_folds,
    make_folds,
)


@pytest.fixture(scope="module")
def label_rows(hms_labels_path) -> pd.DataFrame:
    return pd.read_parquet(hms_labels_path)


@pytest.fixture(scope="module")
def full_folds(label_rows) -> pd.DataFrame:
    return make_folds(eeg_fold_units(label_rows), 5, 42)


def _rows(patients: list[int], majority: list[int] | None = None) -> pd.DataFrame:
    """One EEG (one sub-window) per entry of ``patients``, 3 votes on the given class."""
    majority = majority or [i % 6 for i in range(len(patients))]
    votes = np.zeros((len(patients), 6), dtype=int)
    votes[np.arange(len(patients)), majority] = 3
    return pd.DataFrame(
        {"eeg_id": 1000 + np.arange(len(patients)), "patient_id": patients}
        | {c: votes[:, i] for i, c in enumerate(VOTE_COLUMNS)}
    )


def test_full_scale_every_eeg_and_patient_in_exactly_one_fold(label_rows, full_folds):
    assert len(full_folds) == label_rows["eeg_id"].nunique() == 17_001
    assert full_folds["id"].is_unique
    assert set(full_folds["id"]) == set(label_rows["eeg_id"])
    assert set(full_folds["fold"]) == {0, 1, 2, 3, 4}
    patients = label_rows.groupby("eeg_id")["patient_id"].first()
    assert (patients.loc[full_folds["id"]].to_numpy() == full_folds["group"].to_numpy()).all()
    folds_per_patient = full_folds.groupby("group")["fold"].nunique()
    assert len(folds_per_patient) == 1_945
    assert (folds_per_patient == 1).all()


def test_full_scale_folds_are_balanced_in_size_and_class(label_rows, full_folds):
    n = len(full_folds)
    sizes = full_folds["fold"].value_counts()
    assert ((sizes - n / 5).abs() <= 0.1 * n / 5).all(), sizes.to_dict()

    eegs = eeg_fold_units(label_rows).merge(full_folds[["id", "fold"]], on="id")
    eegs["majority"] = eegs["label"]
    overall = eegs["majority"].value_counts(normalize=True).sort_index()
    per_fold = pd.crosstab(eegs["fold"], eegs["majority"], normalize="index")
    gap = (per_fold - overall).abs().to_numpy().max()
    assert gap < 0.03, per_fold.round(3)


def test_make_folds_is_deterministic_per_seed(label_rows, full_folds):
    again = make_folds(eeg_fold_units(label_rows), 5, 42)
    pd.testing.assert_frame_equal(again, full_folds)
    other = make_folds(eeg_fold_units(label_rows), 5, 7)
    assert not np.array_equal(other["fold"].to_numpy(), full_folds["fold"].to_numpy())


def test_attach_folds_keeps_every_row_and_uses_the_eeg_fold(label_rows, full_folds):
    attached = attach_folds(label_rows, full_folds, "eeg_id")
    assert len(attached) == len(label_rows)
    assert attached["fold"].notna().all()
    pd.testing.assert_series_equal(
        attached["eeg_id"].reset_index(drop=True), label_rows["eeg_id"].reset_index(drop=True)
    )
    # Every sub-window of an EEG carries that EEG's fold.
    assert (attached.groupby("eeg_id")["fold"].nunique() == 1).all()


def test_load_or_make_folds_writes_once_then_reuses_the_file(tmp_path, label_rows, full_folds):
    path = tmp_path / "cache" / "folds.csv"
    units = eeg_fold_units(label_rows)
    first = load_or_make_folds(units, path, 5, 42)
    assert path.is_file()
    pd.testing.assert_frame_equal(first, full_folds)
    written = path.read_bytes()
    mtime = path.stat().st_mtime_ns

    # A different seed now must not re-split: the saved folds win, so every run of every
    # backbone sees the same split.
    second = load_or_make_folds(units, path, 5, seed=999)
    pd.testing.assert_frame_equal(second, first, check_dtype=False)
    assert path.read_bytes() == written
    assert path.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("cache/*.tmp"))


def test_saved_folds_of_another_dataset_or_fold_count_are_rejected(tmp_path):
    rows = _rows(list(range(12)) * 5)  # 60 EEGs of 12 patients, 10 per class
    path = tmp_path / "folds.csv"
    load_or_make_folds(eeg_fold_units(rows), path, 5, 42)
    with pytest.raises(FoldError, match="do not match"):
        load_or_make_folds(eeg_fold_units(rows), path, 4, 42)  # another n_folds
    with pytest.raises(FoldError, match=re.escape(str(path))):  # one EEG fewer
        load_or_make_folds(eeg_fold_units(rows.iloc[:-1]), path, 5, 42)
    more = pd.concat([rows, _rows([99]).assign(eeg_id=5000)])
    with pytest.raises(FoldError):
        load_or_make_folds(eeg_fold_units(more), path, 5, 42)  # one EEG more


def test_fewer_patients_than_folds_is_a_fold_error():
    rows = _rows([1, 1, 2, 2, 3, 3, 4, 4])  # 8 EEGs but only 4 patients
    with pytest.raises(FoldError, match="patients"):
        make_folds(eeg_fold_units(rows), 5, 42)
    with pytest.raises(FoldError, match="at least 2"):
        make_folds(eeg_fold_units(rows), 1, 42)


def test_too_few_eegs_per_class_is_a_fold_error():
    # Six patients with one EEG each, one per class: enough patients, but no class can be
    # stratified over five folds.
    rows = _rows([1, 2, 3, 4, 5, 6], majority=[0, 1, 2, 3, 4, 5])
    with pytest.raises(FoldError):
        make_folds(eeg_fold_units(rows), 5, 42)


@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
def test_small_demo_folds_cover_every_eeg(small_demo):
    from hmsbrain.hms.layout import read_train_csv

    rows = read_train_csv(small_demo / "train.csv")
    folds = make_folds(eeg_fold_units(rows), 5, 42)
    assert set(folds["fold"]) == set(range(5))
    assert (folds.groupby("group")["fold"].nunique() == 1).all()
    assert len(attach_folds(rows, folds, "eeg_id")) == len(rows)


def test_the_inner_split_says_when_it_is_not_stratified(caplog):
    """Too few units of a class to stratify the inner selection split: it is grouped only, and
    one line says so, why, and which scheme it used; a stratifiable split says nothing."""
    units = pd.DataFrame({"id": range(8), "group": range(8), "label": range(8)})
    with caplog.at_level("INFO", logger="hmsbrain.training.folds"):
        held = inner_split(units, 4, 0)
    assert held is not None and held.sum() == 2
    [line] = caplog.messages
    assert line.startswith(
        "inner selection split: StratifiedGroupKFold cannot split 8 units of 8 groups 4 ways ("
    )
    assert line.endswith("); using GroupKFold, grouped but not stratified")
    caplog.clear()
    with caplog.at_level("INFO", logger="hmsbrain.training.folds"):
        inner_split(units.assign(label=[0, 0, 0, 0, 1, 1, 1, 1]), 4, 0)
    assert caplog.messages == []
