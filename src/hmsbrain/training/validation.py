"""A fold's validation: its units' targets, the subset that picks the best epoch, the scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hmsbrain.config import ConfigError
from hmsbrain.core.metrics import classification_metrics, kl_score
from hmsbrain.core.predict import average_by_unit
from hmsbrain.data.dataset import Dataset


def select_metric(name: str, hard: bool) -> str:
    """``train.select_metric`` resolved: ``auto`` is log loss for soft labels (the HMS score)
    and balanced accuracy for hard ones (what an imbalanced classification is judged by)."""
    if name == "auto":
        return "balanced_accuracy" if hard else "kl"
    return name


@dataclass
class Validation:
    """A fold's validation units: targets, the subset that picks the best epoch, the prior."""

    rows: pd.DataFrame  # the validation rows (HMS: labelled sub-windows)
    targets: pd.DataFrame  # unit targets, indexed by unit id
    selected: np.ndarray  # bool per unit: counts when picking the epoch (train.select_min_votes)
    prior: np.ndarray  # the training folds' mean target
    data: Dataset
    metric: str  # what picks the epoch: "kl" or "balanced_accuracy"

    @classmethod
    def of(
        cls,
        val_rows: pd.DataFrame,
        data: Dataset,
        prior: np.ndarray,
        min_votes: int,
        fold: int,
        metric: str = "kl",
    ) -> Validation:
        targets = data.unit_targets(val_rows)
        selected = (data.unit_votes(val_rows).loc[targets.index] >= min_votes).to_numpy()
        if not selected.any():
            raise ConfigError(
                f"train.select_min_votes={min_votes} leaves none of fold {fold}'s "
                f"{len(targets)} validation units to pick the best epoch with; lower it"
            )
        return cls(val_rows, targets, selected, prior, data, metric)

    def oof(self, probs: np.ndarray) -> pd.DataFrame:
        ids = self.rows[self.data.id_column].to_numpy()
        return average_by_unit(ids, probs, self.data.classes, self.data.id_column)

    def scores(self, oof: pd.DataFrame) -> dict[str, float]:
        """KL (log loss for hard labels) over every validation unit and over the selection
        subset; for hard labels their balanced accuracies too."""
        target = self.targets.loc[oof[self.data.id_column]].to_numpy()
        pred = oof[list(self.data.classes)].to_numpy()
        sel = self.selected
        out = {"kl": kl_score(target, pred), "kl_selected": kl_score(target[sel], pred[sel])}
        if self.data.hard:
            classes = self.data.classes
            out["balanced_accuracy"] = classification_metrics(target, pred, classes)[
                "balanced_accuracy"
            ]
            out["balanced_accuracy_selected"] = classification_metrics(
                target[sel], pred[sel], classes
            )["balanced_accuracy"]
        return out

    def selection_loss(self, scores: dict[str, float]) -> float:
        """Lower is better: the selection subset's KL, or minus its balanced accuracy (ties,
        common on small folds, go to the lower KL)."""
        if self.metric == "kl":
            return scores["kl_selected"]
        return -scores["balanced_accuracy_selected"] + 1e-6 * scores["kl_selected"]

    def prior_oof(self) -> pd.DataFrame:
        """The class-prior baseline each fold's CV is reported beside (``class_prior_kl`` in
        ``summary.json``): the training folds' mean target for every validation unit."""
        frame = pd.DataFrame(
            np.broadcast_to(self.prior, self.targets.shape), columns=list(self.data.classes)
        )
        frame.insert(0, self.data.id_column, self.targets.index.to_numpy())
        return frame
