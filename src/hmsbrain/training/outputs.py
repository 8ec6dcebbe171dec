"""What a fold leaves in its folder, and the folder's policy: a run is never overwritten or
resumed with another recipe by accident.

``<output_dir>/<run_name>/fold<k>/``: ``model.keras``, ``config.yaml``, ``history.csv``,
``curves.png``, ``oof.parquet``, ``summary.json`` and, per baseline of ``train.baseline``,
``baseline_<name>_oof.parquet`` (the baseline in the same fold); ``checkpoint/`` holds the last
epoch (model, optimizer and loop state) for ``--resume``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from hmsbrain.atomic import atomic_path, write_json
from hmsbrain.config import Config, config_differences, load_config
from hmsbrain.core.metrics import classification_metrics
from hmsbrain.core.parity import parity_rows, save_parity_inputs
from hmsbrain.core.predict import predict_rows
from hmsbrain.core.predictions import write_predictions
from hmsbrain.models.runtime import KerasRuntime
from hmsbrain.runs import PARITY_INPUTS, RunPaths, baseline_figures
from hmsbrain.training.baselines import BaselineFit, predict_baseline
from hmsbrain.training.setup import Experiment, FoldSetup
from hmsbrain.training.validation import Validation


class RunExistsError(RuntimeError):
    """A run folder that already holds work; never overwritten silently."""


class RunConfigError(RuntimeError):
    """``--resume`` with a recipe that differs from the one the run was started with."""


def check_run_dir(paths: RunPaths, cfg: Config, resume: bool, overwrite: bool) -> None:
    """``overwrite`` empties the fold's folder; otherwise a folder holding work needs
    ``resume``, and a resumed fold must continue the recipe it was started with."""
    if overwrite:
        shutil.rmtree(paths.root, ignore_errors=True)
        return
    has_work = paths.state.is_file() or paths.model.is_file()
    if has_work and not resume:
        raise RunExistsError(
            f"{paths.root} already holds a run; pass --resume to continue it or --overwrite to "
            "discard it and start again"
        )
    if resume and paths.config.is_file():
        changed = config_differences(load_config(paths.config), cfg)
        if changed:
            raise RunConfigError(
                f"{paths.config}: --resume with a different recipe ({'; '.join(changed)}); a "
                "resumed run must continue the same recipe. Resume without the changes, or "
                "pass --overwrite to discard the run and start again with them"
            )


def save_model(model: keras.Model, path: Path) -> None:
    """Save ``model`` atomically. Process 0 of a cluster saves alone: Keras creates a variable
    while saving (a throwaway optimizer), and under a distribution spanning several processes
    that would wait for every process, so the distribution is lifted for the save (the
    weights, the same on every process, are read from this process's copy)."""
    distribution = keras.distribution.distribution()
    spans_processes = distribution is not None and distribution.num_processes > 1
    if spans_processes:
        keras.distribution.set_distribution(None)
    try:
        with atomic_path(path) as tmp:
            model.save(tmp)
    finally:
        if spans_processes:
            keras.distribution.set_distribution(distribution)


def hint_if_not_learning(history: list[dict], prior: dict[str, float], val: Validation) -> None:
    """After stage 1, a model no better than predicting the class prior has not learnt: say
    where to look before more GPU time is spent."""
    best_kl = min(h["val_kl_selected"] for h in history)
    if val.metric == "balanced_accuracy" and val.data.hard:
        best = max(h.get("val_balanced_accuracy", 0.0) for h in history)
        stuck = best <= prior["balanced_accuracy"] + 0.02
        figure = (
            f"best balanced accuracy {best:.3f} vs the prior's {prior['balanced_accuracy']:.3f}"
        )
    else:
        stuck = best_kl >= prior["kl_selected"]
        figure = f"best validation KL {best_kl:.4f} vs the class prior's {prior['kl_selected']:.4f}"
    if stuck:
        print(
            f"hint: after stage 1 the model is no better than the class prior ({figure}); run "
            "`python src/diagnose.py` with the same --data-dir, --config and overrides to find "
            "out why",
            flush=True,
        )


def scores_of(val: Validation, oof: pd.DataFrame) -> dict[str, object]:
    """Every figure of one set of OOF predictions: KL on all and selected units, and the
    classification metrics for hard labels."""
    data = val.data
    scores: dict[str, object] = dict(val.scores(oof))
    if data.hard:
        target = val.targets.loc[oof[data.id_column]].to_numpy()
        scores.update(
            classification_metrics(target, oof[list(data.classes)].to_numpy(), data.classes)
        )
    return scores


def finish(
    exp: Experiment,
    setup: FoldSetup,
    paths: RunPaths,
    state: dict,
    baselines: dict[str, BaselineFit],
    writer: bool = True,
) -> dict:
    """Best model -> model.keras (without optimizer), OOF, each baseline's OOF, history, curves
    and summary; returns the summary. In a cluster every process takes its share of the OOF
    prediction; only the ``writer`` (process 0) writes, and the others return the summary."""
    # The outer fold, scored once with the model its selection units picked.
    cfg, val, fold = exp.cfg, setup.score, setup.fold
    best = keras.saving.load_model(paths.best)
    mirror = exp.data.montage if cfg.train.tta else None
    val_index = val.rows.index.to_numpy()
    probs = predict_rows(
        KerasRuntime(best), exp.inputs, val_index, cfg.train.val_batch_size, mirror
    )
    if not writer:
        return {
            **fold_summary(exp, setup, paths, state, scores_of(val, val.oof(probs))),
            "baselines": {},
        }
    # A plain functional copy drops the optimizer and loss, so model.keras needs no project code.
    save_model(keras.Model(best.inputs, best.outputs, name=best.name), paths.model)
    meta = {
        "kind": "oof",
        "tta": cfg.train.tta,
        "select_min_votes": cfg.train.select_min_votes,
        "fold": fold,
        "best_epoch": state["best_epoch"],
    }
    oof = write_oof(val, probs, fold, paths.oof, meta)
    # A few of the fold's own inputs beside the model: export and TensorRT check against them.
    parity = exp.inputs.batch(parity_rows(len(exp.data)))
    save_parity_inputs(paths.root / PARITY_INPUTS, {k: parity[k] for k in exp.names})
    summary = fold_summary(exp, setup, paths, state, scores_of(val, oof))
    figures: dict[str, dict[str, object]] = {}
    for name, fit in baselines.items():
        base = write_oof(
            val,
            predict_baseline(fit, exp.inputs, val_index),
            fold,
            paths.baseline_oof(name),
            {**meta, "kind": "baseline_oof", "baseline": name},
        )
        figures[name] = {**scores_of(val, base), "c": fit.c}
    summary["baselines"] = figures
    history = pd.DataFrame(state["history"])
    with atomic_path(paths.history) as tmp:
        history.to_csv(tmp, index=False)
    plot_curves(history, paths.curves, exp.data.hard)
    write_json(paths.summary, summary)
    _print_result(summary, cfg)
    return summary


def write_oof(
    val: Validation, probs: np.ndarray, fold: int, path: Path, meta: dict
) -> pd.DataFrame:
    """The fold's unit predictions from its validation rows' ``probs``, written as an OOF
    prediction file (the schema of :mod:`hmsbrain.core.predictions`); returns the frame."""
    oof = val.oof(probs)
    oof.insert(1, "fold", fold)
    write_predictions(oof, path, meta, source=val.data.source)
    return oof


def fold_summary(
    exp: Experiment, setup: FoldSetup, paths: RunPaths, state: dict, scores: dict[str, object]
) -> dict[str, object]:
    """The fold's ``summary.json``: its CV beside the class prior's on the same units, and what
    made it (selection, TTA, best epoch)."""
    cfg, val, data = exp.cfg, setup.score, exp.data
    prior = val.scores(val.prior_oof())
    return {
        "fold": setup.fold,
        "cv_kl": scores["kl"],
        "class_prior_kl": prior["kl"],
        "ratio": scores["kl"] / prior["kl"],
        "select_min_votes": cfg.train.select_min_votes,
        "select_metric": val.metric,
        "select_on": setup.select_on,
        "n_select_units": len(setup.val.targets),
        "cv_kl_selected": scores["kl_selected"],
        "class_prior_kl_selected": prior["kl_selected"],
        "n_selected": int(val.selected.sum()),
        "class_prior": val.prior.tolist(),
        "classes": list(data.classes),
        "hard": data.hard,
        "tta": cfg.train.tta,
        "window_seconds": data.epoch_seconds,
        "best_epoch": state["best_epoch"],
        "n_val_units": len(val.targets),
        "training": setup.training,
        "run_dir": str(paths.root),
        "truth": str(exp.truth_path),
        "metrics": {k: v for k, v in scores.items() if k not in ("kl", "kl_selected")},
    }


def _print_result(summary: dict, cfg: Config) -> None:
    """The fold's figures, beside the class prior and the baseline on the same units."""
    fold, hard, metrics = summary["fold"], summary["hard"], summary["metrics"]
    print(
        f"fold {fold} CV (official KL{', log loss' if hard else ''}, {summary['n_val_units']} "
        f"units): {summary['cv_kl']:.4f}   class prior on the same units: "
        f"{summary['class_prior_kl']:.4f}   ratio {summary['ratio']:.2f}"
    )
    print(f"fold {fold} trained on {summary['training']['rule']}")
    baselines = summary["baselines"]
    if hard:
        line = f"fold {fold} balanced accuracy {metrics['balanced_accuracy']:.3f}"
        if baselines:
            line += f" ({', '.join(baseline_figures(baselines, 'balanced_accuracy', '.3f'))})"
        print(f"{line}, chance {metrics['chance_balanced_accuracy']:.3f}")
    elif baselines:
        print(f"fold {fold} KL of the {', '.join(baseline_figures(baselines, 'kl', '.4f'))}")
    if cfg.train.select_min_votes > 0:
        print(
            f"fold {fold} CV on the {summary['n_selected']} units with >= "
            f"{cfg.train.select_min_votes} votes: {summary['cv_kl_selected']:.4f} (class prior "
            f"{summary['class_prior_kl_selected']:.4f})"
        )


def plot_curves(history: pd.DataFrame, path: Path, hard: bool) -> None:
    """``curves.png``: train and validation loss per epoch, with the start of stage 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    loss_name = "log loss" if hard else "KL"
    ax.plot(history["epoch"], history["train_loss"], label=f"train loss ({loss_name}, augmented)")
    ax.plot(history["epoch"], history["val_kl"], label=f"validation {loss_name}")
    stage2 = history.loc[history["stage"] == 2, "epoch"]
    if len(stage2):
        ax.axvline(stage2.iloc[0] - 0.5, color="grey", ls="--", label="stage 2")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")  # early from-scratch epochs can spike far above the rest
    ax.set_ylabel(f"{loss_name} (log scale)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
