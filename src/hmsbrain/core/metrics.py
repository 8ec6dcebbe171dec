"""Scores of probabilistic predictions against target distributions, for every dataset.

The log-loss family is the official HMS score: Kaggle's ``kaggle_kl_div.score`` clips only the
submission to ``[1e-15, 1 - 1e-15]``, counts a term as 0 wherever the target is 0, sums over the
classes and averages over rows (micro average), without renormalising the clipped submission;
so does :func:`kl_score`. For one-hot (hard) targets it equals the cross-entropy (log loss),
which is what blend weights and, by default, soft-label epoch selection minimise.

Hard labels add the classification metrics a user reads first (:func:`classification_metrics`),
all computed by scikit-learn.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# The competition clips submissions to [EPS, 1 - EPS]; the same clip keeps log loss finite.
METRIC_EPSILON = 1e-15


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


def classification_metrics(
    targets: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]
) -> dict[str, object]:
    """Accuracy, balanced accuracy, macro F1, ROC AUC (one-vs-rest beyond 2 classes), top-k
    accuracy (k = 2 for 3 classes, else 3; none for 2), per-class precision and recall, and the
    confusion matrix (rows: true class, columns: predicted), against each target's majority
    class."""
    truth = np.asarray(targets).argmax(axis=1)
    predicted = np.asarray(probs).argmax(axis=1)
    labels = np.arange(len(classes))
    precision, recall, _, support = skm.precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    out: dict[str, object] = {
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(truth, predicted)),
        "macro_f1": float(
            skm.f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)
        ),
        "chance_balanced_accuracy": 1.0 / len(classes),
    }
    present = np.unique(truth)
    if len(present) > 1:
        scores = np.asarray(probs, np.float64)
        if len(classes) == 2:
            out["roc_auc"] = float(skm.roc_auc_score(truth, scores[:, 1]))
        elif len(present) == len(classes):  # one-vs-rest AUC needs every class among the targets
            out["roc_auc"] = float(
                skm.roc_auc_score(truth, scores, multi_class="ovr", labels=labels)
            )
    k = min(3, len(classes) - 1)
    if k >= 2:
        out[f"top{k}_accuracy"] = float(skm.top_k_accuracy_score(truth, probs, k=k, labels=labels))
    out["per_class"] = {
        name: {"precision": float(p), "recall": float(r), "support": int(n)}
        for name, p, r, n in zip(classes, precision, recall, support, strict=True)
    }
    out["confusion"] = skm.confusion_matrix(truth, predicted, labels=labels).tolist()
    return out
