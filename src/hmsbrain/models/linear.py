"""The classifier every classical model shares: a logistic regression on standardised
features, soft targets fitted as weighted hard ones, the L2 strength chosen by log loss in grouped
inner folds. No Keras here: the scikit-learn members import it without a deep-learning backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import log_loss, make_scorer
from sklearn.model_selection import GroupKFold

LOG_FLOOR = 1e-12  # powers are log-compressed; silence must stay finite
INNER_FOLDS = 3  # grouped inner folds that choose the L2 strength


def soft_rows(
    targets: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft targets ``(n, K)`` as weighted hard labels: the epoch and class of each nonzero
    target, and its weight (the target's probability times the epoch's ``weights``)."""
    rows, classes = np.nonzero(targets > 0)
    return rows, classes, targets[rows, classes] * (1.0 if weights is None else weights[rows])


def logistic(
    x: np.ndarray,
    rows: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray,
    cs: Sequence[float],
    groups: np.ndarray | None = None,
) -> LogisticRegression | LogisticRegressionCV:
    """The classifier of every classical baseline, fitted on the epochs' features ``x`` as the
    :func:`soft_rows` ``rows``, ``y`` and ``sample_weight``: one fixed strength, or
    LogisticRegressionCV over ``cs`` scored by weighted log loss. Inner folds keep each group
    (``groups``, per epoch; else each epoch: its soft-label copies) on one side."""
    keys = rows if groups is None else np.asarray(groups)[rows]
    if len(np.unique(keys)) < INNER_FOLDS:
        # Two subjects in the training folds (3 subjects, 3 folds) cannot form grouped inner
        # folds. Fixing the strength instead took the weakest one on offer, which overfits the
        # two subjects (and, on crops, as many copies of each epoch as it has crops): the
        # strength is chosen over epochs instead, each epoch's copies kept together.
        keys = rows
    x = x[rows]
    if len(cs) == 1 or len(np.unique(keys)) < INNER_FOLDS:
        return LogisticRegression(C=cs[-1], max_iter=5000).fit(x, y, sample_weight=sample_weight)
    splits = list(GroupKFold(INNER_FOLDS).split(x, groups=keys))
    # Metadata routing hands the sample weights to the scorer too: unweighted, every soft-label
    # copy would count as a full hard label, and the weakest model would win.
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(log_loss, response_method="predict_proba", greater_is_better=False)
        return LogisticRegressionCV(
            Cs=list(cs),
            l1_ratios=(0.0,),
            cv=splits,
            max_iter=5000,
            scoring=scorer.set_score_request(sample_weight=True),
            use_legacy_attributes=False,
        ).fit(x, y, sample_weight=sample_weight)


def strength(clf: LogisticRegression | LogisticRegressionCV) -> float:
    """The inverse L2 strength :func:`logistic` fitted with (the chosen one, for CV)."""
    return float(clf.C_ if isinstance(clf, LogisticRegressionCV) else clf.C)


def inner_score(clf: LogisticRegression | LogisticRegressionCV) -> float | None:
    """The weighted log loss (negated) of the chosen strength in the inner folds, the mean over
    folds; None for a fixed strength (nothing was scored)."""
    if not isinstance(clf, LogisticRegressionCV):
        return None
    return float(np.asarray(clf.scores_).mean(axis=0).max())
