"""One training run: a fold of one backbone, two stages, best epoch kept by the official metric.

Outputs, in ``<output_dir>/<run_name>/fold<k>/``: ``model.keras``, ``config.yaml``,
``history.csv``, ``curves.png``, ``oof.parquet`` and ``summary.json``; ``checkpoint/`` holds the
last epoch (model, optimizer and loop state) for ``--resume``.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from hmsbrain.atomic import atomic_path, write_json
from hmsbrain.config import (
    Config,
    ConfigError,
    TrainConfig,
    config_differences,
    load_config,
    save_config,
)
from hmsbrain.data.cache import InputCache, open_cache
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.inputs import model_inputs, resolve_data_dir
from hmsbrain.hms.layout import HMSData
from hmsbrain.inference.predict import average_by_eeg, predict_rows, swap_batch
from hmsbrain.inference.predictions import write_predictions
from hmsbrain.inference.runtimes import KerasRuntime
from hmsbrain.models.registry import build_model
from hmsbrain.training.folds import attach_folds, load_or_make_folds
from hmsbrain.training.losses import kl_divergence_loss
from hmsbrain.training.metrics import eeg_targets, eeg_vote_counts, kl_score


class RunExistsError(RuntimeError):
    """A run folder that already holds work; never overwritten silently."""


class RunConfigError(RuntimeError):
    """``--resume`` with a recipe that differs from the one the run was started with."""


# --- Targets and sampling ------------------------------------------------------------------------


@dataclass
class StageData:
    """The rows one stage trains on: per EEG, its sub-window row indices and its target."""

    eeg_ids: np.ndarray
    row_groups: list[np.ndarray]
    targets: np.ndarray  # (n_eegs, 6)

    @classmethod
    def from_rows(cls, rows: pd.DataFrame) -> StageData:
        groups = rows.groupby("eeg_id", sort=True).indices  # positions in the full row table
        target = eeg_targets(rows)
        ids = target.index.to_numpy()
        return cls(
            ids,
            [rows.index.to_numpy()[groups[i]] for i in ids],
            target.to_numpy(np.float32),
        )

    def steps(self, batch_size: int, samples_per_eeg: int = 1) -> int:
        return math.ceil(len(self.eeg_ids) * samples_per_eeg / batch_size)


def augment(
    inputs: dict[str, np.ndarray], targets: np.ndarray, rng: np.random.Generator, cfg: TrainConfig
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Hemisphere swap, time/frequency masks and mixup on a batch (numpy, in place where safe)."""
    n = len(targets)
    swap = rng.random(n) < cfg.swap_prob
    if swap.any():  # the same mirror as the test-time augmentation
        for key, mirrored in swap_batch({k: v[swap] for k, v in inputs.items()}).items():
            inputs[key][swap] = mirrored
    if "image" in inputs:
        image = inputs["image"]
        h, w = image.shape[1:3]
        band = h // 4  # one chain tile: a frequency mask hits the same band of every chain
        for i in range(n):
            for _ in range(cfg.time_masks):
                width = rng.integers(0, max(1, int(cfg.mask_frac * w)) + 1)
                start = rng.integers(0, w - width + 1)
                image[i, :, start : start + width] = 0.0
            for _ in range(cfg.freq_masks):
                width = rng.integers(0, max(1, int(cfg.mask_frac * band)) + 1)
                start = rng.integers(0, band - width + 1)
                for chain in range(4):
                    image[i, chain * band + start : chain * band + start + width] = 0.0
    if cfg.mixup_alpha > 0 and rng.random() < cfg.mixup_prob:
        lam = rng.beta(cfg.mixup_alpha, cfg.mixup_alpha)
        perm = rng.permutation(n)
        inputs = {k: lam * v + (1 - lam) * v[perm] for k, v in inputs.items()}
        targets = lam * targets + (1 - lam) * targets[perm]
    return inputs, targets


class EpochBatches(keras.utils.PyDataset):
    """One epoch of training batches: every EEG ``samples_per_eeg`` times, each time at a random
    one of its sub-windows.

    Sampling among an EEG's labelled sub-windows is the random time shift within the recording;
    the epoch's generator is seeded by (seed, fold, epoch), so a resumed run sees the same data.
    """

    def __init__(
        self, stage: StageData, cache: InputCache, names: tuple[str, ...], cfg: TrainConfig,
        seed: list[int],
    ) -> None:  # fmt: skip
        super().__init__()
        self.stage, self.cache, self.names, self.cfg = stage, cache, names, cfg
        self.rng = np.random.default_rng(seed)
        eegs = np.repeat(np.arange(len(stage.eeg_ids)), cfg.samples_per_eeg)
        self.order = self.rng.permutation(eegs)  # positions in the stage's EEG list
        self.rows = np.array([self.rng.choice(stage.row_groups[i]) for i in self.order])

    def __len__(self) -> int:
        return self.stage.steps(self.cfg.batch_size, self.cfg.samples_per_eeg)

    def __getitem__(self, index: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        pick = slice(index * self.cfg.batch_size, (index + 1) * self.cfg.batch_size)
        batch = self.cache.batch(self.rows[pick])
        inputs = {k: batch[k] for k in self.names}
        targets = self.stage.targets[self.order[pick]].copy()
        inputs, targets = augment(inputs, targets, self.rng, self.cfg)
        return tuple(inputs[k] for k in self.names), targets


# --- The learning-rate plan ----------------------------------------------------------------------


@dataclass
class Plan:
    """Epoch and step layout of the two stages, and the learning rate at every step."""

    stage1_epochs: int
    stage2_epochs: int
    stage1_steps: int  # per epoch
    stage2_steps: int
    cfg: TrainConfig

    @property
    def epochs(self) -> int:
        return self.stage1_epochs + self.stage2_epochs

    def stage(self, epoch: int) -> int:
        return 1 if epoch < self.stage1_epochs else 2

    def __post_init__(self) -> None:
        c = self.cfg
        total1 = self.stage1_epochs * self.stage1_steps
        warm = max(1, int(c.warmup_frac * total1))
        self._total1 = total1
        # Keras' cosine decay: a linear warm-up to the peak, then down to alpha * peak = min_lr.
        self._stage1 = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=c.lr / warm, decay_steps=max(1, total1 - warm),
            alpha=c.min_lr / c.lr, warmup_target=c.lr, warmup_steps=warm,
        )  # fmt: skip
        peak2 = c.lr * c.stage2_lr_scale
        self._stage2 = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=peak2,
            decay_steps=max(1, self.stage2_epochs * self.stage2_steps),
            alpha=min(1.0, c.min_lr / peak2),
        )

    def lr(self, step: int) -> float:
        """Warm-up then cosine decay in stage 1; a lower cosine restart in stage 2."""
        if step < self._total1:
            return float(self._stage1(step))
        return float(self._stage2(step - self._total1))


class _StepLR(keras.callbacks.Callback):
    """Sets the optimizer's learning rate from the plan before every step (resumable: the step
    count is the optimizer's own, saved in the checkpoint)."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        self.model.optimizer.learning_rate.assign(self.plan.lr(step))


# --- The run -------------------------------------------------------------------------------------


@dataclass
class RunPaths:
    root: Path

    def __getattr__(self, name: str) -> Path:
        files = {
            "model": "model.keras", "config": "config.yaml", "history": "history.csv",
            "curves": "curves.png", "oof": "oof.parquet", "summary": "summary.json",
            "checkpoint": "checkpoint/last.keras", "state": "checkpoint/state.json",
            "best": "checkpoint/best.keras",
        }  # fmt: skip
        if name not in files:
            raise AttributeError(name)
        return self.root / files[name]


def run_dir(cfg: Config, fold: int) -> Path:
    name = cfg.train.run_name or cfg.model.backbone
    return Path(cfg.train.output_dir) / name / f"fold{fold}"


def _configure_precision(mode: str) -> str:
    import tensorflow as tf  # only for device discovery

    gpu = bool(tf.config.list_physical_devices("GPU"))
    use = mode == "on" or (mode == "auto" and gpu)
    policy = "mixed_float16" if use else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def _save_model(model: keras.Model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp)


@dataclass
class Validation:
    """A fold's validation EEGs: targets, the subset that picks the best epoch, the prior."""

    rows: pd.DataFrame  # the labelled sub-windows of the validation EEGs
    targets: pd.DataFrame  # EEG-level targets, indexed by eeg_id
    selected: np.ndarray  # bool per EEG: counts when picking the epoch (train.select_min_votes)
    prior: np.ndarray  # the training folds' mean target

    @classmethod
    def of(cls, val_rows: pd.DataFrame, prior: np.ndarray, min_votes: int, fold: int) -> Validation:
        targets = eeg_targets(val_rows)
        selected = (eeg_vote_counts(val_rows).loc[targets.index] >= min_votes).to_numpy()
        if not selected.any():
            raise ConfigError(
                f"train.select_min_votes={min_votes} leaves none of fold {fold}'s "
                f"{len(targets)} validation EEGs to pick the best epoch with; lower it"
            )
        return cls(val_rows, targets, selected, prior)

    def oof(self, probs: np.ndarray) -> pd.DataFrame:
        return average_by_eeg(self.rows["eeg_id"].to_numpy(), probs)

    def scores(self, oof: pd.DataFrame) -> tuple[float, float]:
        """KL over every validation EEG, and over the selection subset."""
        target = self.targets.loc[oof["eeg_id"]].to_numpy()
        pred = oof[list(VOTE_COLUMNS)].to_numpy()
        return kl_score(target, pred), kl_score(target[self.selected], pred[self.selected])

    def prior_scores(self) -> tuple[float, float]:
        frame = pd.DataFrame(
            np.broadcast_to(self.prior, self.targets.shape), columns=list(VOTE_COLUMNS)
        )
        frame.insert(0, "eeg_id", self.targets.index.to_numpy())
        return self.scores(frame)


def train_fold(cfg: Config, fold: int, resume: bool = False, overwrite: bool = False) -> dict:
    """Train fold ``fold`` of ``cfg`` and write its outputs; returns the run summary."""
    keras.utils.set_random_seed(cfg.train.seed)  # the one place seeds are fixed
    data_root = resolve_data_dir(cfg)
    if not cfg.data.data_dir:
        print(
            f"Training on the embedded demo dataset ({data_root}); pass --data-dir for real data."
        )
    data = HMSData(data_root, "train")
    # One file per dataset, K and seed: a different split is a different file, never an overwrite.
    k, seed = cfg.folds.n_folds, cfg.folds.seed
    folds_path = Path(cfg.data.cache_dir) / f"folds-{_dataset_tag(data_root)}-k{k}-s{seed}.csv"
    folds = load_or_make_folds(data.rows, folds_path, cfg.folds.n_folds, cfg.folds.seed)
    if not 0 <= fold < cfg.folds.n_folds:
        raise ConfigError(f"--fold {fold} is outside 0..{cfg.folds.n_folds - 1}")
    rows = attach_folds(data.rows, folds)
    paths = RunPaths(run_dir(cfg, fold))
    _check_run_dir(paths, cfg, resume, overwrite)
    paths.root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, paths.config)

    names = model_inputs(cfg.model)
    cache = open_cache(data, cfg, names)
    train_rows, val_rows = rows[rows["fold"] != fold], rows[rows["fold"] == fold]
    stage1 = StageData.from_rows(train_rows)
    min_votes = cfg.train.stage2_min_votes
    stage2_rows = train_rows[train_rows[list(VOTE_COLUMNS)].sum(axis=1) >= min_votes]
    stage2 = StageData.from_rows(stage2_rows) if len(stage2_rows) else None
    stage2_epochs = cfg.train.stage2_epochs if stage2 is not None else 0
    if stage2 is None and cfg.train.stage2_epochs:
        print(f"Stage 2 skipped: no training row has at least {min_votes} votes.")
    per_eeg = cfg.train.samples_per_eeg
    plan = Plan(
        cfg.train.stage1_epochs, stage2_epochs, stage1.steps(cfg.train.batch_size, per_eeg),
        stage2.steps(cfg.train.batch_size, per_eeg) if stage2 else 0, cfg.train,
    )  # fmt: skip
    val = Validation.of(val_rows, stage1.targets.mean(axis=0), cfg.train.select_min_votes, fold)

    policy = _configure_precision(cfg.train.mixed_precision)
    state = {"epoch": 0, "best_kl": math.inf, "best_epoch": -1, "history": []}
    if resume and paths.state.is_file():
        state = json.loads(paths.state.read_text())
        model = keras.saving.load_model(paths.checkpoint)
        print(f"Resuming {paths.root} after epoch {state['epoch']} of {plan.epochs}.")
    else:
        sample = cache.batch(np.array([0]))
        shapes = {name: value.shape[1:] for name, value in sample.items()}
        model = build_model(cfg.model, shapes.get("image"), shapes.get("raw"))
        model.compile(
            optimizer=keras.optimizers.AdamW(
                learning_rate=cfg.train.lr, weight_decay=cfg.train.weight_decay
            ),
            loss=kl_divergence_loss,
        )
    n_sel = int(val.selected.sum())
    print(
        f"{paths.root}: {model.count_params():,} parameters, inputs {list(names)}, {policy}; "
        f"{len(stage1.eeg_ids)} train EEGs (stage 2: {len(stage2.eeg_ids) if stage2 else 0}), "
        f"{len(val.targets)} validation EEGs ({n_sel} with >= {cfg.train.select_min_votes} votes "
        f"pick the epoch); TTA {'on' if cfg.train.tta else 'off'}."
    )
    verbose = 1 if sys.stdout.isatty() else 2
    val_index = val_rows.index.to_numpy()
    for epoch in range(state["epoch"], plan.epochs):
        started = time.time()
        stage_data = stage1 if plan.stage(epoch) == 1 else stage2
        batches = EpochBatches(stage_data, cache, names, cfg.train, [cfg.train.seed, fold, epoch])
        fit = model.fit(
            batches, epochs=epoch + 1, initial_epoch=epoch, verbose=verbose,
            callbacks=[_StepLR(plan)],
        )  # fmt: skip
        # Validated exactly as the OOF and the test are predicted (same TTA), so the epoch kept
        # is the best one for what is submitted.
        probs = predict_rows(
            KerasRuntime(model), cache, val_index, cfg.train.val_batch_size, cfg.train.tta
        )
        val_kl, val_kl_sel = val.scores(val.oof(probs))
        lr = float(model.optimizer.learning_rate.numpy())
        record = {
            "epoch": epoch + 1, "stage": plan.stage(epoch),
            "train_loss": float(fit.history["loss"][-1]), "val_kl": val_kl,
            "val_kl_selected": val_kl_sel, "lr": lr, "seconds": round(time.time() - started, 1),
        }  # fmt: skip
        state["history"].append(record)
        if val_kl_sel < state["best_kl"]:
            state["best_kl"], state["best_epoch"] = val_kl_sel, epoch + 1
            _save_model(model, paths.best)
        print(
            f"epoch {epoch + 1}/{plan.epochs} stage {record['stage']}  "
            f"train_loss {record['train_loss']:.4f}  val_kl {val_kl:.4f}  "
            f"selected {val_kl_sel:.4f} (best {state['best_kl']:.4f} @ {state['best_epoch']})  "
            f"lr {lr:.2e}  {record['seconds']:.0f}s",
            flush=True,
        )
        _save_model(model, paths.checkpoint)
        state["epoch"] = epoch + 1
        write_json(paths.state, state)

    return _finish(cfg, fold, paths, state, cache, val)


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


def _finish(
    cfg: Config, fold: int, paths: RunPaths, state: dict, cache: InputCache, val: Validation
) -> dict:
    """Best model -> model.keras (without optimizer), OOF, history, curves and summary."""
    best = keras.saving.load_model(paths.best)
    # A plain functional copy drops the optimizer and loss, so model.keras needs no project code.
    plain = keras.Model(best.inputs, best.outputs, name=best.name)
    _save_model(plain, paths.model)
    probs = predict_rows(
        KerasRuntime(best), cache, val.rows.index.to_numpy(), cfg.train.val_batch_size,
        cfg.train.tta,
    )  # fmt: skip
    oof = val.oof(probs)
    oof.insert(1, "fold", fold)
    meta = {
        "kind": "oof", "tta": cfg.train.tta, "select_min_votes": cfg.train.select_min_votes,
        "fold": fold, "best_epoch": state["best_epoch"],
    }  # fmt: skip
    write_predictions(oof, paths.oof, meta)
    cv, cv_sel = val.scores(oof)
    prior_kl, prior_kl_sel = val.prior_scores()
    history = pd.DataFrame(state["history"])
    with atomic_path(paths.history) as tmp:
        history.to_csv(tmp, index=False)
    _plot(history, paths.curves)
    summary = {
        "fold": fold, "cv_kl": cv, "class_prior_kl": prior_kl, "ratio": cv / prior_kl,
        "select_min_votes": cfg.train.select_min_votes, "cv_kl_selected": cv_sel,
        "class_prior_kl_selected": prior_kl_sel, "n_selected": int(val.selected.sum()),
        "class_prior": val.prior.tolist(), "tta": cfg.train.tta,
        "best_epoch": state["best_epoch"], "n_val_eegs": len(oof), "run_dir": str(paths.root),
    }  # fmt: skip
    write_json(paths.summary, summary)
    print(
        f"fold {fold} CV (official KL, {len(oof)} EEGs): {cv:.4f}   class prior on the same "
        f"EEGs: {prior_kl:.4f}   ratio {cv / prior_kl:.2f}"
    )
    if cfg.train.select_min_votes > 0:
        print(
            f"fold {fold} CV on the {summary['n_selected']} EEGs with >= "
            f"{cfg.train.select_min_votes} votes: {cv_sel:.4f} (class prior {prior_kl_sel:.4f})"
        )
    return summary


def _plot(history: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["epoch"], history["train_loss"], label="train loss (KL, augmented)")
    ax.plot(history["epoch"], history["val_kl"], label="validation KL (official)")
    stage2 = history.loc[history["stage"] == 2, "epoch"]
    if len(stage2):
        ax.axvline(stage2.iloc[0] - 0.5, color="grey", ls="--", label="stage 2")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")  # early from-scratch epochs can spike far above the rest
    ax.set_ylabel("KL divergence (log scale)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
