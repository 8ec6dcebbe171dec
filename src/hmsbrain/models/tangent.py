"""The Riemannian tangent-space baseline: each epoch's channel covariance (Oracle Approximating
Shrinkage), mapped to the tangent space at the training epochs' Riemannian mean, standardised,
into a logistic regression (Barachant et al. 2013; pyRiemann's ``Covariances`` and
``TangentSpace``).

Band power sees each channel's spectrum alone; the tangent space sees how channels co-vary,
which is what spatial patterns (motor imagery, a source seen on several electrodes) change. The
classifier is band power's (:func:`hmsbrain.models.bandpower.logistic`: soft targets as weighted
copies, the L2 strength chosen by weighted log loss in grouped inner folds), so the two
baselines differ only in their features. It is a baseline beside a run, not a registered model:
scikit-learn predicts it, no Keras graph is needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pyriemann.estimation import Covariances
from pyriemann.tangentspace import TangentSpace
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from hmsbrain.models.linear import logistic, soft_rows, strength


def channels_first(raw: np.ndarray) -> np.ndarray:
    """``(n, samples, channels)`` epochs as pyRiemann reads them, ``(n, channels, samples)``, in
    float64 (the covariance of float32 samples loses digits the matrix logarithm needs)."""
    return np.swapaxes(np.asarray(raw, np.float64), 1, 2)


@dataclass
class TangentFit:
    """A fitted tangent-space baseline: one scikit-learn pipeline from epochs to classes."""

    pipeline: Pipeline  # covariances -> tangent space -> scaler -> classifier, all fitted
    n_classes: int
    c: float  # the inverse L2 strength used

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, classes)`` of ``(n, samples, channels)`` epochs; a class
        absent from the training epochs gets none."""
        probs = np.zeros((len(raw), self.n_classes))
        probs[:, self.pipeline.classes_] = self.pipeline.predict_proba(channels_first(raw))
        return probs


def fit_tangent_space(
    chunks: Iterable[np.ndarray],
    targets: np.ndarray,
    cs: Sequence[float] = (1.0,),
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> TangentFit:
    """Fit on raw epochs given as ``chunks`` of ``(n, samples, channels)`` with target
    distributions ``(n, K)`` in the same order; ``cs``, ``weights`` and ``groups`` as band
    power's :func:`~hmsbrain.models.bandpower.fit_features`.

    The covariance is computed chunk by chunk (it needs no fit), so only ``(n, channels,
    channels)`` matrices are held. The tangent space and the scaler are fitted on each epoch
    once; the classifier on the epochs' soft-label copies, which a single ``Pipeline.fit``
    could not tell apart from the epochs themselves."""
    covariances = Covariances(estimator="oas")
    covs = np.concatenate([covariances.transform(channels_first(chunk)) for chunk in chunks])
    tangent = TangentSpace(metric="riemann").fit(covs)
    features = tangent.transform(covs)
    scaler = StandardScaler().fit(features)
    x = scaler.transform(features)
    rows, classes, sample_weight = soft_rows(targets, weights)
    if len(np.unique(classes)) == 1:  # one class in the fold: predict it
        clf, c = DummyClassifier(strategy="prior").fit(x[rows], classes), float(cs[-1])
    else:
        clf = logistic(x, rows, classes, sample_weight, cs, groups)
        c = strength(clf)
    steps = [("covariances", covariances), ("tangent", tangent), ("scaler", scaler), ("lr", clf)]
    return TangentFit(Pipeline(steps), targets.shape[1], c)
