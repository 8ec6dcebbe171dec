"""Checks of the cross-validation split: subjects on both sides, the same or overlapping signal
on both sides (found by hashing, :mod:`hmsbrain.diagnose.hashing`), and the label mix of each
fold. A leak makes the CV optimistic; a model then looks good in CV and fails on new data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hmsbrain.diagnose.context import Context
from hmsbrain.diagnose.report import FAIL, PASS, WARN, Check

FOLD_SHARE_DEVIATION = 0.1  # a class's share in a fold this far from its overall share


def _first(values: list[object], limit: int = 5) -> str:
    text = ", ".join(map(str, values[:limit]))
    return text + (f" and {len(values) - limit} more" if len(values) > limit else "")


def check_groups(ctx: Context) -> Check:
    """Every subject (patient, file) in exactly one fold, judged by the dataset's groups now,
    not by the group column of a saved fold table (it may predate them)."""
    name = "groups across folds"
    kind = ctx.data.group_kind
    units = ctx.data.fold_units()[["id", "group"]]
    table = units.merge(ctx.folds[["id", "fold"]], on="id", how="left")
    spread = table.groupby("group")["fold"].nunique()
    crossing = spread[spread > 1].index.tolist()
    val_groups = set(table.loc[table["fold"] == ctx.fold, "group"])
    both = sorted(val_groups & set(table.loc[table["fold"] != ctx.fold, "group"]), key=str)
    measured = (
        f"{len(spread)} {kind}s in {ctx.cfg.folds.n_folds} folds; fold {ctx.fold} validates "
        f"{len(val_groups)}; {len(crossing)} {kind}s in more than one fold"
    )
    if crossing:
        return Check(
            name,
            FAIL,
            f"{measured} ({_first(crossing)}); in both training and fold "
            f"{ctx.fold}'s validation: {len(both)}",
            f"delete {ctx.folds_path} so the folds are made again by {kind} (runs made with "
            "the old split are not comparable)",
        )
    if kind in ("file", "epoch"):
        return Check(
            name,
            WARN,
            f"{measured}, but no subject ids: folds keep each {kind} "
            "together, and a subject's other files can sit on both sides",
            "give subjects (groups.npy, a subject column or dataset.yaml "
            "group_pattern) for a CV on new subjects",
        )
    return Check(name, PASS, measured)


def check_shared_signal(ctx: Context) -> Check:
    """Identical or overlapping windows of different units in different folds."""
    name = "duplicate windows"
    content = ctx.content
    unit_folds = ctx.folds.set_index("id")["fold"].loc[content.units].to_numpy()
    pairs = content.pairs
    across = unit_folds[pairs[:, 0]] != unit_folds[pairs[:, 1]]
    identical = int((content.identical & across).sum())
    overlapping = int((~content.identical & across).sum())
    within = int((~across).sum())
    block_s = content.block / ctx.sample.sfreq
    measured = (
        f"{len(content.units)} units hashed in {block_s:g} s blocks: {identical} identical and "
        f"{overlapping} overlapping pairs across folds, {within} within a fold"
    )
    if identical or overlapping:
        leaked = pd.unique(content.units[pairs[across].ravel()]).tolist()
        return Check(
            name,
            FAIL,
            f"{measured}; units: {_first(leaked)}",
            "the validation "
            "fold has seen this signal in training: remove the copies, or give copies "
            "one group so the folds keep them together",
        )
    return Check(name, PASS, measured)


def check_fold_labels(ctx: Context) -> Check:
    """Each fold's class mix against the whole dataset's (stratification)."""
    name = "labels per fold"
    targets = ctx.data.unit_targets(ctx.rows)
    fold = ctx.rows.groupby(ctx.data.id_column)["fold"].first().loc[targets.index]
    overall = targets.mean(axis=0)
    per_fold = targets.groupby(fold.to_numpy()).mean()
    deviation = (per_fold - overall).abs()
    worst_fold, worst_class = np.unravel_index(np.argmax(deviation.to_numpy()), deviation.shape)
    largest = float(deviation.to_numpy().max())
    sizes = fold.value_counts()
    measured = (
        f"{sizes.min()}-{sizes.max()} units per fold; largest class-share deviation "
        f"{largest:.3f} (fold {per_fold.index[worst_fold]}, {deviation.columns[worst_class]})"
    )
    if largest > FOLD_SHARE_DEVIATION:
        return Check(
            name,
            WARN,
            measured,
            "folds differ in class mix: the per-fold scores "
            "vary for that reason; more groups or fewer folds even them out",
        )
    return Check(name, PASS, measured)
