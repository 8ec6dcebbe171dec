"""Training a run: each fold of one backbone, two stages, the best epoch kept by validation.

:func:`train_folds` opens the experiment once (data, folds, inputs: :mod:`.setup`) and trains
the folds asked for; :func:`train_fold` is one of them. A fold's fit loop is :func:`_fit`, and
everything else is a function it calls: devices (:mod:`.devices`), the classical baselines
(:mod:`.baselines`), the outputs and the run folder's policy (:mod:`.outputs`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable

import keras

from hmsbrain.atomic import write_json
from hmsbrain.config import Config, save_config
from hmsbrain.core.inputs import RAW_INPUT
from hmsbrain.core.predict import cpu_count, predict_rows
from hmsbrain.models.registry import fit_model, model_spec
from hmsbrain.models.runtime import KerasRuntime
from hmsbrain.runs import RunPaths, run_dir
from hmsbrain.training.baselines import (
    BaselineFit,
    fit_baselines,
    fit_rows,
    raw_chunks,
    sample_weights,
)
from hmsbrain.training.batches import EpochBatches
from hmsbrain.training.devices import (
    barrier,
    configure_precision,
    is_writer,
    join_cluster,
    process_shard,
    strategy_scope,
    synchronise_batch_norm,
)
from hmsbrain.training.outputs import check_run_dir, finish, hint_if_not_learning, save_model
from hmsbrain.training.schedule import StepLR
from hmsbrain.training.setup import (
    Experiment,
    FoldSetup,
    build_network,
    fold_raw_stats,
    open_experiment,
    raw_sample_rate,
    setup_fold,
)


def train_folds(
    cfg: Config, folds: Iterable[int], resume: bool = False, overwrite: bool = False
) -> list[dict]:
    """Train folds ``folds`` of ``cfg`` from one experiment (the data is read once) and
    write their outputs; returns their summaries.

    In a cluster (several processes, :func:`.devices.join_cluster`), process 0 opens the data
    first, making the caches and folds file the others then only read."""
    join_cluster(cfg)
    writer = is_writer(cfg)
    if not writer:
        barrier(cfg, "data opened")
    exp = open_experiment(cfg, writer=writer)
    if writer:
        barrier(cfg, "data opened")
    return [run_fold(exp, fold, resume, overwrite) for fold in folds]


def train_fold(cfg: Config, fold: int, resume: bool = False, overwrite: bool = False) -> dict:
    """Train fold ``fold`` of ``cfg`` and write its outputs; returns the fold summary."""
    return train_folds(cfg, [fold], resume, overwrite)[0]


def run_fold(exp: Experiment, fold: int, resume: bool = False, overwrite: bool = False) -> dict:
    """One fold of ``exp``: its folder, baselines and model, the fit, its outputs. In a
    cluster every process trains and validates; only process 0 writes."""
    cfg = exp.cfg
    keras.utils.set_random_seed(cfg.train.seed)  # the one place seeds are fixed
    exp.check_fold(fold)
    paths = RunPaths(run_dir(cfg, fold))
    writer = is_writer(cfg)
    if writer:
        check_run_dir(paths, cfg, resume, overwrite)
        paths.root.mkdir(parents=True, exist_ok=True)
        save_config(cfg, paths.config)
    # The others read the folder (--resume) only once process 0 has checked or emptied it.
    barrier(cfg, f"fold {fold} folder")
    setup = setup_fold(exp, fold)
    baselines = _fit_baselines(exp, setup) if writer else {}
    policy = configure_precision(cfg.train.mixed_precision)
    state = {"epoch": 0, "best": math.inf, "best_epoch": -1, "history": []}
    if model_spec(cfg.model.backbone).kind == "fitted":  # nothing to train
        _use_fitted(exp, setup, paths, state, writer)
        barrier(cfg, f"fold {fold} trained")
        return finish(exp, setup, paths, state, baselines, writer)
    if resume and paths.state.is_file():
        state = json.loads(paths.state.read_text())
        with strategy_scope(cfg):
            model = keras.saving.load_model(paths.checkpoint)
        print(f"Resuming {paths.root} after epoch {state['epoch']} of {setup.plan.epochs}.")
    else:
        stats = fold_raw_stats(exp, setup)
        with strategy_scope(cfg):
            model = build_network(cfg, exp.data, exp.inputs, stats)
            synchronise_batch_norm(model, cfg)
    _announce(exp, setup, paths, model, policy)
    _fit(exp, setup, paths, model, state, writer)
    barrier(cfg, f"fold {fold} trained")  # the others load the best model once it is written
    summary = finish(exp, setup, paths, state, baselines, writer)
    barrier(cfg, f"fold {fold} written")  # no process starts the next fold, or exits, early
    return summary


def _fit(
    exp: Experiment,
    setup: FoldSetup,
    paths: RunPaths,
    model: keras.Model,
    state: dict,
    writer: bool = True,
) -> None:
    """Train from ``state["epoch"]`` to the end of the plan; after every epoch, validate as the
    OOF and the test are predicted (same TTA, so the epoch kept is the best one for what is
    submitted), keep the best model and checkpoint the loop for ``--resume`` (the ``writer``
    only: every process of a cluster holds the same model and state)."""
    cfg, val, plan = exp.cfg, setup.val, setup.plan
    mirror = exp.data.montage if cfg.train.tta else None
    runtime = KerasRuntime(model, cfg.train.strategy != "none")
    val_index = val.rows.index.to_numpy()
    prior_scores = val.scores(val.prior_oof())
    verbose = 1 if sys.stdout.isatty() else 2
    for epoch in range(state["epoch"], plan.epochs):
        started = time.time()
        batches = EpochBatches(
            setup.stage_data(epoch),
            exp.inputs,
            exp.names,
            cfg.train,
            [cfg.train.seed, setup.fold, epoch],
            exp.data.montage,
            cfg.train.workers or cpu_count(),
            process_shard(cfg),
            raw_rate=raw_sample_rate(cfg),
            epoch=epoch,
        )
        fit = model.fit(
            batches,
            epochs=epoch + 1,
            initial_epoch=epoch,
            verbose=verbose,
            callbacks=[StepLR(plan)],
        )
        probs = predict_rows(runtime, exp.inputs, val_index, cfg.train.val_batch_size, mirror)
        scores = val.scores(val.oof(probs))
        record = {
            "epoch": epoch + 1,
            "stage": plan.stage(epoch),
            "train_loss": float(fit.history["loss"][-1]),
            "val_kl": scores["kl"],
            "val_kl_selected": scores["kl_selected"],
            "lr": float(model.optimizer.learning_rate.numpy()),
            "seconds": round(time.time() - started, 1),
        }
        if exp.data.hard:
            record["val_balanced_accuracy"] = scores["balanced_accuracy"]
        state["history"].append(record)
        # select_on=last keeps every epoch in turn, so the plan's last one is the model.
        if val.selection_loss(scores) < state["best"] or setup.select_on == "last":
            state["best"], state["best_epoch"] = val.selection_loss(scores), epoch + 1
            if writer:
                save_model(model, paths.best)
        _print_epoch(record, scores, plan.epochs, state["best_epoch"], exp.data.hard)
        state["epoch"] = epoch + 1
        if writer:
            save_model(model, paths.checkpoint)
            write_json(paths.state, state)
        if epoch + 1 == plan.stage1_epochs:
            hint_if_not_learning(state["history"], prior_scores, val)


def _print_epoch(record: dict, scores: dict, epochs: int, best_epoch: int, hard: bool) -> None:
    extra = f"  bal_acc {scores['balanced_accuracy']:.3f}" if hard else ""
    print(
        f"epoch {record['epoch']}/{epochs} stage {record['stage']}  "
        f"train_loss {record['train_loss']:.4f}  val_kl {scores['kl']:.4f}{extra}  "
        f"(best @ {best_epoch})  lr {record['lr']:.2e}  {record['seconds']:.0f}s",
        flush=True,
    )


def _announce(
    exp: Experiment, setup: FoldSetup, paths: RunPaths, model: keras.Model, policy: str
) -> None:
    cfg, val = exp.cfg, setup.val
    pick = "the plan's last epoch is kept"
    if setup.select_on != "last":
        where = "the validation fold" if setup.select_on == "outer" else "an inner split"
        pick = (
            f"{int(val.selected.sum())} units of {where} (>= {cfg.train.select_min_votes} "
            f"votes) pick the epoch by {val.metric}"
        )
    print(
        f"{paths.root}: {model.count_params():,} parameters, inputs {list(exp.names)}, {policy}; "
        f"training rows: {setup.training['rule']}; {len(setup.score.targets)} validation units; "
        f"{pick}; TTA {'on' if cfg.train.tta else 'off'}."
    )


def _fit_baselines(exp: Experiment, setup: FoldSetup) -> dict[str, BaselineFit]:
    if not exp.cfg.train.baseline:  # no raw input need be there
        return {}
    raw_len = exp.inputs.input_shape(RAW_INPUT)[0]
    return fit_baselines(
        exp.cfg, exp.data, exp.inputs, setup.train_rows, raw_len, raw_sample_rate(exp.cfg)
    )


def _use_fitted(
    exp: Experiment, setup: FoldSetup, paths: RunPaths, state: dict, writer: bool = True
) -> None:
    """A fitted model (``--backbone bandpower``), fitted on the training folds' rows and
    written as a Keras graph, is the run's model and its one "epoch"."""
    cfg, started = exp.cfg, time.time()
    index = fit_rows(cfg, setup.train_rows)
    targets = exp.data.row_targets(setup.train_rows.loc[index])
    model = fit_model(
        cfg.model,
        raw_chunks(exp.inputs, index),
        targets,
        exp.inputs.input_shape(RAW_INPUT),
        raw_sample_rate(cfg),
        sample_weights(cfg, targets),
        setup.train_rows.loc[index, "group"].to_numpy(),
    )
    mirror = exp.data.montage if cfg.train.tta else None
    val_index = setup.score.rows.index.to_numpy()
    probs = predict_rows(
        KerasRuntime(model), exp.inputs, val_index, cfg.train.val_batch_size, mirror
    )
    scores = setup.score.scores(setup.score.oof(probs))
    state["history"] = [
        {
            "epoch": 1,
            "stage": 1,
            "train_loss": float("nan"),
            "val_kl": scores["kl"],
            "val_kl_selected": scores["kl_selected"],
            "lr": 0.0,
            "seconds": round(time.time() - started, 1),
        }
    ]
    state["epoch"], state["best_epoch"] = 1, 1
    if writer:
        save_model(model, paths.best)
