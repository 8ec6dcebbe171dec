"""The second round on soft labels (``train.pseudo_from``): the low-vote training units of a
fold get ``pseudo_mix x votes + (1 - pseudo_mix) x`` the out-of-fold prediction of a finished
run, read from its ``oof.parquet`` files alone (never a model).

Each EEG's prediction comes from the one fold of that run which held the EEG out, so no
pseudo target is made by a model that trained on its EEG; that holds only if the finished run
was split as the current one is, which :func:`read_pseudo_oof` checks unit by unit. Validation
targets are never relabelled, and every CV figure is still scored against the votes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.config import ConfigError
from hmsbrain.core.predictions import FOLD, probability_columns, read_predictions
from hmsbrain.runs import OOF_FILE, fold_dirs
from hmsbrain.training.batches import StageData


def read_pseudo_oof(run: str | Path, folds: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """The finished run's OOF (index: unit id; columns ``fold`` and ``classes``), every unit of
    ``folds`` (``id``, ``fold``: the current folds file) once, in the fold that file gives it;
    anything else is a one-line ConfigError naming the run."""
    run = Path(run)
    parts = []
    for fold_dir in fold_dirs(run):
        predictions = read_predictions(fold_dir / OOF_FILE)
        if predictions.meta.get("kind") != "oof":
            raise ConfigError(f"train.pseudo_from: {fold_dir / OOF_FILE} is not an OOF file")
        parts.append(predictions.frame)
    oof = pd.concat(parts, ignore_index=True)
    id_column = str(oof.columns[0])
    if probability_columns(oof) != classes:
        raise ConfigError(
            f"train.pseudo_from={run}: it predicts {probability_columns(oof)}, the data has "
            f"{classes}"
        )
    if oof[id_column].duplicated().any():
        raise ConfigError(f"train.pseudo_from={run}: a {id_column} is in the OOF of two folds")
    want = folds.set_index(folds["id"].astype(str))["fold"]
    have = oof.set_index(oof[id_column].astype(str))[FOLD]
    missing = want.index.difference(have.index)
    if len(missing):
        raise ConfigError(
            f"train.pseudo_from={run}: no OOF prediction for {len(missing)} of the "
            f"{len(want)} units (e.g. {id_column} {missing[0]}); finish every fold of it"
        )
    moved = have.loc[want.index] != want
    if moved.any():
        unit = moved.index[moved.to_numpy()][0]
        raise ConfigError(
            f"train.pseudo_from={run}: its folds differ from the current folds file "
            f"({id_column} {unit}: fold {have.loc[unit]} there, {want.loc[unit]} here), so a "
            "pseudo label could come from a model that trained on its EEG; train the first "
            "round with the same data, folds.n_folds and folds.seed"
        )
    return oof.set_index(oof[id_column].astype(str))[[FOLD, *classes]]


def relabel(stage: StageData, oof: pd.DataFrame, mix: float, low_votes: int) -> StageData:
    """``stage`` with each low-vote unit's target (fewer than ``low_votes`` votes) replaced by
    ``mix x`` its target ``+ (1 - mix) x`` its EEG's row of ``oof`` (:func:`read_pseudo_oof`)."""
    assert stage.votes is not None
    low = stage.votes < low_votes
    predicted = oof.loc[pd.Index(stage.unit_ids[low].astype(str))].drop(columns=FOLD)
    targets = stage.targets.copy()
    targets[low] = mix * targets[low] + (1 - mix) * predicted.to_numpy(np.float32)
    return dataclasses.replace(stage, targets=targets)
