"""A classical portfolio member's folds (:mod:`hmsbrain.models.classical`): fitted on the training
folds' whole epochs at the recording's own rate, predicted on the held-out fold, and written as a
network's fold is (``model.joblib`` in place of ``model.keras``; the same ``oof.parquet``,
``summary.json`` and ``config.yaml``), so ensembles and reports read both alike."""

from __future__ import annotations

import time

from hmsbrain.atomic import write_json
from hmsbrain.config import Config, save_config
from hmsbrain.data.dataset import EpochDataset
from hmsbrain.models.classical import ClassicalSettings, fit_classical, save_classical
from hmsbrain.runs import RunPaths
from hmsbrain.training.baselines import sample_weights
from hmsbrain.training.outputs import fold_summary, scores_of, write_oof
from hmsbrain.training.setup import Experiment, setup_fold


def classical_settings(cfg: Config) -> ClassicalSettings:
    """The ``portfolio.*`` settings the classical members' fits read."""
    p = cfg.portfolio
    return ClassicalSettings(
        tuple(p.cs),
        p.xdawn_filters,
        p.gbt_iterations,
        p.gbt_learning_rate,
        p.gbt_leaves,
        p.gbt_min_leaf,
        cfg.train.seed,
    )


def fit_classical_fold(exp: Experiment, name: str, fold: int, paths: RunPaths) -> dict:
    """Member ``name`` on fold ``fold`` of ``exp`` (whole epochs: one row per epoch): fitted on
    the training folds, its OOF, model and summary written to ``paths``; returns the summary."""
    data = exp.data
    assert isinstance(data, EpochDataset)  # the portfolio opens generic epochs only
    started = time.time()
    setup = setup_fold(exp, fold)
    epochs = data.epochs
    train = data.epoch_of_row[setup.train_rows.index.to_numpy()]
    targets = data.row_targets(setup.train_rows)
    model = fit_classical(
        name,
        epochs.signals[train],
        epochs.sfreq,
        epochs.channels,
        targets,
        classical_settings(exp.cfg),
        sample_weights(exp.cfg, targets),
        setup.train_rows["group"].to_numpy(),
    )
    paths.root.mkdir(parents=True, exist_ok=True)
    save_config(exp.cfg, paths.config)
    save_classical(model, paths.classical)
    val = setup.score
    probs = model.predict(epochs.signals[data.epoch_of_row[val.rows.index.to_numpy()]])
    meta = {"kind": "oof", "tta": False, "select_min_votes": 0, "fold": fold, "member": name}
    oof = write_oof(val, probs, fold, paths.oof, meta)
    state = {"best_epoch": 1, "history": []}
    summary = fold_summary(exp, setup, paths, state, scores_of(val, oof))
    summary.update({"baselines": {}, "member": name, "seconds": round(time.time() - started, 1)})
    if model.head.c is not None:
        summary["c"] = model.head.c
    write_json(paths.summary, summary)
    return summary
