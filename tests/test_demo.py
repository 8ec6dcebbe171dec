"""The embedded demo dataset: deterministic, in the exact Kaggle layout, and safely cached.

A fresh clone trains on this data, so it must read through the same code path as the real
files, be reproducible from its seed (or runs are not comparable), and never be half-written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hmsbrain.hms.constants import (
    CHAIN_NAMES,
    EEG_COLUMNS,
    EEG_WINDOW_SECONDS,
    EXPERT_CONSENSUS,
    SAMPLE_RATE,
    SPEC_SECONDS_PER_ROW,
    SPEC_TIME_COLUMN,
    SPEC_WINDOW_ROWS,
    TEST_CSV_COLUMNS,
    TRAIN_CSV_COLUMNS,
    VOTE_COLUMNS,
)
from hmsbrain.hms.demo import MARKER, DemoSize, ensure_demo, generate, kaggle_spectrogram
from hmsbrain.hms.layout import HMSData, read_eeg, read_spectrogram

TINY = DemoSize(n_patients=2, mean_eegs_per_patient=1.0, max_sub_windows=2, n_test=1)
CSV_FILES = ("train.csv", "test.csv", "sample_submission.csv", "test_solution.csv")


def _marker(root: Path) -> dict:
    return json.loads((root / MARKER).read_text())


def _size_of(root: Path) -> DemoSize:
    marker = _marker(root)
    return DemoSize(**{k: marker[k] for k in DemoSize.__dataclass_fields__})


def _parquet_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.parquet"))


def _assert_same_dataset(a: Path, b: Path) -> None:
    for name in CSV_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    files = _parquet_files(a)
    assert files == _parquet_files(b)
    for name in files:
        pd.testing.assert_frame_equal(pd.read_parquet(a / name), pd.read_parquet(b / name))


# --- Determinism --------------------------------------------------------------------------------


def test_same_seed_and_size_give_identical_files(small_demo, tmp_path):
    marker = _marker(small_demo)
    again = generate(tmp_path / "again", marker["seed"], _size_of(small_demo))
    _assert_same_dataset(small_demo, again)


def test_different_seed_gives_different_data(tmp_path):
    a = generate(tmp_path / "a", 1, TINY)
    b = generate(tmp_path / "b", 2, TINY)
    rows_a, rows_b = pd.read_csv(a / "train.csv"), pd.read_csv(b / "train.csv")
    assert set(rows_a["eeg_id"]).isdisjoint(rows_b["eeg_id"])
    eeg_a = read_eeg(a / "train_eegs" / f"{rows_a['eeg_id'].iloc[0]}.parquet")
    eeg_b = read_eeg(b / "train_eegs" / f"{rows_b['eeg_id'].iloc[0]}.parquet")
    n = min(len(eeg_a), len(eeg_b))
    assert not np.allclose(eeg_a[:n], eeg_b[:n])


# --- Layout -------------------------------------------------------------------------------------


def test_every_row_reads_through_the_kaggle_code_path(small_demo):
    train = HMSData(small_demo, "train")
    assert len(train) >= 6
    for i in range(len(train)):
        eeg, spec = train.eeg_window(i), train.spectrogram_window(i)
        assert eeg.shape == (10_000, 20) and spec.shape == (300, 400)
        assert np.isfinite(eeg).all() and np.isfinite(spec).all()
    targets = train.targets()
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)

    test = HMSData(small_demo, "test")
    assert len(test) == _size_of(small_demo).n_test
    for i in range(len(test)):
        assert test.eeg_window(i).shape == (10_000, 20)
        assert test.spectrogram_window(i).shape == (300, 400)


def test_test_split_files_are_exactly_one_window(small_demo):
    """Code that reads a whole test file (as a Kaggle kernel may) must see what Kaggle has."""
    test = HMSData(small_demo, "test")
    for _, row in test.rows.iterrows():
        assert read_eeg(test.eeg_path(row["eeg_id"])).shape == (10_000, 20)
        assert read_spectrogram(test.spectrogram_path(row["spectrogram_id"])).shape == (300, 400)


def test_csv_columns_follow_the_competition(small_demo):
    train = pd.read_csv(small_demo / "train.csv")
    assert set(TRAIN_CSV_COLUMNS) <= set(train.columns)
    assert {"eeg_sub_id", "label_id", "expert_consensus", "spectrogram_sub_id"} <= set(
        train.columns
    )
    test = pd.read_csv(small_demo / "test.csv")
    assert list(test.columns) == list(TEST_CSV_COLUMNS)
    sample = pd.read_csv(small_demo / "sample_submission.csv")
    assert list(sample.columns) == ["eeg_id", *VOTE_COLUMNS]
    assert sample["eeg_id"].tolist() == test["eeg_id"].tolist()
    solution = pd.read_csv(small_demo / "test_solution.csv")
    assert sorted(solution["eeg_id"]) == sorted(test["eeg_id"])
    np.testing.assert_allclose(solution[list(VOTE_COLUMNS)].sum(axis=1), 1.0)


def test_votes_are_nonnegative_integers_with_positive_sums(small_demo):
    train = pd.read_csv(small_demo / "train.csv")
    votes = train[list(VOTE_COLUMNS)]
    assert all(pd.api.types.is_integer_dtype(t) for t in votes.dtypes)
    assert (votes >= 0).all().all()
    assert (votes.sum(axis=1) > 0).all()
    # expert_consensus names the majority class, as in the real train.csv.
    majority = [EXPERT_CONSENSUS[k] for k in votes.to_numpy().argmax(axis=1)]
    assert train["expert_consensus"].tolist() == majority


def test_sub_windows_share_their_eeg_and_fit_in_it(small_demo):
    train = pd.read_csv(small_demo / "train.csv")
    test = pd.read_csv(small_demo / "test.csv")
    assert train.groupby("eeg_id").size().max() > 1  # some EEGs do have several sub-windows
    for eeg_id, group in train.groupby("eeg_id"):
        assert group["patient_id"].nunique() == 1
        assert group["spectrogram_id"].nunique() == 1
        assert group["eeg_sub_id"].tolist() == list(range(len(group)))
        assert group["eeg_label_offset_seconds"].is_unique
        n_samples = len(read_eeg(small_demo / "train_eegs" / f"{eeg_id}.parquet"))
        last = group["eeg_label_offset_seconds"].max()
        assert n_samples == (EEG_WINDOW_SECONDS + last) * SAMPLE_RATE
    # No patient is in both splits (a leak the demo must not teach).
    assert set(train["patient_id"]).isdisjoint(test["patient_id"])


def test_spectrogram_files_have_kaggle_columns_and_cover_every_window(small_demo):
    train = pd.read_csv(small_demo / "train.csv")
    for spec_id, group in train.groupby("spectrogram_id"):
        frame = pd.read_parquet(small_demo / "train_spectrograms" / f"{spec_id}.parquet")
        assert frame.columns[0] == SPEC_TIME_COLUMN
        assert len(frame.columns) == 401
        assert [c.split("_")[0] for c in frame.columns[1::100]] == list(CHAIN_NAMES)
        offsets = group["spectrogram_label_offset_seconds"]
        assert len(frame) >= SPEC_WINDOW_ROWS + int(offsets.max()) // SPEC_SECONDS_PER_ROW
        assert (frame[frame.columns[1:]] >= 0).all().all()


def test_spectrogram_is_computed_from_the_same_signal_as_the_eeg(small_demo):
    """As in the real data, the 50 s EEG sits at the centre of the 10 min spectrogram window, and
    the spectrogram rows over it are the Kaggle-style spectrogram of the EEG itself."""
    lead_s = (SPEC_WINDOW_ROWS * SPEC_SECONDS_PER_ROW - EEG_WINDOW_SECONDS) / 2  # 275 s
    first_row = math.ceil(lead_s / SPEC_SECONDS_PER_ROW)  # the first row wholly inside the EEG
    skip = round((first_row * SPEC_SECONDS_PER_ROW - lead_s) * SAMPLE_RATE)
    train = pd.read_csv(small_demo / "train.csv").drop_duplicates("eeg_id")
    for _, row in train.iterrows():
        eeg = read_eeg(small_demo / "train_eegs" / f"{row['eeg_id']}.parquet")
        spec = read_spectrogram(
            small_demo / "train_spectrograms" / f"{row['spectrogram_id']}.parquet"
        )
        own = kaggle_spectrogram(eeg[skip:])
        np.testing.assert_allclose(spec[first_row : first_row + len(own)], own, atol=0.011)
        # ... and not just any rows: shifted by one row, they no longer match.
        assert np.abs(spec[first_row + 1 : first_row + 1 + len(own)] - own).max() > 0.1


def test_kaggle_spectrogram_shape_and_peak_frequency():
    """A 4 Hz rhythm on every other LL electrode shows up at 4 Hz in the LL chain's columns."""
    t = np.arange(60 * SAMPLE_RATE) / SAMPLE_RATE
    eeg = np.random.default_rng(0).standard_normal((len(t), len(EEG_COLUMNS))).astype(np.float32)
    for name in ("Fp1", "T3", "O1"):  # each LL pair (Fp1-F7, F7-T3, T3-T5, T5-O1) sees it
        eeg[:, EEG_COLUMNS.index(name)] += 50 * np.sin(2 * np.pi * 4.0 * t)
    spec = kaggle_spectrogram(eeg)
    assert spec.shape == (60 // SPEC_SECONDS_PER_ROW, 400)
    freqs = (np.arange(100) + 3) * SAMPLE_RATE / 1024  # the Kaggle columns' frequencies
    ll = spec[:, :100].mean(axis=0)
    assert abs(freqs[ll.argmax()] - 4.0) < 0.2
    assert ll.max() > 10 * spec[:, 100:200].mean(axis=0).max()  # RL has no rhythm


# --- Caching ------------------------------------------------------------------------------------


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_ensure_demo_is_idempotent(small_demo):
    before = _mtimes(small_demo)
    marker = _marker(small_demo)
    assert ensure_demo(small_demo, marker["seed"], _size_of(small_demo)) == small_demo
    assert _mtimes(small_demo) == before
    assert not small_demo.with_name(small_demo.name + ".partial").exists()


def test_ensure_demo_regenerates_when_the_seed_changes(tmp_path):
    root = ensure_demo(tmp_path / "demo", 1, TINY)
    first = (root / "train.csv").read_bytes()
    assert _marker(root)["seed"] == 1
    ensure_demo(root, 2, TINY)
    assert _marker(root)["seed"] == 2
    assert (root / "train.csv").read_bytes() != first
    _assert_same_dataset(root, generate(tmp_path / "reference", 2, TINY))


def test_ensure_demo_recovers_from_an_interrupted_generation(tmp_path):
    root = tmp_path / "demo"
    partial = tmp_path / "demo.partial"
    (partial / "train_eegs").mkdir(parents=True)
    (partial / "train_eegs" / "123.parquet").write_bytes(b"half a file")
    (partial / "train.csv").write_text("eeg_id\n")
    ensure_demo(root, 3, TINY)
    assert not partial.exists()
    assert not (root / "train_eegs" / "123.parquet").exists()
    assert _marker(root)["seed"] == 3
    assert len(HMSData(root, "train")) >= 2


def test_ensure_demo_never_deletes_a_folder_it_did_not_write(tmp_path):
    """A non-empty folder without the generator's marker (say, a mistyped demo_dir pointing at
    the user's own data) is refused, not wiped; an empty one is simply filled."""
    root = tmp_path / "demo"
    root.mkdir()
    (root / "train.csv").write_text("precious\n")
    with pytest.raises(FileExistsError, match="not a demo dataset"):
        ensure_demo(root, 4, TINY)
    assert (root / "train.csv").read_text() == "precious\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    ensure_demo(empty, 4, TINY)
    assert _marker(empty)["seed"] == 4
