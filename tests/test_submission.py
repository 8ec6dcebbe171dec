"""Submission validation and the atomic writer: every kind of bad submission is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.submission import SubmissionError, validate_submission, write_submission


@pytest.fixture
def kaggle_files(tmp_path):
    test = pd.DataFrame(
        {"spectrogram_id": [1, 2, 3], "eeg_id": [10, 20, 30], "patient_id": [5] * 3}
    )
    test.to_csv(tmp_path / "test.csv", index=False)
    sample = pd.DataFrame({"eeg_id": [10, 20, 30], **{c: [1 / 6] * 3 for c in VOTE_COLUMNS}})
    sample.to_csv(tmp_path / "sample_submission.csv", index=False)
    return tmp_path / "test.csv", tmp_path / "sample_submission.csv"


def good() -> pd.DataFrame:
    probs = np.random.default_rng(0).dirichlet(np.ones(6), 3)
    return pd.DataFrame({"eeg_id": [30, 10, 20], **dict(zip(VOTE_COLUMNS, probs.T, strict=True))})


def test_a_good_submission_passes_and_is_written(kaggle_files, tmp_path) -> None:
    path = write_submission(good(), tmp_path / "out" / "submission.csv", *kaggle_files)
    assert pd.read_csv(path).shape == (3, 7)
    assert not list(path.parent.glob(".*tmp"))  # no temporary file left behind


def _broken(kind: str) -> pd.DataFrame:
    sub = good()
    if kind == "missing id":
        return sub.iloc[:2]
    if kind == "extra id":
        extra = sub.iloc[:1].assign(eeg_id=99)
        return pd.concat([sub, extra], ignore_index=True)
    if kind == "duplicate id":
        return pd.concat([sub, sub.iloc[:1]], ignore_index=True)
    if kind == "column order":
        return sub[["eeg_id", *reversed(VOTE_COLUMNS)]]
    if kind == "missing column":
        return sub.drop(columns=["other_vote"])
    if kind == "nan":
        sub.loc[0, "lpd_vote"] = np.nan
        return sub
    if kind == "negative":
        sub.loc[0, "lpd_vote"] = -0.1
        sub.loc[0, "gpd_vote"] += 0.1
        return sub
    if kind == "not normalised":
        sub.loc[1, list(VOTE_COLUMNS)] *= 2
        return sub
    if kind == "text":
        return sub.astype({"seizure_vote": str})
    raise AssertionError(kind)


KINDS = [
    "missing id",
    "extra id",
    "duplicate id",
    "column order",
    "missing column",
    "nan",
    "negative",
    "not normalised",
    "text",
]


@pytest.mark.parametrize("kind", KINDS)
def test_each_bad_submission_is_rejected_and_nothing_written(kind, kaggle_files, tmp_path) -> None:
    target = tmp_path / "submission.csv"
    with pytest.raises(SubmissionError):
        write_submission(_broken(kind), target, *kaggle_files)
    assert not target.exists()


def test_a_failed_check_keeps_the_previous_submission(kaggle_files, tmp_path) -> None:
    target = write_submission(good(), tmp_path / "submission.csv", *kaggle_files)
    before = target.read_text()
    with pytest.raises(SubmissionError, match="missing"):
        validate_submission(_broken("missing id"), *kaggle_files)
        write_submission(_broken("missing id"), target, *kaggle_files)
    assert target.read_text() == before
