"""The official HMS score: KL divergence of the submission from the vote distribution.

Kaggle's ``kaggle_kl_div.score`` clips only the submission to ``[1e-15, 1 - 1e-15]``, counts a
term as 0 wherever the target is 0, sums over the six classes and averages over rows (micro
average). It does not renormalise the clipped submission, and neither does this.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hmsbrain.hms.constants import METRIC_EPSILON, VOTE_COLUMNS


def kl_divergence(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-row KL(y_true || clip(y_pred)), ``(rows,)`` float64."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.clip(np.asarray(y_pred, dtype=np.float64), METRIC_EPSILON, 1 - METRIC_EPSILON)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: targets {y_true.shape}, predictions {y_pred.shape}")
    positive = y_true > 0
    terms = np.zeros_like(y_true)
    terms[positive] = y_true[positive] * np.log(y_true[positive] / y_pred[positive])
    return terms.sum(axis=1)


def kl_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The competition score of arrays ``(rows, 6)``: mean per-row KL."""
    return float(kl_divergence(y_true, y_pred).mean())


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


def class_prior_score(y_true: np.ndarray, prior_from: np.ndarray | None = None) -> float:
    """Score of predicting the mean target of ``prior_from`` (default: of ``y_true``) everywhere.

    The baseline every CV figure is reported against.
    """
    prior = np.asarray(y_true if prior_from is None else prior_from, dtype=np.float64).mean(0)
    return kl_score(y_true, np.broadcast_to(prior, np.shape(y_true)))


def eeg_targets(rows: pd.DataFrame) -> pd.DataFrame:
    """EEG-level targets: each EEG's sub-window votes summed, then normalised.

    Every EEG-level score (validation, OOF, CV) uses this target.
    """
    votes = rows.groupby("eeg_id", sort=True)[list(VOTE_COLUMNS)].sum()
    return votes.div(votes.sum(axis=1), axis=0)


def eeg_vote_counts(rows: pd.DataFrame) -> pd.Series:
    """Votes per EEG, indexed by eeg_id: the median of its sub-windows' totals (they rarely
    differ). The "at least N votes" subsets of training, selection and CV use it."""
    totals = rows[list(VOTE_COLUMNS)].sum(axis=1)
    return totals.groupby(rows["eeg_id"]).median()
