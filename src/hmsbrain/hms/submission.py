"""Submission checks and atomic writing: a bad submission is an error, never a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.atomic import atomic_path
from hmsbrain.core.metrics import kl_score
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.layout import read_sample_submission, read_test_csv

SUM_TOLERANCE = 1e-6


class SubmissionError(ValueError):
    """A submission that Kaggle would reject or score wrongly; the message says what is wrong."""


def validate_submission(sub: pd.DataFrame, test_csv: str | Path, sample_csv: str | Path) -> None:
    """Raise :class:`SubmissionError` unless ``sub`` is exactly what the competition expects.

    Checks: the ``sample_submission.csv`` columns in their order; exactly the ``test.csv``
    eeg_ids, each once; finite probabilities in [0, 1] summing to 1 on every row.
    """
    expected_cols = list(read_sample_submission(sample_csv).columns)
    if list(sub.columns) != expected_cols:
        raise SubmissionError(
            f"columns {list(sub.columns)} differ from {sample_csv}: {expected_cols}"
        )
    dup = sub["eeg_id"].duplicated()
    if dup.any():
        raise SubmissionError(f"eeg_id {sub['eeg_id'][dup].iloc[0]} appears more than once")
    want = set(read_test_csv(test_csv)["eeg_id"])
    have = set(sub["eeg_id"])
    if have != want:
        missing, extra = sorted(want - have), sorted(have - want)
        raise SubmissionError(
            f"eeg_ids differ from {test_csv}: {len(missing)} missing {missing[:5]}, "
            f"{len(extra)} extra {extra[:5]}"
        )
    probs = sub[expected_cols[1:]]
    if not all(pd.api.types.is_numeric_dtype(probs[c]) for c in probs.columns):
        raise SubmissionError("probability columns must be numeric")
    values = probs.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise SubmissionError(
            f"the row of eeg_id {sub['eeg_id'][bad].iloc[0]} holds NaN/inf "
            f"({int(bad.sum())} rows in all)"
        )
    if (values < 0).any() or (values > 1).any():
        raise SubmissionError("probabilities must lie in [0, 1]")
    sums = values.sum(axis=1)
    bad = np.abs(sums - 1) > SUM_TOLERANCE
    if bad.any():
        raise SubmissionError(
            f"{int(bad.sum())} rows do not sum to 1 (eeg_id {sub['eeg_id'][bad].iloc[0]} sums to "
            f"{sums[bad][0]:.6f})"
        )


def write_submission(
    sub: pd.DataFrame, path: str | Path, test_csv: str | Path, sample_csv: str | Path
) -> Path:
    """Validate, then write ``path`` atomically (a crash never leaves half a file)."""
    validate_submission(sub, test_csv, sample_csv)
    path = Path(path)
    with atomic_path(path) as tmp:
        sub.to_csv(tmp, index=False)
    return path


def score(
    solution: pd.DataFrame, submission: pd.DataFrame, row_id_column_name: str = "eeg_id"
) -> float:
    """Kaggle's signature: frames keyed by ``row_id_column_name`` with the six vote columns.

    Rows are matched by id, so the submission's row order does not matter; a missing or extra id
    is an error rather than a silently shifted score.
    """
    sol = solution.set_index(row_id_column_name)
    sub = submission.set_index(row_id_column_name)
    missing = sol.index.difference(sub.index)
    extra = sub.index.difference(sol.index)
    if len(missing) or len(extra):
        raise ValueError(
            f"submission ids differ from the solution: {len(missing)} missing, {len(extra)} extra"
        )
    cols = list(VOTE_COLUMNS)
    return kl_score(sol[cols].to_numpy(), sub.loc[sol.index, cols].to_numpy())
