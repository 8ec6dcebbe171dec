"""Reading the Kaggle layout: exact windows on the real files, and clear errors on bad inputs.

A window that is off by a few samples trains on the wrong seconds without any visible failure,
so windows are compared to a direct ``pd.read_parquet`` slice. Bad inputs must fail early with a
:class:`DataError` that names the file (and the line, for CSV problems), so a user can fix them.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from hmsbrain.hms.constants import EEG_COLUMNS, SPEC_TIME_COLUMN, VOTE_COLUMNS
from hmsbrain.hms.layout import (
    DataError,
    HMSData,
    eeg_window,
    read_eeg,
    read_sample_submission,
    read_spectrogram,
    read_test_csv,
    read_train_csv,
    spectrogram_window,
)


def _mentions(path) -> str:
    """A regex matching the file's path anywhere in an error message."""
    return re.escape(str(path))


def _names_line(message: str, line: int) -> bool:
    """Whether a CSV error points at file line ``line`` (header = line 1)."""
    return re.search(rf"\b(line|row) {line}\b", message) is not None


# --- The real sample ---------------------------------------------------------------------------


def test_real_train_split_windows_are_exact_slices(hms_sample_dir):
    data = HMSData(hms_sample_dir, "train")
    assert len(data) == 9
    assert data.rows["eeg_label_offset_seconds"].tolist() == [0, 6, 8, 18, 24, 26, 30, 36, 40]
    eeg = pd.read_parquet(hms_sample_dir / "train_eegs" / "1628180742.parquet")
    spec = pd.read_parquet(hms_sample_dir / "train_spectrograms" / "353733.parquet")
    assert spec.columns[0] == SPEC_TIME_COLUMN
    for i, row in data.rows.iterrows():
        start = int(row["eeg_label_offset_seconds"]) * 200
        window = data.eeg_window(i)
        assert window.shape == (10_000, 20)
        assert window.dtype == np.float32
        expected = eeg[list(EEG_COLUMNS)].to_numpy(np.float32)[start : start + 10_000]
        np.testing.assert_array_equal(window, expected)

        first_row = int(row["spectrogram_label_offset_seconds"]) // 2
        spec_window = data.spectrogram_window(i)
        assert spec_window.shape == (300, 400)
        expected = spec.iloc[first_row : first_row + 300, 1:].to_numpy(np.float32)
        np.testing.assert_array_equal(spec_window, expected)


def test_real_train_targets_are_normalised_votes(hms_sample_dir):
    targets = HMSData(hms_sample_dir, "train").targets()
    assert targets.shape == (9, 6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(targets, np.tile([1.0, 0, 0, 0, 0, 0], (9, 1)))


def test_real_test_split(hms_sample_dir):
    data = HMSData(hms_sample_dir, "test")
    assert len(data) == 1
    assert int(data.rows["eeg_id"].iloc[0]) == 3911565283
    window = data.eeg_window(0)
    assert window.shape == (10_000, 20)
    expected = pd.read_parquet(hms_sample_dir / "test_eegs" / "3911565283.parquet")
    np.testing.assert_array_equal(window, expected[list(EEG_COLUMNS)].to_numpy(np.float32))
    assert data.spectrogram_window(0).shape == (300, 400)
    with pytest.raises(DataError, match="no votes"):
        data.targets()
    submission = read_sample_submission(hms_sample_dir / "sample_submission.csv")
    assert submission["eeg_id"].tolist() == data.rows["eeg_id"].tolist()


# --- The tiny hand-made folder: valid as written -------------------------------------------------


def test_tiny_folder_is_valid(tiny_kaggle):
    """The baseline the bad-input tests corrupt must itself read cleanly."""
    train = HMSData(tiny_kaggle.root, "train")
    assert [train.eeg_window(i).shape for i in range(2)] == [(10_000, 20)] * 2
    assert [train.spectrogram_window(i).shape for i in range(2)] == [(300, 400)] * 2
    np.testing.assert_allclose(train.targets(), [[0.75, 0, 0, 0, 0, 0.25], [0, 0.5, 0, 0, 0, 0.5]])
    test = HMSData(tiny_kaggle.root, "test")
    assert test.eeg_window(0).shape == (10_000, 20)
    assert test.spectrogram_window(0).shape == (300, 400)


def test_eeg_sub_id_is_added_when_missing(tiny_kaggle):
    tiny_kaggle.write_train_csv(tiny_kaggle.train_rows().drop(columns="eeg_sub_id"))
    assert read_train_csv(tiny_kaggle.train_csv)["eeg_sub_id"].tolist() == [0, 1]


def test_spectrogram_columns_are_ordered_by_chain_and_frequency(tiny_kaggle):
    """Columns are matched by name, so a file with shuffled columns reads the same."""
    rng = np.random.default_rng(0)
    spec = rng.random((310, 400)).astype(np.float32)
    columns = tiny_kaggle.spec_columns()
    order = rng.permutation(400)
    tiny_kaggle.write_spec(spec[:, order], columns=[columns[j] for j in order])
    np.testing.assert_array_equal(read_spectrogram(tiny_kaggle.spec_path()), spec)


def test_nan_runs_in_an_eeg_are_not_a_read_error(tiny_kaggle):
    """Real recordings have missing stretches; preprocessing fills them, reading keeps them."""
    eeg = tiny_kaggle.eeg_signal(60, seed=5)
    eeg[100:900, 3] = np.nan
    eeg[:, 7] = np.nan
    pd.DataFrame(eeg, columns=list(EEG_COLUMNS)).to_parquet(tiny_kaggle.eeg_path())
    window = HMSData(tiny_kaggle.root, "train").eeg_window(0)
    np.testing.assert_array_equal(np.isnan(window), np.isnan(eeg[:10_000]))
    np.testing.assert_array_equal(window[~np.isnan(window)], eeg[:10_000][~np.isnan(eeg[:10_000])])


def test_infinite_values_become_missing_with_a_warning_naming_the_file(tiny_kaggle, caplog):
    eeg = tiny_kaggle.eeg_signal(60, seed=5)
    eeg[500:503, 2] = np.inf
    eeg[700, 4] = -np.inf
    tiny_kaggle.write_eeg(eeg)
    with caplog.at_level("WARNING"):
        window = HMSData(tiny_kaggle.root, "train").eeg_window(0)
    assert np.isnan(window[500:503, 2]).all() and np.isnan(window[700, 4])
    assert not np.isinf(window).any()
    assert f"{tiny_kaggle.eeg_path()}: 4 infinite values (in C3, F7)" in caplog.text


def test_a_channel_missing_for_a_whole_window_is_named(tiny_kaggle, caplog):
    eeg = tiny_kaggle.eeg_signal(60, seed=5)
    eeg[:, EEG_COLUMNS.index("O2")] = np.nan
    tiny_kaggle.write_eeg(eeg)
    data = HMSData(tiny_kaggle.root, "train")
    with caplog.at_level("WARNING"):
        data.eeg_window(0)
        data.eeg_window(0)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        f"{tiny_kaggle.eeg_path()}: channels O2 hold no value in the window at "
        "0 s; they become zeros"
    ]


def test_a_mostly_missing_spectrogram_window_is_named(tiny_kaggle, caplog):
    spec = np.random.default_rng(0).gamma(2.0, 3.0, (310, 400))
    spec[:200] = np.nan
    spec[250:260, 5] = np.inf
    tiny_kaggle.write_spec(spec)
    with caplog.at_level("WARNING"):
        window = HMSData(tiny_kaggle.root, "train").spectrogram_window(0)
    assert np.isnan(window[:200]).all() and not np.isinf(window).any()
    assert f"{tiny_kaggle.spec_path()}: 10 infinite values" in caplog.text
    assert f"{tiny_kaggle.spec_path()}: 67% of the window at 0 s is missing (NaN)" in caplog.text


# --- Bad inputs ---------------------------------------------------------------------------------


def test_eeg_with_missing_columns(tiny_kaggle):
    eeg = tiny_kaggle.eeg_signal(60)
    tiny_kaggle.write_eeg(eeg[:, :19], columns=list(EEG_COLUMNS[:19]))  # no EKG
    data = HMSData(tiny_kaggle.root, "train")
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.eeg_path())) as err:
        data.eeg_window(0)
    assert "EKG" in str(err.value)


def test_eeg_with_wrong_column_names(tiny_kaggle):
    tiny_kaggle.write_eeg(tiny_kaggle.eeg_signal(60), columns=[c.upper() for c in EEG_COLUMNS])
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.eeg_path())):
        read_eeg(tiny_kaggle.eeg_path())


def test_eeg_with_non_numeric_column(tiny_kaggle):
    frame = pd.DataFrame(tiny_kaggle.eeg_signal(60), columns=list(EEG_COLUMNS))
    frame["Cz"] = "flat"
    frame.to_parquet(tiny_kaggle.eeg_path())
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.eeg_path())):
        read_eeg(tiny_kaggle.eeg_path())


def test_file_that_is_not_parquet(tiny_kaggle):
    tiny_kaggle.eeg_path().write_text("Fp1,F3\n1,2\n")
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.eeg_path()) + ".*not a parquet"):
        HMSData(tiny_kaggle.root, "train").eeg_window(0)


def test_empty_file_is_not_parquet(tiny_kaggle):
    tiny_kaggle.spec_path().write_bytes(b"")
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.spec_path())):
        HMSData(tiny_kaggle.root, "train").spectrogram_window(0)


def test_corrupt_pages_and_a_column_given_twice_are_data_errors(tiny_kaggle):
    """A footer that reads over corrupt pages, or a column name given twice, is the file's
    fault, not a bug: a DataError naming it (all that the notebook's fallback catches)."""
    path = tiny_kaggle.eeg_path()
    raw = bytearray(path.read_bytes())
    raw[4:3000] = bytes(b ^ 0x5A for b in raw[4:3000])  # the first pages; the footer reads
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=_mentions(path) + ": corrupt parquet file"):
        read_eeg(path)
    eeg = tiny_kaggle.eeg_signal(60)
    tiny_kaggle.write_eeg(np.c_[eeg, eeg[:, :1]], columns=[*EEG_COLUMNS, "Fp1"])
    with pytest.raises(DataError, match=_mentions(path) + ": corrupt parquet file"):
        read_eeg(path)


def test_eeg_window_past_the_end(tiny_kaggle):
    rows = tiny_kaggle.train_rows()
    rows.loc[1, "eeg_label_offset_seconds"] = 20.0  # needs 20..70 s of a 60 s recording
    tiny_kaggle.write_train_csv(rows)
    data = HMSData(tiny_kaggle.root, "train")
    data.eeg_window(0)  # the first window still fits
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.eeg_path())) as err:
        data.eeg_window(1)
    assert "offset 20" in str(err.value)


def test_spectrogram_window_past_the_end(tiny_kaggle):
    rows = tiny_kaggle.train_rows()
    rows.loc[1, "spectrogram_label_offset_seconds"] = 30.0  # rows 15..315 of 310
    tiny_kaggle.write_train_csv(rows)
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.spec_path())):
        HMSData(tiny_kaggle.root, "train").spectrogram_window(1)


def test_missing_eeg_file(tiny_kaggle):
    tiny_kaggle.eeg_path("test").unlink()
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.eeg_path("test")) + ".*not found"):
        HMSData(tiny_kaggle.root, "test").eeg_window(0)


def test_missing_csv_files_and_folder(tiny_kaggle, tmp_path):
    tiny_kaggle.train_csv.unlink()
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.train_csv) + ".*not found"):
        HMSData(tiny_kaggle.root, "train")
    tiny_kaggle.test_csv.unlink()
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.test_csv)):
        HMSData(tiny_kaggle.root, "test")
    with pytest.raises(DataError, match=_mentions(tmp_path / "nowhere")):
        HMSData(tmp_path / "nowhere", "train")
    with pytest.raises(ValueError, match="split"):
        HMSData(tiny_kaggle.root, "valid")


def test_votes_summing_to_zero(tiny_kaggle):
    rows = tiny_kaggle.train_rows()
    rows.loc[1, list(VOTE_COLUMNS)] = 0
    tiny_kaggle.write_train_csv(rows)
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.train_csv)) as err:
        HMSData(tiny_kaggle.root, "train")
    message = str(err.value)
    assert "sum to 0" in message
    assert str(tiny_kaggle.train_eeg_id) in message
    assert _names_line(message, 3)  # header is line 1, the second data row line 3


def test_negative_votes(tiny_kaggle):
    rows = tiny_kaggle.train_rows()
    rows.loc[0, "gpd_vote"] = -1
    tiny_kaggle.write_train_csv(rows)
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.train_csv)) as err:
        read_train_csv(tiny_kaggle.train_csv)
    assert "negative" in str(err.value)
    assert _names_line(str(err.value), 2)
    assert str(tiny_kaggle.train_eeg_id) in str(err.value)


@pytest.mark.parametrize("column", ["patient_id", "eeg_label_offset_seconds", "other_vote"])
def test_train_csv_missing_required_column(tiny_kaggle, column):
    tiny_kaggle.write_train_csv(tiny_kaggle.train_rows().drop(columns=column))
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.train_csv)) as err:
        read_train_csv(tiny_kaggle.train_csv)
    assert column in str(err.value)


def test_train_csv_nan_in_required_column(tiny_kaggle):
    rows = tiny_kaggle.train_rows()
    rows["spectrogram_id"] = rows["spectrogram_id"].astype(float)
    rows.loc[1, "spectrogram_id"] = np.nan
    tiny_kaggle.write_train_csv(rows)
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.train_csv)) as err:
        read_train_csv(tiny_kaggle.train_csv)
    assert "spectrogram_id" in str(err.value)
    assert _names_line(str(err.value), 3)


def test_nan_in_an_optional_column_is_fine(tiny_kaggle):
    """The real train.csv has empty label_id cells (see hms-sample); that is not an error."""
    rows = tiny_kaggle.train_rows()
    rows["label_id"] = rows["label_id"].astype(float)
    rows.loc[1, "label_id"] = np.nan
    tiny_kaggle.write_train_csv(rows)
    assert len(read_train_csv(tiny_kaggle.train_csv)) == 2


def test_train_csv_non_numeric_votes(tiny_kaggle):
    rows = tiny_kaggle.train_rows()
    rows["lrda_vote"] = rows["lrda_vote"].astype(object)
    rows.loc[0, "lrda_vote"] = "three"
    tiny_kaggle.write_train_csv(rows)
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.train_csv) + ".*lrda_vote"):
        read_train_csv(tiny_kaggle.train_csv)


@pytest.mark.parametrize("column", ["eeg_label_offset_seconds", "spectrogram_label_offset_seconds"])
def test_negative_offset_in_train_csv(tiny_kaggle, column):
    rows = tiny_kaggle.train_rows()
    rows.loc[1, column] = -2.0
    tiny_kaggle.write_train_csv(rows)
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.train_csv)) as err:
        HMSData(tiny_kaggle.root, "train")
    assert column in str(err.value)
    assert _names_line(str(err.value), 3)


def test_negative_offset_window_functions(tiny_kaggle):
    """The window functions guard themselves too (they are also used without a train.csv)."""
    eeg = read_eeg(tiny_kaggle.eeg_path())
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.eeg_path())):
        eeg_window(eeg, -1.0, tiny_kaggle.eeg_path())
    spec = read_spectrogram(tiny_kaggle.spec_path())
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.spec_path())):
        spectrogram_window(spec, -2.0, tiny_kaggle.spec_path())


def test_duplicate_eeg_id_in_test_csv(tiny_kaggle):
    rows = pd.read_csv(tiny_kaggle.test_csv)
    tiny_kaggle.write_test_csv(pd.concat([rows, rows.assign(spectrogram_id=999)]))
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.test_csv)) as err:
        read_test_csv(tiny_kaggle.test_csv)
    assert str(tiny_kaggle.test_eeg_id) in str(err.value)


def test_test_csv_without_rows(tiny_kaggle):
    tiny_kaggle.write_test_csv(pd.read_csv(tiny_kaggle.test_csv).iloc[:0])
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.test_csv)):
        HMSData(tiny_kaggle.root, "test")


def test_empty_train_csv(tiny_kaggle):
    tiny_kaggle.train_csv.write_text("")
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.train_csv)):
        HMSData(tiny_kaggle.root, "train")


def test_spectrogram_with_wrong_columns(tiny_kaggle):
    columns = tiny_kaggle.spec_columns()
    renamed = [c.replace("RP_", "RR_") for c in columns]  # no RP chain
    tiny_kaggle.write_spec(np.ones((310, 400)), columns=renamed)
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.spec_path())) as err:
        HMSData(tiny_kaggle.root, "train").spectrogram_window(0)
    assert "RP" in str(err.value)


def test_spectrogram_with_too_few_bins(tiny_kaggle):
    columns = tiny_kaggle.spec_columns()
    tiny_kaggle.write_spec(np.ones((310, 399)), columns=columns[1:])  # LL lacks a bin
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.spec_path()) + ".*LL"):
        read_spectrogram(tiny_kaggle.spec_path())


def test_spectrogram_without_time_column(tiny_kaggle):
    frame = pd.DataFrame(np.ones((310, 400), np.float32), columns=tiny_kaggle.spec_columns())
    frame.to_parquet(tiny_kaggle.spec_path())
    with pytest.raises(DataError, match=_mentions(tiny_kaggle.spec_path()) + ".*time"):
        read_spectrogram(tiny_kaggle.spec_path())
