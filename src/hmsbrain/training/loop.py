"""One training run: a fold of one backbone, two stages, the best epoch kept by validation.

Outputs, in ``<output_dir>/<run_name>/fold<k>/``: ``model.keras``, ``config.yaml``,
``history.csv``, ``curves.png``, ``oof.parquet``, ``summary.json`` and, with ``train.baseline``,
``baseline_oof.parquet`` (the band-power baseline in the same fold); ``checkpoint/`` holds the
last epoch (model, optimizer and loop state) for ``--resume``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from hmsbrain.atomic import atomic_path, write_json
from hmsbrain.config import Config, ConfigError, config_differences, load_config, save_config
from hmsbrain.data.cache import Inputs, open_inputs
from hmsbrain.data.dataset import Dataset
from hmsbrain.data.sources import demo_name, open_dataset
from hmsbrain.inference.predict import predict_rows
from hmsbrain.inference.predictions import write_predictions
from hmsbrain.inference.runtimes import KerasRuntime, cpu_count
from hmsbrain.models.bandpower import BandpowerFit, Periodogram, bandpower_model, fit_features
from hmsbrain.models.inputs import (
    KAGGLE_INPUT,
    MONTAGE_INPUT,
    RAW_INPUT,
    cached_inputs,
    model_inputs,
)
from hmsbrain.models.registry import BANDPOWER, GraphImage, all_layers, build_model
from hmsbrain.runs import RunPaths, run_dir
from hmsbrain.training.batches import EpochBatches, StageData, drop_remainder
from hmsbrain.training.folds import attach_folds, load_or_make_folds
from hmsbrain.training.losses import kl_divergence_loss
from hmsbrain.training.metrics import classification_metrics
from hmsbrain.training.schedule import Plan, StepLR
from hmsbrain.training.truth import truth_path, write_truth_of
from hmsbrain.training.validation import Validation, select_metric

log = logging.getLogger(__name__)

BASELINE_MAX_ROWS = 20_000  # rows the band-power baseline is fitted on (enough for 7 x 20 terms)
STATS_CHUNK = 512  # rows read at a time for the raw standardisation statistics


class RunExistsError(RuntimeError):
    """A run folder that already holds work; never overwritten silently."""


class RunConfigError(RuntimeError):
    """``--resume`` with a recipe that differs from the one the run was started with."""


def _has_gpu() -> bool:
    """Whether the Keras backend sees a GPU (TensorFlow, or JAX for data_parallel)."""
    if keras.config.backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    import tensorflow as tf  # only for device discovery

    return bool(tf.config.list_physical_devices("GPU"))


def _configure_precision(mode: str) -> str:
    use = mode == "on" or (mode == "auto" and _has_gpu())
    policy = "mixed_float16" if use else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def strategy_scope(cfg: Config) -> contextlib.AbstractContextManager:
    """Where the model is built for ``train.strategy``: a MirroredStrategy scope (one host),
    after setting Keras' DataParallel distribution (JAX, one or several hosts), or nothing.

    Several hosts (data_parallel) find each other through Keras' environment variables
    (KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES, _PROCESS_ID), read by
    ``keras.distribution.initialize``; each process then feeds its share of every batch."""
    if cfg.train.strategy == "none":
        return contextlib.nullcontext()
    if cfg.train.strategy == "mirrored":
        if keras.config.backend() != "tensorflow":
            raise ConfigError("train.strategy=mirrored needs the TensorFlow backend")
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(cfg.train.devices or None)
        print(
            f"train.strategy=mirrored: {strategy.num_replicas_in_sync} replicas "
            f"({', '.join(strategy.extended.worker_devices)})"
        )
        return strategy.scope()
    if cfg.train.strategy == "data_parallel":
        if keras.config.backend() != "jax":
            raise ConfigError(
                "train.strategy=data_parallel needs the JAX backend: run with KERAS_BACKEND=jax "
                "(TensorFlow's multi-worker strategy is broken with Keras 3, keras issue 20585)"
            )
        if os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") != "1":
            keras.distribution.initialize()
        devices = cfg.train.devices or keras.distribution.list_devices()
        if cfg.train.batch_size % len(devices):
            raise ConfigError(
                f"train.batch_size={cfg.train.batch_size} must be a multiple of the "
                f"{len(devices)} devices of train.strategy=data_parallel (each gets an equal share)"
            )
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        print(
            f"train.strategy=data_parallel: {len(devices)} devices ({', '.join(devices)}), "
            f"{os.environ.get('KERAS_DISTRIBUTION_NUM_PROCESSES', '1')} process(es)"
        )
        return contextlib.nullcontext()
    raise ConfigError(
        f"train.strategy={cfg.train.strategy!r} is not one of none, mirrored, data_parallel"
    )


def _process_shard(cfg: Config) -> tuple[int, int]:
    """(this process, processes) of a multi-host data_parallel run; (0, 1) otherwise."""
    if cfg.train.strategy != "data_parallel":
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def _synchronise_batch_norm(model: keras.Model, cfg: Config) -> None:
    """With MirroredStrategy's replicas, batch statistics over the global batch, not each
    replica's share: the model then trains as on one device with the same batch. JAX's
    DataParallel needs nothing (and refuses the flag): it computes on the global batch as one
    sharded array, so its batch statistics are global already."""
    if cfg.train.strategy == "mirrored":
        for layer in all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True


def _save_model(model: keras.Model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp)


def _loss(cfg: Config, data: Dataset) -> keras.losses.Loss | object:
    """KL on the target distribution for soft labels, cross-entropy for hard ones (the same
    quantity for one-hot targets, but with label smoothing)."""
    kind = cfg.train.loss
    if kind == "auto":
        kind = "ce" if data.hard else "kl"
    if kind == "kl":
        if cfg.train.label_smoothing:
            raise ConfigError("train.label_smoothing needs train.loss=ce (hard labels)")
        return kl_divergence_loss
    if kind == "ce":
        return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing)
    raise ConfigError(f"train.loss={cfg.train.loss!r} is not one of ['auto', 'kl', 'ce']")


def _check_mirror(cfg: Config, data: Dataset) -> None:
    """The hemisphere swap needs to know which channel mirrors which; refuse it otherwise."""
    if (cfg.train.tta or cfg.train.swap_prob > 0) and data.montage.mirror is None:
        raise ConfigError(
            f"train.tta / train.swap_prob need a left-right mirror of the channels, and the "
            f"{data.montage.kind} montage of {list(data.montage.names)[:6]}... has none (10-20 "
            "names with left/right pairs); set train.tta=false train.swap_prob=0"
        )


def raw_statistics(cache: Inputs, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of the raw input over ``rows`` (the training folds)."""
    total, squares, count = 0.0, 0.0, 0
    for start in range(0, len(rows), STATS_CHUNK):
        raw = cache.batch(rows[start : start + STATS_CHUNK])[RAW_INPUT].astype(np.float64)
        total = total + raw.sum(axis=(0, 1))
        squares = squares + (raw**2).sum(axis=(0, 1))
        count += raw.shape[0] * raw.shape[1]
    mean = total / count
    var = np.maximum(squares / count - mean**2, 1e-12)
    return mean.astype(np.float32), var.astype(np.float32)


def train_fold(cfg: Config, fold: int, resume: bool = False, overwrite: bool = False) -> dict:
    """Train fold ``fold`` of ``cfg`` and write its outputs; returns the run summary."""
    keras.utils.set_random_seed(cfg.train.seed)  # the one place seeds are fixed
    data = open_dataset(cfg, "train")
    if demo_name(cfg.data.data_dir) is not None:
        print(f"Training on the embedded demo dataset {data.root}; pass --data-dir for your data.")
    # One file per dataset, K and seed: a different split is a different file, never an overwrite.
    k, seed = cfg.folds.n_folds, cfg.folds.seed
    folds_path = Path(cfg.data.cache_dir) / f"folds-{_dataset_tag(data.root)}-k{k}-s{seed}.csv"
    folds = load_or_make_folds(data.fold_units(), folds_path, k, seed, data.group_kind)
    # Issue 17: the unit targets beside the folds, so ensembles and reports need no data folder.
    write_truth_of(data, truth_path(cfg.data.cache_dir, _dataset_tag(data.root)))
    if not 0 <= fold < k:
        raise ConfigError(f"--fold {fold} is outside 0..{k - 1}")
    rows = attach_folds(data.rows, folds, data.id_column)
    paths = RunPaths(run_dir(cfg, fold))
    _check_run_dir(paths, cfg, resume, overwrite)
    _check_mirror(cfg, data)
    metric = select_metric(cfg.train.select_metric, data.hard)
    loss = _loss(cfg, data)
    paths.root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, paths.config)

    names = model_inputs(cfg.model, cfg.preprocess)
    cache = open_inputs(data, cfg, cached_inputs(cfg))
    train_rows, val_rows = rows[rows["fold"] != fold], rows[rows["fold"] == fold]
    balance = {"none": False, "balanced": True}.get(cfg.train.class_weights)
    if balance is None:
        raise ConfigError(f"train.class_weights={cfg.train.class_weights!r}: none or balanced")
    stage1 = StageData.from_rows(train_rows, data, balance)
    min_votes = cfg.train.stage2_min_votes
    stage2_rows = train_rows[data.row_votes(train_rows) >= min_votes]
    stage2 = StageData.from_rows(stage2_rows, data, balance) if len(stage2_rows) else None
    per_unit, drop = cfg.train.samples_per_eeg, drop_remainder(cfg.train)
    steps1 = stage1.steps(cfg.train.batch_size, per_unit, drop)
    steps2 = stage2.steps(cfg.train.batch_size, per_unit, drop) if stage2 is not None else 0
    if steps1 == 0:
        raise ConfigError(
            f"fold {fold}: {len(stage1.unit_ids)} training units make no full batch of "
            f"train.batch_size={cfg.train.batch_size} (train.strategy=data_parallel drops "
            "partial batches); lower the batch size"
        )
    if stage2 is not None and steps2 == 0:
        print(
            f"Stage 2 skipped: its {len(stage2.unit_ids)} units make no full batch of "
            f"{cfg.train.batch_size} (train.strategy=data_parallel drops partial batches)."
        )
        stage2 = None
    elif stage2 is None and cfg.train.stage2_epochs:
        print(f"Stage 2 skipped: no training row has at least {min_votes} votes.")
    stage2_epochs = cfg.train.stage2_epochs if stage2 is not None else 0
    plan = Plan(cfg.train.stage1_epochs, stage2_epochs, steps1, steps2, cfg.train)
    prior = stage1.targets.mean(axis=0)
    val = Validation.of(val_rows, data, prior, cfg.train.select_min_votes, fold, metric)
    sample_rate = cfg.preprocess.sample_rate / cfg.preprocess.raw_downsample
    train_index = train_rows.index.to_numpy()
    baseline = _baseline(cfg, data, cache, train_rows, sample_rate) if cfg.train.baseline else None

    policy = _configure_precision(cfg.train.mixed_precision)
    state = {"epoch": 0, "best": math.inf, "best_epoch": -1, "history": []}
    if cfg.model.backbone == BANDPOWER:
        fit = (
            baseline
            if baseline is not None
            else _baseline(cfg, data, cache, train_rows, sample_rate)
        )
        return _fit_bandpower_run(cfg, fold, paths, state, cache, val, fit, baseline)
    if resume and paths.state.is_file():
        state = json.loads(paths.state.read_text())
        with strategy_scope(cfg):
            model = keras.saving.load_model(paths.checkpoint)
        print(f"Resuming {paths.root} after epoch {state['epoch']} of {plan.epochs}.")
    else:
        sample = cache.batch(np.array([0]))
        shapes = {name: value.shape[1:] for name, value in sample.items()}
        stats = (
            raw_statistics(cache, train_index)
            if cfg.preprocess.standardize and RAW_INPUT in names
            else None
        )
        graph = None
        if MONTAGE_INPUT in shapes:  # preprocess.spectrogram=graph: the model builds its image
            graph = GraphImage(
                cfg.preprocess, data.montage.groups, shapes[MONTAGE_INPUT], shapes.get(KAGGLE_INPUT)
            )
        with strategy_scope(cfg):
            model = build_model(
                cfg.model,
                shapes.get("image"),
                shapes.get("raw"),
                len(data.classes),
                sample_rate,
                stats,
                graph,
            )
            _synchronise_batch_norm(model, cfg)
            model.compile(
                optimizer=keras.optimizers.AdamW(
                    learning_rate=cfg.train.lr, weight_decay=cfg.train.weight_decay
                ),
                loss=loss,
            )
    n_sel = int(val.selected.sum())
    print(
        f"{paths.root}: {model.count_params():,} parameters, inputs {list(names)}, {policy}; "
        f"{len(stage1.unit_ids)} train units (stage 2: {len(stage2.unit_ids) if stage2 else 0}), "
        f"{len(val.targets)} validation units ({n_sel} with >= {cfg.train.select_min_votes} "
        f"votes pick the epoch by {metric}); TTA {'on' if cfg.train.tta else 'off'}."
    )
    verbose = 1 if sys.stdout.isatty() else 2
    val_index = val_rows.index.to_numpy()
    mirror = data.montage if cfg.train.tta else None
    prior_scores = val.scores(val.prior_oof())
    for epoch in range(state["epoch"], plan.epochs):
        started = time.time()
        stage_data = stage1 if plan.stage(epoch) == 1 else stage2
        batches = EpochBatches(
            stage_data,
            cache,
            names,
            cfg.train,
            [cfg.train.seed, fold, epoch],
            data.montage,
            cfg.train.workers or cpu_count(),
            _process_shard(cfg),
        )
        fit = model.fit(
            batches,
            epochs=epoch + 1,
            initial_epoch=epoch,
            verbose=verbose,
            callbacks=[StepLR(plan)],
        )
        # Validated exactly as the OOF and the test are predicted (same TTA), so the epoch kept
        # is the best one for what is submitted.
        probs = predict_rows(
            KerasRuntime(model, cfg.train.strategy != "none"),
            cache,
            val_index,
            cfg.train.val_batch_size,
            mirror,
        )
        scores = val.scores(val.oof(probs))
        chosen = val.selection_loss(scores)
        lr = float(model.optimizer.learning_rate.numpy())
        record = {
            "epoch": epoch + 1,
            "stage": plan.stage(epoch),
            "train_loss": float(fit.history["loss"][-1]),
            "val_kl": scores["kl"],
            "val_kl_selected": scores["kl_selected"],
            "lr": lr,
            "seconds": round(time.time() - started, 1),
        }
        if data.hard:
            record["val_balanced_accuracy"] = scores["balanced_accuracy"]
        state["history"].append(record)
        if chosen < state["best"]:
            state["best"], state["best_epoch"] = chosen, epoch + 1
            _save_model(model, paths.best)
        extra = f"  bal_acc {scores['balanced_accuracy']:.3f}" if data.hard else ""
        print(
            f"epoch {epoch + 1}/{plan.epochs} stage {record['stage']}  "
            f"train_loss {record['train_loss']:.4f}  val_kl {scores['kl']:.4f}{extra}  "
            f"(best @ {state['best_epoch']})  lr {lr:.2e}  {record['seconds']:.0f}s",
            flush=True,
        )
        _save_model(model, paths.checkpoint)
        state["epoch"] = epoch + 1
        write_json(paths.state, state)
        if epoch + 1 == plan.stage1_epochs:
            _hint_if_not_learning(state["history"], prior_scores, data.hard, val.metric)

    return _finish(cfg, fold, paths, state, cache, val, baseline)


def _hint_if_not_learning(
    history: list[dict], prior: dict[str, float], hard: bool, metric: str
) -> None:
    """After stage 1, a model no better than predicting the class prior has not learnt: say
    where to look before more GPU time is spent."""
    best_kl = min(h["val_kl_selected"] for h in history)
    if metric == "balanced_accuracy" and hard:
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


def _dataset_tag(root: Path) -> str:
    return hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]


def _check_run_dir(paths: RunPaths, cfg: Config, resume: bool, overwrite: bool) -> None:
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


def _baseline(
    cfg: Config,
    data: Dataset,
    cache: Inputs,
    train_rows: pd.DataFrame,
    sample_rate: float,
) -> BandpowerFit:
    """The band-power baseline fitted on the training folds' rows (a seeded sample of at most
    :data:`BASELINE_MAX_ROWS`; features are read in chunks, so memory stays small)."""
    index = train_rows.index.to_numpy()
    if len(index) > BASELINE_MAX_ROWS:
        index = np.sort(np.random.default_rng(cfg.train.seed).choice(index, BASELINE_MAX_ROWS))
    raw_len = cache.input_shape(RAW_INPUT)[0]
    period = Periodogram.of(raw_len, sample_rate, cfg.model.bandpower_bands)
    features = np.concatenate(
        [
            period.features(cache.batch(index[s : s + STATS_CHUNK])[RAW_INPUT])
            for s in range(0, len(index), STATS_CHUNK)
        ]
    )
    targets = data.row_targets(train_rows.loc[index])
    weights = None
    if cfg.train.class_weights == "balanced":
        counts = np.bincount(targets.argmax(axis=1), minlength=targets.shape[1])
        weights = (len(targets) / np.maximum(counts, 1))[targets.argmax(axis=1)]
    groups = train_rows.loc[index, "group"].to_numpy()
    return fit_features(features, targets, period, cfg.model.bandpower_cs, weights, groups)


def _predict_baseline(fit: BandpowerFit, cache: Inputs, rows: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            fit.predict(cache.batch(rows[s : s + STATS_CHUNK])[RAW_INPUT])
            for s in range(0, len(rows), STATS_CHUNK)
        ]
    )


def _fit_bandpower_run(
    cfg: Config,
    fold: int,
    paths: RunPaths,
    state: dict,
    cache: Inputs,
    val: Validation,
    fit: BandpowerFit,
    baseline: BandpowerFit | None,
) -> dict:
    """``--backbone bandpower``: the fitted baseline as the run's model (nothing to train)."""
    raw_shape = cache.input_shape(RAW_INPUT)
    model = bandpower_model(fit, raw_shape, name="hms_bandpower")
    started = time.time()
    mirror = val.data.montage if cfg.train.tta else None
    probs = predict_rows(
        KerasRuntime(model), cache, val.rows.index.to_numpy(), cfg.train.val_batch_size, mirror
    )
    scores = val.scores(val.oof(probs))
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
    _save_model(model, paths.best)
    return _finish(cfg, fold, paths, state, cache, val, baseline)


def _scores_of(val: Validation, oof: pd.DataFrame) -> dict[str, object]:
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


def _finish(
    cfg: Config,
    fold: int,
    paths: RunPaths,
    state: dict,
    cache: Inputs,
    val: Validation,
    baseline: BandpowerFit | None,
) -> dict:
    """Best model -> model.keras (without optimizer), OOF, baseline OOF, history, curves and
    summary."""
    data = val.data
    best = keras.saving.load_model(paths.best)
    # A plain functional copy drops the optimizer and loss, so model.keras needs no project code.
    plain = keras.Model(best.inputs, best.outputs, name=best.name)
    _save_model(plain, paths.model)
    mirror = data.montage if cfg.train.tta else None
    val_index = val.rows.index.to_numpy()
    oof = val.oof(
        predict_rows(KerasRuntime(best), cache, val_index, cfg.train.val_batch_size, mirror)
    )
    oof.insert(1, "fold", fold)
    meta = {
        "kind": "oof",
        "tta": cfg.train.tta,
        "select_min_votes": cfg.train.select_min_votes,
        "fold": fold,
        "best_epoch": state["best_epoch"],
    }
    write_predictions(oof, paths.oof, meta, source=data.source)
    scores = _scores_of(val, oof)
    prior = val.scores(val.prior_oof())
    summary: dict[str, object] = {
        "fold": fold,
        "cv_kl": scores["kl"],
        "class_prior_kl": prior["kl"],
        "ratio": scores["kl"] / prior["kl"],
        "select_min_votes": cfg.train.select_min_votes,
        "select_metric": val.metric,
        "cv_kl_selected": scores["kl_selected"],
        "class_prior_kl_selected": prior["kl_selected"],
        "n_selected": int(val.selected.sum()),
        "class_prior": val.prior.tolist(),
        "classes": list(data.classes),
        "hard": data.hard,
        "tta": cfg.train.tta,
        "window_seconds": data.epoch_seconds,
        "best_epoch": state["best_epoch"],
        "n_val_eegs": len(oof),
        "run_dir": str(paths.root),
        "truth": str(truth_path(cfg.data.cache_dir, _dataset_tag(data.root))),  # issue 17
        "metrics": {k: v for k, v in scores.items() if k not in ("kl", "kl_selected")},
    }
    if baseline is not None:
        base = val.oof(_predict_baseline(baseline, cache, val_index))
        base.insert(1, "fold", fold)
        write_predictions(
            base, paths.baseline_oof, {**meta, "kind": "baseline_oof"}, source=data.source
        )
        summary["baseline"] = {**_scores_of(val, base), "c": baseline.c}
    history = pd.DataFrame(state["history"])
    with atomic_path(paths.history) as tmp:
        history.to_csv(tmp, index=False)
    _plot(history, paths.curves, data.hard)
    write_json(paths.summary, summary)
    print(
        f"fold {fold} CV (official KL{', log loss' if data.hard else ''}, {len(oof)} units): "
        f"{scores['kl']:.4f}   class prior on the same units: {prior['kl']:.4f}   ratio "
        f"{scores['kl'] / prior['kl']:.2f}"
    )
    if data.hard:
        line = f"fold {fold} balanced accuracy {scores['balanced_accuracy']:.3f}"
        if baseline is not None:
            line += f" (band-power baseline {summary['baseline']['balanced_accuracy']:.3f})"
        print(f"{line}, chance {scores['chance_balanced_accuracy']:.3f}")
    elif baseline is not None:
        print(f"fold {fold} band-power baseline KL {summary['baseline']['kl']:.4f}")
    if cfg.train.select_min_votes > 0:
        print(
            f"fold {fold} CV on the {summary['n_selected']} units with >= "
            f"{cfg.train.select_min_votes} votes: {scores['kl_selected']:.4f} (class prior "
            f"{prior['kl_selected']:.4f})"
        )
    return summary


def _plot(history: pd.DataFrame, path: Path, hard: bool) -> None:
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
