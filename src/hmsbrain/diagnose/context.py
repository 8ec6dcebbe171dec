"""What the checks read, built once per diagnosis: the recipe, the dataset, the folds (fold 0
validates), a bounded sample of raw windows and, on first use, the content hashes, the input
cache, the raw statistics and the model exactly as ``train_fold`` builds and compiles it.

Everything expensive is a cached property, so a check that is skipped (an image check for a
raw-signal model) costs nothing, and the model is compiled once: every learning check starts
from the same initial weights with a reset optimizer, because tracing a new model's training
step costs tens of seconds on a CPU for the image backbones.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from hmsbrain.config import Config, ConfigError
from hmsbrain.core.inputs import (
    RAW_INPUT,
    cached_inputs,
    model_inputs,
)
from hmsbrain.data.cache import Inputs, open_inputs
from hmsbrain.data.dataset import Dataset, EpochDataset
from hmsbrain.data.sources import open_dataset
from hmsbrain.diagnose.hashing import SharedContent, shared_content
from hmsbrain.hms.constants import EEG_COLUMNS, SAMPLE_RATE
from hmsbrain.hms.dataset import HMSDataset
from hmsbrain.models.registry import model_spec
from hmsbrain.runs import run_root
from hmsbrain.training import setup as training_setup
from hmsbrain.training.batches import EpochBatches, StageData
from hmsbrain.training.folds import attach_folds, load_or_make_folds

VALIDATION_FOLD = 0
SAMPLE_WINDOWS = 256  # raw windows the data checks read: enough for every statistic they give
HASH_UNITS = 2048  # units whose windows the split check hashes (all of them on smaller data)
HASH_CHUNK = 128  # windows read and hashed at a time, so memory stays bounded
BLOCK_SECONDS = 1.0  # the hashed blocks, shortened to a quarter window for short epochs
STATS_ROWS = 4096  # training rows behind the raw standardisation statistics
HASH_STEP = 1e-3  # rounding step of hashed values, relative to the median channel std
SMALL_BATCH = 16  # examples of the overfit and gradient probes


@dataclass
class RawWindows:
    """Raw windows as the files hold them: ``signals (n, channels, samples)`` in microvolts at
    ``sfreq`` (NaN where an HMS file has no value), of the rows at ``positions``."""

    signals: np.ndarray
    sfreq: float
    channels: tuple[str, ...]
    positions: np.ndarray


def raw_windows(data: Dataset, positions: np.ndarray) -> RawWindows:
    """The raw windows of the rows at ``positions`` of ``data.rows``, before preprocessing."""
    positions = np.asarray(positions, dtype=np.int64)
    if isinstance(data, EpochDataset):
        epochs = data.epochs
        return RawWindows(epochs.signals[positions], epochs.sfreq, epochs.channels, positions)
    if isinstance(data, HMSDataset):
        signals = np.stack([data.data.eeg_window(int(i)).T for i in positions])
        return RawWindows(signals.astype(np.float32), float(SAMPLE_RATE), EEG_COLUMNS, positions)
    raise TypeError(f"no raw-signal access for {type(data).__name__}")


def channel_stds(signals: np.ndarray) -> np.ndarray:
    """Std of every (window, channel) over time, ignoring missing samples: ``(n, channels)``."""
    finite = np.where(np.isfinite(signals), signals, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN channel's std is NaN
        return np.nanstd(finite, axis=-1)


@dataclass
class Context:
    """One diagnosis: the recipe, its data and split, and what the checks compute from them."""

    cfg: Config
    data: Dataset
    # data.rows with the fold of every row; the index is the row's position, by which the input
    # cache is read (as in train_fold)
    rows: pd.DataFrame
    folds: pd.DataFrame  # id, group, fold per unit (the saved table)
    folds_path: Path
    out_dir: Path  # <run>/diagnose: the report and its plots
    fold: int = VALIDATION_FOLD
    initial_weights: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def train_rows(self) -> pd.DataFrame:
        return self.rows[self.rows["fold"] != self.fold]

    @property
    def val_rows(self) -> pd.DataFrame:
        return self.rows[self.rows["fold"] == self.fold]

    @property
    def seed(self) -> int:
        return self.cfg.train.seed

    @property
    def trainable(self) -> bool:
        """Whether the backbone is a network trained by gradient descent (not the fitted
        band-power baseline): the learning checks need one."""
        return model_spec(self.cfg.model.backbone).kind == "gradient"

    @functools.cached_property
    def sample(self) -> RawWindows:
        """Up to :data:`SAMPLE_WINDOWS` raw windows drawn at random from every fold."""
        rng = np.random.default_rng(self.seed)
        n = min(SAMPLE_WINDOWS, len(self.rows))
        return raw_windows(self.data, np.sort(rng.choice(len(self.rows), n, replace=False)))

    @functools.cached_property
    def content(self) -> SharedContent:
        """Shared signal among one window per unit (up to :data:`HASH_UNITS` units)."""
        first = self.rows.reset_index(drop=True).groupby(self.data.id_column, sort=True).head(1)
        if len(first) > HASH_UNITS:
            first = first.sample(HASH_UNITS, random_state=self.seed).sort_index()
        positions = first.index.to_numpy()
        sample = self.sample
        samples = sample.signals.shape[-1]
        block = max(8, min(round(BLOCK_SECONDS * sample.sfreq), samples // 4))
        step = max(float(np.nanmedian(channel_stds(sample.signals))) * HASH_STEP, 1e-12)
        chunks = (
            raw_windows(self.data, positions[s : s + HASH_CHUNK]).signals
            for s in range(0, len(positions), HASH_CHUNK)
        )
        return shared_content(chunks, first[self.data.id_column].to_numpy(), block, step)

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        return model_inputs(self.cfg.model, self.cfg.preprocess)

    @functools.cached_property
    def cache(self) -> Inputs:
        """Where training reads its inputs: the input cache, or the recording store's stream."""
        return open_inputs(self.data, self.cfg, cached_inputs(self.cfg))

    @functools.cached_property
    def raw_stats(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The raw-input standardisation statistics of the training folds, as ``train_fold``
        computes them, from at most :data:`STATS_ROWS` rows (a large dataset's estimate moves
        by far less than a percent past that); None when the recipe does not standardise."""
        if not (self.cfg.preprocess.standardize and RAW_INPUT in self.names):
            return None
        index = self.train_rows.index.to_numpy()
        if len(index) > STATS_ROWS:
            index = np.sort(np.random.default_rng(self.seed).choice(index, STATS_ROWS, False))
        return training_setup.raw_statistics(self.cache, index)

    @functools.cached_property
    def stage(self) -> StageData:
        """The training fold's units as stage 1 of ``train_fold`` draws them."""
        balance = self.cfg.train.class_weights == "balanced"
        return StageData.from_rows(self.train_rows, self.data, balance)

    @functools.cached_property
    def loss(self) -> object:
        return training_setup.training_loss(self.cfg, self.data)

    @property
    def raw_sample_rate(self) -> float:
        return training_setup.raw_sample_rate(self.cfg)

    @functools.cached_property
    def model(self) -> keras.Model:
        """The model as ``train_fold`` builds and compiles it (AdamW, the run's loss)."""
        keras.utils.set_random_seed(self.seed)
        # On one device: train.strategy spreads this same model over several.
        model = training_setup.build_network(
            self.cfg, self.data, self.cache, self.raw_stats, self.loss
        )
        self.initial_weights = model.get_weights()
        return model

    def fresh_model(self, lr: float) -> keras.Model:
        """The model back at its initial weights, its optimizer reset, at rate ``lr``."""
        model = self.model
        model.set_weights(self.initial_weights)
        for variable in model.optimizer.variables:
            variable.assign(np.zeros(variable.shape, variable.dtype))
        model.optimizer.learning_rate = lr
        return model

    def inputs(self, positions: np.ndarray) -> tuple[np.ndarray, ...]:
        """The model's inputs of cached rows, in the model's input order."""
        batch = self.cache.batch(np.asarray(positions))
        return tuple(batch[name] for name in self.names)

    @functools.cached_property
    def val_stage(self) -> StageData:
        """The validation fold's units, grouped as a stage (their rows and targets)."""
        return StageData.from_rows(self.val_rows, self.data)

    def unit_batch(self, stage: StageData, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions and targets of ``n`` units of ``stage`` (one row each), spread over
        the classes: drawn class by class in turn, so a small batch holds every class it can."""
        rng = np.random.default_rng(seed)
        labels = stage.targets.argmax(axis=1)
        queues = [list(rng.permutation(np.flatnonzero(labels == k))) for k in np.unique(labels)]
        picked: list[int] = []
        while len(picked) < min(n, len(labels)):
            for queue in queues:
                if queue and len(picked) < n:
                    picked.append(queue.pop())
        units = np.array(picked)
        rows = np.array([rng.choice(stage.row_groups[u]) for u in units])
        return rows, stage.targets[units]

    def training_batches(
        self, stage: StageData, seed: int
    ) -> Iterator[tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]]:
        """Batches as ``train_fold`` draws them (augmentation, class weights), epoch after
        epoch, forever; only full ones, since a smaller batch would retrace the compiled step.
        Sample weights are always given (ones without class weights) for the same reason."""
        for epoch in itertools.count():
            batches = EpochBatches(
                stage,
                self.cache,
                self.names,
                self.cfg.train,
                [seed, self.fold, epoch],
                self.data.montage,
                raw_rate=self.raw_sample_rate,
            )
            full = min(self.cfg.train.batch_size, len(batches.rows))
            for i in range(len(batches)):
                x, y, *weights = batches[i]
                if len(y) == full:
                    yield x, y, weights[0] if weights else np.ones(len(y), np.float32)


def build_context(cfg: Config) -> Context:
    """The dataset, its folds and the output folder of ``cfg``; user errors raise as in
    ``train_fold`` (ConfigError, DataError, FoldError)."""
    data = open_dataset(cfg, "train")
    if not data.labelled:
        raise ConfigError(f"{data.root}: the train split has no labels to diagnose")
    # The recipe errors train.py stops on: diagnose stops on them too, with the same message.
    training_setup.check_recipe(cfg, data)
    path = training_setup.folds_file(cfg, data)
    folds = load_or_make_folds(
        data.fold_units(), path, cfg.folds.n_folds, cfg.folds.seed, data.group_kind
    )
    rows = attach_folds(data.rows, folds, data.id_column)
    out_dir = run_root(cfg) / "diagnose"
    out_dir.mkdir(parents=True, exist_ok=True)
    return Context(cfg, data, rows, folds, path, out_dir)
