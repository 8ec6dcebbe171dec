"""Checks of the labels: how the classes are balanced, and the scores a model must beat (the
training prior predicted for every validation unit)."""

from __future__ import annotations

import warnings

import numpy as np

from hmsbrain.core.metrics import classification_metrics
from hmsbrain.diagnose.context import Context
from hmsbrain.diagnose.report import FAIL, PASS, WARN, Check
from hmsbrain.training.validation import Validation

IMBALANCE_RATIO = 10.0  # largest over smallest class beyond which the rare classes starve


def check_class_balance(ctx: Context) -> Check:
    """Units per class (their majority class) and the chance level of balanced accuracy."""
    name = "class balance"
    classes = ctx.data.classes
    labels = ctx.data.fold_units()["label"].to_numpy()
    counts = np.bincount(labels, minlength=len(classes))
    shares = ", ".join(
        f"{c} {n} ({n / counts.sum():.0%})" for c, n in zip(classes, counts, strict=True)
    )
    measured = (
        f"{counts.sum()} units: {shares}; chance balanced accuracy 1/{len(classes)} = "
        f"{1 / len(classes):.3f}"
    )
    missing = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if missing:
        return Check(
            name,
            FAIL,
            f"{measured}; no unit is mostly {missing}",
            "add examples of those classes or drop them from the classes",
        )
    ratio = counts.max() / counts.min()
    if ratio > IMBALANCE_RATIO and ctx.cfg.train.class_weights != "balanced":
        return Check(
            name,
            WARN,
            f"{measured}; largest/smallest class {ratio:.0f}x",
            "set train.class_weights=balanced so the rare classes count",
        )
    return Check(name, PASS, measured)


def check_prior_score(ctx: Context) -> Check:
    """The training prior predicted for fold 0's validation units: the numbers to beat."""
    name = "class-prior score"
    prior = ctx.stage.targets.mean(axis=0)
    val = Validation.of(ctx.val_rows, ctx.data, prior, 0, ctx.fold)
    oof = val.prior_oof()
    with warnings.catch_warnings():  # a class absent from the fold: reported below
        warnings.simplefilter("ignore", UserWarning)
        scores = val.scores(oof)
        metrics = classification_metrics(
            val.targets.to_numpy(), oof[list(ctx.data.classes)].to_numpy(), ctx.data.classes
        )
    units = len(val.targets)
    if not ctx.data.hard:
        return Check(
            name,
            PASS,
            f"predicting the training prior scores KL {scores['kl']:.4f} "
            f"on fold {ctx.fold}'s {units} validation units",
            "a model must get below this KL to have learnt anything",
        )
    targets = val.targets.to_numpy()
    measured = (
        f"the training prior on fold {ctx.fold}'s {units} validation units: accuracy "
        f"{metrics['accuracy']:.3f}, balanced accuracy {metrics['balanced_accuracy']:.3f}, "
        f"log loss {scores['kl']:.4f}"
    )
    absent = [c for c, n in zip(ctx.data.classes, targets.sum(axis=0), strict=True) if n == 0]
    if absent:
        return Check(
            name,
            WARN,
            f"{measured}; classes {absent} have no validation unit",
            "balanced accuracy of this fold ignores them; use fewer folds",
        )
    return Check(
        name,
        PASS,
        measured,
        "a model must beat these (balanced accuracy above "
        f"{1 / len(ctx.data.classes):.3f}, log loss below {scores['kl']:.4f})",
    )
