"""The truth file: it round-trips a dataset's unit targets, votes and groups exactly (ids, dtypes,
metadata), it holds what the dataset says, and a run without one is a one-line error naming the
file."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest

from hmsbrain.core.predictions import write_predictions
from hmsbrain.core.truth import Truth, read_truth, write_truth
from hmsbrain.data.sources import open_dataset
from hmsbrain.inference.ensemble import truth_of_run
from hmsbrain.training.truth import truth_of, truth_path, write_truth_of
from tests.conftest import tiny_config


def _truth(ids: list, dtype: type, hard: bool) -> Truth:
    rng = np.random.default_rng(0)
    index = pd.Index(ids, name="epoch" if hard else "eeg_id")
    targets = rng.dirichlet(np.ones(3), len(ids)).astype(dtype)
    return Truth(
        pd.DataFrame(targets, index=index, columns=["left", "right", "rest"]),
        pd.Series(rng.integers(1, 9, len(ids)).astype(float), index=index),
        pd.Series([f"subject{i % 2}" for i in range(len(ids))], index=index),
        hard,
        "/data/somewhere",
    )


@pytest.mark.parametrize(
    ("ids", "dtype", "hard"),
    [([1003, 1001, 1002], np.float64, False), (["s1_e2", "s1_e1"], np.float32, True)],
)
def test_a_truth_file_reads_back_exactly(tmp_path, ids, dtype, hard) -> None:
    truth = _truth(ids, dtype, hard)
    back = read_truth(write_truth(tmp_path / "truth.parquet", truth))
    pd.testing.assert_frame_equal(back.targets, truth.targets)
    np.testing.assert_array_equal(back.votes.loc[ids], truth.votes.loc[ids])
    np.testing.assert_array_equal(back.groups.loc[ids], truth.groups.loc[ids])
    assert (back.classes, back.id_column, back.hard, back.root) == (
        truth.classes,
        truth.id_column,
        hard,
        truth.root,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["truth.parquet"]  # no temporary left


def test_a_missing_or_foreign_file_is_an_error_naming_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.parquet: file not found"):
        read_truth(tmp_path / "nothing.parquet")
    oof = pd.DataFrame({"eeg_id": [1], "fold": [0], "a": [1.0]})
    path = write_predictions(oof, tmp_path / "oof.parquet", {"kind": "oof"})
    with pytest.raises(ValueError, match=r"oof\.parquet: not a truth file"):
        read_truth(path)


def test_a_class_named_like_a_truth_column_is_refused(tmp_path) -> None:
    truth = _truth([1, 2], np.float64, False)
    clash = dataclasses.replace(truth, targets=truth.targets.rename(columns={"rest": "votes"}))
    with pytest.raises(ValueError, match=r"class names \['votes'\]"):
        write_truth(tmp_path / "truth.parquet", clash)


def test_the_truth_of_a_dataset_is_its_unit_targets_votes_and_groups(small_demo, tmp_path) -> None:
    data = open_dataset(tiny_config(small_demo, tmp_path), "train")
    path = write_truth_of(data, truth_path(tmp_path, "tag"))
    assert path == (tmp_path / "truth-tag.parquet").resolve()
    truth = read_truth(path)
    expected = data.unit_targets(data.rows)
    pd.testing.assert_frame_equal(truth.targets, expected, check_names=False)
    np.testing.assert_array_equal(truth.votes.loc[expected.index], data.unit_votes(data.rows))
    patients = data.rows.groupby("eeg_id")["patient_id"].first()
    np.testing.assert_array_equal(truth.groups.loc[patients.index], patients)
    assert (truth.id_column, truth.classes, truth.hard) == ("eeg_id", list(data.classes), False)
    assert truth.root == str(data.root.resolve())
    assert truth_of(data).targets.equals(truth.targets)


def _fake_run(tmp_path, summary: dict):
    """A run folder as truth_of_run sees it: folds with a model file and a summary."""
    run = tmp_path / "run"
    for fold in ("fold0", "fold1"):
        (run / fold).mkdir(parents=True)
        (run / fold / "model.keras").touch()
        (run / fold / "summary.json").write_text(json.dumps(summary))
    return run


def test_a_run_without_a_truth_file_says_to_retrain(tmp_path) -> None:
    run = _fake_run(tmp_path, {"fold": 0})
    with pytest.raises(FileNotFoundError, match=r"fold0/summary\.json: no 'truth'.*retrain"):
        truth_of_run(run)
    gone = tmp_path / "cache" / "truth-x.parquet"
    run = _fake_run(tmp_path / "b", {"truth": str(gone)})
    missing = re.escape(f"{gone}: file not found") + ".*retrain the run"
    with pytest.raises(FileNotFoundError, match=missing):
        truth_of_run(run)
    truth = _truth([1, 2], np.float64, False)
    write_truth(gone, truth)
    assert truth_of_run(run).targets.equals(truth.targets)
