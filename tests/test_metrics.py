"""The competition metric, checked against hand-computed values and Kaggle's own implementation.

Every CV number the project reports goes through these functions, so an error here would
silently mis-rank every model.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pandas.api.types
import pytest

from hmsbrain.core.metrics import METRIC_EPSILON, kl_divergence, kl_score
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.submission import score

ONE_HOT = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
UNIFORM = [1 / 6] * 6


# --- Hand-computed values --------------------------------------------------------------------


def test_one_hot_target_vs_uniform_is_ln6():
    # KL = 1 * ln(1 / (1/6)) = ln 6
    assert kl_score(np.array([ONE_HOT]), np.array([UNIFORM])) == pytest.approx(math.log(6), 1e-12)


def test_zero_target_entries_contribute_nothing():
    # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.25) = ln 2; the pred 0.5 on class 3 (target 0) and the
    # zero predictions where the target is 0 contribute nothing.
    y = np.array([[0.5, 0.5, 0, 0, 0, 0]])
    p = np.array([[0.25, 0.25, 0.5, 0, 0, 0]])
    assert kl_score(y, p) == pytest.approx(math.log(2), 1e-12)


def test_zero_prediction_where_target_positive_is_clipped_at_1e15():
    # 1 * ln(1 / 1e-15) = 15 ln 10 = 34.538776394910684: large but finite.
    y = np.array([ONE_HOT])
    p = np.array([[0.0, 1.0, 0, 0, 0, 0]])
    assert METRIC_EPSILON == 1e-15
    assert kl_score(y, p) == pytest.approx(34.538776394910684, rel=1e-12)
    # Half the mass on a zero prediction: 0.5 ln(0.5 / (1 - 1e-15)) + 0.5 ln(0.5 / 1e-15)
    # = -ln 2 + 7.5 ln 10 = 16.576241016895397.
    y = np.array([[0.5, 0.5, 0, 0, 0, 0]])
    p = np.array([[1.0, 0.0, 0, 0, 0, 0]])
    assert kl_score(y, p) == pytest.approx(16.576241016895397, rel=1e-12)


def test_perfect_prediction_scores_zero():
    y = np.array([ONE_HOT, [0.2, 0.3, 0.0, 0.0, 0.1, 0.4], UNIFORM])
    assert kl_score(y, y.copy()) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(kl_divergence(y, y), 0.0, atol=1e-12)


def test_prediction_is_not_renormalised():
    # Kaggle clips but never renormalises: a row summing to 0.5 is scored as it is.
    y = np.array([ONE_HOT])
    p = np.array([[0.5, 0, 0, 0, 0, 0]])
    assert kl_score(y, p) == pytest.approx(math.log(2), 1e-12)


def test_score_is_the_mean_over_rows():
    # Micro average: per-row KL values ln 6 and ln 2, score their mean.
    y = np.array([ONE_HOT, [0.5, 0.5, 0, 0, 0, 0]])
    p = np.array([UNIFORM, [0.25, 0.25, 0.5, 0, 0, 0]])
    per_row = kl_divergence(y, p)
    assert per_row.shape == (2,)
    np.testing.assert_allclose(per_row, [math.log(6), math.log(2)], rtol=1e-12)
    assert kl_score(y, p) == pytest.approx((math.log(6) + math.log(2)) / 2, 1e-12)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        kl_score(np.array([ONE_HOT]), np.array([ONE_HOT, ONE_HOT]))


# --- DataFrame interface -----------------------------------------------------------------------


def _frames(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random vote distributions (with exact zeros) and random predictions (with exact zeros)."""
    rng = np.random.default_rng(seed)
    votes = rng.integers(0, 4, (n, 6)) * (rng.random((n, 6)) < 0.5)
    votes[votes.sum(1) == 0, 0] = 1
    y = votes / votes.sum(1, keepdims=True)
    p = rng.dirichlet(np.ones(6), n)
    p[rng.random((n, 6)) < 0.1] = 0.0  # exact zeros exercise the clipping
    ids = rng.choice(10**9, n, replace=False)
    solution = pd.DataFrame(y, columns=list(VOTE_COLUMNS)).assign(eeg_id=ids)
    submission = pd.DataFrame(p, columns=list(VOTE_COLUMNS)).assign(eeg_id=ids)
    return solution[["eeg_id", *VOTE_COLUMNS]], submission[["eeg_id", *VOTE_COLUMNS]]


def test_score_matches_rows_by_id_not_by_order():
    solution, submission = _frames(50, seed=0)
    expected = kl_score(solution[list(VOTE_COLUMNS)].to_numpy(), submission[list(VOTE_COLUMNS)])
    shuffled = submission.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert not shuffled["eeg_id"].equals(solution["eeg_id"])
    assert score(solution, shuffled) == pytest.approx(expected, rel=1e-12)
    # The caller's frames are left as they were.
    assert list(solution.columns) == ["eeg_id", *VOTE_COLUMNS]
    assert list(shuffled.columns) == ["eeg_id", *VOTE_COLUMNS]


def test_score_rejects_missing_extra_and_duplicate_ids():
    solution, submission = _frames(10, seed=2)
    with pytest.raises(ValueError, match="missing"):
        score(solution, submission.iloc[1:])
    extra = pd.concat([submission, submission.iloc[:1].assign(eeg_id=-1)])
    with pytest.raises(ValueError, match="extra"):
        score(solution, extra)
    # A duplicated id must not be silently scored twice either.
    with pytest.raises(ValueError):
        score(solution, pd.concat([submission, submission.iloc[:1]]))


def _kaggle_kl_divergence(
    solution: pd.DataFrame, submission: pd.DataFrame, row_id_column_name: str
) -> float:
    """A straight transcription of Kaggle's ``kaggle_kl_div.score`` (micro average, eps 1e-15)."""
    solution = solution.copy()
    submission = submission.copy()
    del solution[row_id_column_name]
    del submission[row_id_column_name]
    epsilon = 10**-15
    for col in solution.columns:
        if not pandas.api.types.is_float_dtype(solution[col]):
            solution[col] = solution[col].astype(float)
        submission[col] = np.clip(submission[col], epsilon, 1 - epsilon)
        y_nonzero_indices = solution[col] != 0
        solution[col] = solution[col].astype(float)
        solution.loc[y_nonzero_indices, col] = solution.loc[y_nonzero_indices, col] * np.log(
            solution.loc[y_nonzero_indices, col] / submission.loc[y_nonzero_indices, col]
        )
        solution.loc[~y_nonzero_indices, col] = 0
    return float(np.average(solution.sum(axis=1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_agrees_with_kaggle_reference_implementation(seed):
    solution, submission = _frames(200, seed=seed)
    reference = _kaggle_kl_divergence(solution, submission, "eeg_id")
    assert score(solution, submission) == pytest.approx(reference, rel=1e-10)
    assert kl_score(
        solution[list(VOTE_COLUMNS)].to_numpy(), submission[list(VOTE_COLUMNS)].to_numpy()
    ) == pytest.approx(reference, rel=1e-10)
