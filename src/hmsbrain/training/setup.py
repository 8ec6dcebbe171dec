"""What a run sets up before it trains: the experiment (opened once per run) and each fold's
stages, validation and learning-rate plan; and the network, built the same way for training
and for ``diagnose.py``.

:func:`open_experiment` opens the data, its folds and the model inputs once, however many folds
are then trained (``--fold all`` reads every file once). :func:`setup_fold` cuts one fold out of
it. :func:`build_network` builds and compiles the model a fold trains.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from hmsbrain.config import Config, ConfigError, stage_min_votes
from hmsbrain.core.inputs import KAGGLE_INPUT, MONTAGE_INPUT, RAW_INPUT, cached_inputs, model_inputs
from hmsbrain.core.predict import BatchSource
from hmsbrain.data.cache import Inputs, open_inputs
from hmsbrain.data.dataset import Dataset
from hmsbrain.data.sources import demo_name, open_dataset
from hmsbrain.models.registry import GraphImage, build_model, model_spec
from hmsbrain.training.batches import StageData
from hmsbrain.training.folds import attach_folds, inner_split, load_or_make_folds
from hmsbrain.training.losses import kl_divergence_loss
from hmsbrain.training.pseudo import read_pseudo_oof, relabel
from hmsbrain.training.schedule import Plan
from hmsbrain.training.truth import truth_path, write_truth_of
from hmsbrain.training.validation import Validation, select_metric

STATS_CHUNK = 512  # rows read at a time for the raw standardisation statistics


def training_loss(cfg: Config, data: Dataset) -> keras.losses.Loss | object:
    """KL on the target distribution for soft labels, cross-entropy for hard ones (the same
    quantity for one-hot targets, but with label smoothing)."""
    kind = cfg.train.loss
    if kind == "auto":
        kind = "ce" if data.hard else "kl"
    if kind == "kl":
        if cfg.train.label_smoothing:
            raise ConfigError("train.label_smoothing needs train.loss=ce (hard labels)")
        return kl_divergence_loss
    return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing)


def check_recipe(cfg: Config, data: Dataset) -> None:
    """The recipe errors that depend on the data (ConfigError), raised before anything is
    trained or written: the swap needs a mirror, the loss and the selection metric must fit
    the labels."""
    if (cfg.train.tta or cfg.train.swap_prob > 0) and data.montage.mirror is None:
        raise ConfigError(
            f"train.tta / train.swap_prob need a left-right mirror of the channels, and the "
            f"{data.montage.kind} montage of {list(data.montage.names)[:6]}... has none (10-20 "
            "names with left/right pairs); set train.tta=false train.swap_prob=0"
        )
    if cfg.train.augment and RAW_INPUT not in model_inputs(cfg.model, cfg.preprocess):
        raise ConfigError(
            f"train.augment={cfg.train.augment} transforms the raw input, which "
            f"model.backbone={cfg.model.backbone} does not read; set train.augment=[] or "
            "model.use_wavenet=true"
        )
    training_loss(cfg, data)
    select_metric(cfg.train.select_metric, data.hard)


def folds_file(cfg: Config, data: Dataset) -> Path:
    """The fold table of ``data`` for ``folds.n_folds`` and ``folds.seed``: one file per
    dataset, K and seed, so a different split is a different file, never an overwrite."""
    k, seed = cfg.folds.n_folds, cfg.folds.seed
    return Path(cfg.data.cache_dir) / f"folds-{dataset_tag(data)}-k{k}-s{seed}.csv"


def dataset_tag(data: Dataset) -> str:
    """A short name of the dataset's folder, shared by its folds and truth files."""
    return hashlib.sha1(str(data.root.resolve()).encode()).hexdigest()[:10]


def raw_statistics(inputs: BatchSource, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of the raw input over ``rows`` (the training folds)."""
    total, squares, count = 0.0, 0.0, 0
    for start in range(0, len(rows), STATS_CHUNK):
        raw = inputs.batch(rows[start : start + STATS_CHUNK])[RAW_INPUT].astype(np.float64)
        total = total + raw.sum(axis=(0, 1))
        squares = squares + (raw**2).sum(axis=(0, 1))
        count += raw.shape[0] * raw.shape[1]
    mean = total / count
    var = np.maximum(squares / count - mean**2, 1e-12)
    return mean.astype(np.float32), var.astype(np.float32)


def build_network(
    cfg: Config,
    data: Dataset,
    inputs: BatchSource,
    raw_stats: tuple[np.ndarray, np.ndarray] | None,
    loss: object = None,
) -> keras.Model:
    """The model of ``cfg`` for ``data``'s inputs, compiled with AdamW and ``loss`` (default the
    run's, :func:`training_loss`). Input shapes come from one row of ``inputs``; ``raw_stats``
    standardise the raw input inside the model (None: no standardisation)."""
    shapes = {name: value.shape[1:] for name, value in inputs.batch(np.array([0])).items()}
    graph = None
    if MONTAGE_INPUT in shapes:  # preprocess.spectrogram=graph: the model builds its image
        graph = GraphImage(
            cfg.preprocess, data.montage.groups, shapes[MONTAGE_INPUT], shapes.get(KAGGLE_INPUT)
        )
    model = build_model(
        cfg.model,
        shapes.get("image"),
        shapes.get("raw"),
        len(data.classes),
        raw_sample_rate(cfg),
        raw_stats,
        graph,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )
    model.compile(optimizer=optimizer, loss=loss or training_loss(cfg, data))
    return model


def raw_sample_rate(cfg: Config) -> float:
    """The rate of the raw input: the recipe's rate after the raw branch's decimation."""
    return cfg.preprocess.sample_rate / cfg.preprocess.raw_downsample


@dataclass
class Experiment:
    """Everything the folds of a run share, opened once: the recipe, the data, its folds (the
    rows with their fold), and the model inputs (opened on first use, so a run that stops on
    its run folder's policy never preprocesses anything)."""

    cfg: Config
    data: Dataset
    rows: pd.DataFrame
    folds_path: Path
    truth_path: Path  # every unit's target, votes and group: all an ensemble scores against
    # train.pseudo_from's OOF (index: unit id as text; fold, classes), checked against the folds
    pseudo: pd.DataFrame | None = None

    @functools.cached_property
    def inputs(self) -> Inputs:
        return open_inputs(self.data, self.cfg, cached_inputs(self.cfg))

    @property
    def names(self) -> tuple[str, ...]:
        """The inputs the model reads, in its order."""
        return model_inputs(self.cfg.model, self.cfg.preprocess)

    def check_fold(self, fold: int) -> None:
        if not 0 <= fold < self.cfg.folds.n_folds:
            raise ConfigError(f"--fold {fold} is outside 0..{self.cfg.folds.n_folds - 1}")


def open_experiment(cfg: Config, data: Dataset | None = None, writer: bool = True) -> Experiment:
    """The data of ``cfg`` (or ``data``, already open: a portfolio reads its files once for
    every member) and its folds (made and saved on first use), checked against the recipe;
    user errors raise (ConfigError, DataError, FoldError). A process that is not the
    ``writer`` of a cluster writes no truth file (process 0 wrote it, and the folds file)."""
    if data is None:
        data = open_dataset(cfg, "train")
    if demo_name(cfg.data.data_dir) is not None:
        print(f"Training on the embedded demo dataset {data.root}; pass --data-dir for your data.")
    check_recipe(cfg, data)
    path = folds_file(cfg, data)
    folds = load_or_make_folds(
        data.fold_units(), path, cfg.folds.n_folds, cfg.folds.seed, data.group_kind
    )
    # The unit targets beside the folds, so ensembles and reports need no data folder.
    truth = truth_path(cfg.data.cache_dir, dataset_tag(data))
    if writer:
        write_truth_of(data, truth)
    pseudo = None
    if cfg.train.pseudo_from:
        pseudo = read_pseudo_oof(cfg.train.pseudo_from, folds, list(data.classes))
    rows = attach_folds(data.rows, folds, data.id_column)
    return Experiment(cfg, data, rows, path, truth, pseudo)


SMALL_BELOW = 2000  # select_on=auto: datasets with fewer units keep the last epoch


@dataclass
class FoldSetup:
    """One fold of an experiment: its stages, the units that pick the epoch (``val``), the
    outer fold the CV scores (``score``; the same units with ``select_on=outer``), the plan."""

    fold: int
    train_rows: pd.DataFrame  # every training fold's rows (baselines, raw statistics)
    stage1: StageData
    stage2: StageData | None
    plan: Plan
    val: Validation
    score: Validation
    select_on: str  # "outer", "inner" or "last"
    training: dict  # which rows trained, by what rule (the summary's "training")

    def stage_data(self, epoch: int) -> StageData:
        stage = self.stage1 if self.plan.stage(epoch) == 1 else self.stage2
        assert stage is not None  # the plan has no stage-2 epochs without stage-2 data
        return stage


def setup_fold(exp: Experiment, fold: int) -> FoldSetup:
    """Fold ``fold``: each stage trains on the training units (less the inner selection units,
    with ``select_on=inner``) whose rows have at least its ``data.min_votes`` votes, grouped
    as ``data.dedup`` says, low-vote targets relabelled by ``train.pseudo_from``; the selection
    units pick the epoch and the outer fold is scored against the votes."""
    data, train = exp.data, exp.cfg.train
    train_rows, val_rows = exp.rows[exp.rows["fold"] != fold], exp.rows[exp.rows["fold"] == fold]
    fit_rows, select_rows, select_on = _selection(exp, train_rows, val_rows)
    votes = data.row_votes(fit_rows)
    min1, min2 = stage_min_votes(exp.cfg.data, 1), stage_min_votes(exp.cfg.data, 2)
    if not (votes >= min1).any():
        raise ConfigError(
            f"data.min_votes: no training row of fold {fold} has at least {min1} votes for "
            "stage 1; lower it"
        )
    stage1 = _stage(exp, fit_rows[votes >= min1])
    stage2_rows = fit_rows[votes >= min2]
    stage2 = _stage(exp, stage2_rows) if len(stage2_rows) else None
    steps1 = stage1.steps(train)
    steps2 = stage2.steps(train) if stage2 else 0
    if steps1 == 0:
        raise ConfigError(
            f"fold {fold}: {len(stage1.unit_ids)} training units make no full batch of "
            f"train.batch_size={train.batch_size} (train.strategy=data_parallel drops "
            "partial batches); lower the batch size"
        )
    if stage2 is not None and steps2 == 0:
        print(
            f"Stage 2 skipped: its {len(stage2.unit_ids)} units make no full batch of "
            f"{train.batch_size} (train.strategy=data_parallel drops partial batches)."
        )
        stage2 = None
    elif stage2 is None and train.stage2_epochs:
        print(f"Stage 2 skipped: no training row has at least {min2} votes (data.min_votes).")
    plan = Plan(train.stage1_epochs, train.stage2_epochs if stage2 else 0, steps1, steps2, train)
    metric = select_metric(train.select_metric, data.hard)
    # The class prior of every training unit's votes, whatever the stages keep or relabel: the
    # baseline each CV is read against stays the same across selection settings.
    prior = data.unit_targets(fit_rows).to_numpy().mean(axis=0)
    score = Validation.of(val_rows, data, prior, train.select_min_votes, fold, metric)
    val = score
    if select_on == "inner":
        val = Validation.of(select_rows, data, prior, train.select_min_votes, fold, metric)
    training = training_rows(exp, stage1, stage2 if plan.stage2_epochs else None)
    return FoldSetup(fold, train_rows, stage1, stage2, plan, val, score, select_on, training)


def _stage(exp: Experiment, rows: pd.DataFrame) -> StageData:
    """The units of ``rows`` as ``data.dedup`` groups them, class weighted as the recipe says,
    the low-vote ones relabelled from ``train.pseudo_from``'s OOF where it is set."""
    cfg = exp.cfg
    stage = StageData.from_rows(
        rows, exp.data, cfg.train.class_weights == "balanced", cfg.data.dedup
    )
    if exp.pseudo is None:
        return stage
    return relabel(stage, exp.pseudo, cfg.train.pseudo_mix, cfg.train.low_votes)


def training_rows(exp: Experiment, stage1: StageData, stage2: StageData | None) -> dict:
    """Which rows each stage trains on and by what rule: counts, thresholds, the unit grouping,
    loss weights and pseudo labels, with a one-line ``rule`` for tables."""
    cfg, data = exp.cfg, exp.data
    per = f"one per {data.id_column}" + (" and vote pattern" if cfg.data.dedup else "")
    stages: dict[str, dict | None] = {}
    texts = []
    for number, stage in ((1, stage1), (2, stage2)):
        if stage is None:
            stages[f"stage{number}"] = None
            continue
        assert stage.votes is not None
        low = int((stage.votes < cfg.train.low_votes).sum())
        figures = {
            "rows": stage.n_rows,
            "units": len(stage.unit_ids),
            "min_votes": stage_min_votes(cfg.data, number),
            "low_vote_units": low,
        }
        stages[f"stage{number}"] = figures
        texts.append(
            f"stage {number}: {figures['rows']} rows with >= {figures['min_votes']} votes, "
            f"{figures['units']} units"
        )
    rule = f"{'; '.join(texts)} ({per})"
    train = cfg.train
    if train.vote_weight > 0 or train.vote_weight_decay < 1:
        rule += (
            f"; loss weight votes^{train.vote_weight:g}, units below {train.low_votes} votes "
            f"x {train.vote_weight_decay:g} per epoch"
        )
    if exp.pseudo is not None:
        rule += (
            f"; units below {train.low_votes} votes relabelled {train.pseudo_mix:g} x votes + "
            f"{1 - train.pseudo_mix:g} x the OOF of {train.pseudo_from}"
        )
    return {
        **stages,
        "dedup": cfg.data.dedup,
        "vote_weight": train.vote_weight,
        "vote_weight_decay": train.vote_weight_decay,
        "low_votes": train.low_votes,
        "pseudo_from": train.pseudo_from,
        "pseudo_mix": train.pseudo_mix if exp.pseudo is not None else None,
        "rule": rule,
    }


def _selection(
    exp: Experiment, train_rows: pd.DataFrame, val_rows: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(rows to fit, rows that pick the epoch, "outer", "inner" or "last") for
    ``train.select_on``.

    Picking the best of many epochs on the fold the CV is then reported on flatters the CV
    where folds are small; an inner split of the training folds, grouped like the outer one,
    picks it instead, and the outer fold is scored once."""
    cfg, data = exp.cfg, exp.data
    n_units = exp.rows[data.id_column].nunique()
    wanted = cfg.train.select_on
    if wanted == "auto":
        wanted = "last" if n_units < SMALL_BELOW else "outer"
    # A fitted model picks no epoch: it learns from every training fold.
    if wanted == "last":  # nothing is picked: every training unit trains
        return train_rows, val_rows, "last"
    if wanted == "outer" or model_spec(cfg.model.backbone).kind == "fitted":
        return train_rows, val_rows, "outer"
    units = data.fold_units()
    units = units[units["id"].isin(set(train_rows[data.id_column]))].reset_index(drop=True)
    held = inner_split(units, cfg.folds.n_folds - 1, cfg.folds.seed)
    if held is None:
        if cfg.train.select_on == "inner":
            raise ConfigError(
                f"train.select_on=inner needs at least 2 {data.group_kind}s in the training "
                "folds to split; set train.select_on=outer"
            )
        print("train.select_on=auto: the training folds hold one group; epoch picked on the fold")
        return train_rows, val_rows, "outer"
    inner = train_rows[data.id_column].isin(set(units.loc[held, "id"]))
    return train_rows[~inner], train_rows[inner], "inner"


def fold_raw_stats(exp: Experiment, setup: FoldSetup) -> tuple[np.ndarray, np.ndarray] | None:
    """The raw-input standardisation statistics of the fold's training rows, where the recipe
    standardises a raw input; None otherwise."""
    if not (exp.cfg.preprocess.standardize and RAW_INPUT in exp.names):
        return None
    return raw_statistics(exp.inputs, setup.train_rows.index.to_numpy())
