"""The truth file of a dataset: what every unit's target is, so scoring needs no data folder.

``<cache_dir>/truth-<dataset tag>.parquet`` (written by training beside the folds file) is a
parquet table with one row per scoring unit: the unit id (the column is named as the dataset's
id column, ``eeg_id`` or ``epoch``), ``group`` (the patient, subject or file folds keep
together), ``votes`` (the raters behind the target; 1 for a hard label) and one column per class
holding the normalised unit target. The class names, the id column, whether the labels are hard
and the dataset folder travel as JSON in the parquet schema metadata, as in prediction files:
``ensemble.py`` and the run report score OOF files against it without opening a single
recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hmsbrain.core.predictions import read_table, write_table

KIND = "truth"
GROUP = "group"
VOTES = "votes"


@dataclass(frozen=True)
class Truth:
    """Unit targets of one labelled dataset, indexed by unit id (the index name is the id
    column); ``votes`` and ``groups`` share that index."""

    targets: pd.DataFrame  # one column per class, each row summing to one
    votes: pd.Series
    groups: pd.Series
    hard: bool
    root: str  # the dataset folder, resolved

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.targets.columns]

    @property
    def id_column(self) -> str:
        return str(self.targets.index.name)


def write_truth(path: str | Path, truth: Truth) -> Path:
    """Write ``truth`` to ``path`` atomically (a reader never sees half a file)."""
    reserved = {truth.id_column, GROUP, VOTES} & set(truth.classes)
    if reserved:
        # The columns would collide in the table; no layout names a class like this in practice.
        raise ValueError(f"{path}: class names {sorted(reserved)} clash with the truth columns")
    frame = truth.targets.copy()
    frame.insert(0, VOTES, truth.votes.loc[frame.index].to_numpy())
    frame.insert(0, GROUP, truth.groups.loc[frame.index].to_numpy())
    meta = {
        "kind": KIND,
        "id_column": truth.id_column,
        "classes": truth.classes,
        "hard": truth.hard,
        "root": truth.root,
    }
    return write_table(frame.reset_index(), path, meta)


def read_truth(path: str | Path) -> Truth:
    """The truth file at ``path``; a missing or foreign file is an error naming it."""
    frame, meta = read_table(path)
    if meta.get("kind") != KIND:
        raise ValueError(f"{path}: not a truth file (no {KIND!r} metadata)")
    frame = frame.set_index(meta["id_column"])
    return Truth(
        frame[meta["classes"]],
        frame[VOTES],
        frame[GROUP],
        bool(meta["hard"]),
        str(meta["root"]),
    )
