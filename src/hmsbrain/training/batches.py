"""Training batches: which rows an epoch draws, their targets and weights, and augmentation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from hmsbrain.config import TrainConfig
from hmsbrain.core.inputs import RAW_INPUT
from hmsbrain.core.mirror import swap_batch
from hmsbrain.data.cache import Inputs
from hmsbrain.data.dataset import Dataset
from hmsbrain.dsp.montage import Montage
from hmsbrain.training.augment import augment_raw


@dataclass
class StageData:
    """The rows one stage trains on: per training unit, its scoring unit's id (an HMS EEG, an
    epoch; with ``data.dedup`` an EEG has one training unit per vote pattern, so ids repeat), its
    row indices, its target, its votes and, with class weighting, its weight."""

    unit_ids: np.ndarray
    row_groups: list[np.ndarray]
    targets: np.ndarray  # (units, classes)
    weights: np.ndarray | None = None  # (units,) class weights
    votes: np.ndarray | None = None  # (units,) raters behind each target

    @classmethod
    def from_rows(
        cls, rows: pd.DataFrame, data: Dataset, balance: bool = False, dedup: bool = False
    ) -> StageData:
        """One unit per scoring unit of ``rows`` (its target the unit target of its rows), or
        with ``dedup`` one per scoring unit and label pattern: the rows' own class columns (HMS:
        the sub-window's vote counts), the unit's target that pattern normalised."""
        if dedup:
            groups = list(rows.groupby([data.id_column, *data.classes], sort=True).indices.values())
            first = rows.iloc[[g[0] for g in groups]]
            ids = first[data.id_column].to_numpy()
            targets = data.row_targets(first)
            votes = np.asarray(data.row_votes(first), np.float64)
        else:
            by_unit = rows.groupby(data.id_column, sort=True).indices  # positions in the table
            target = data.unit_targets(rows)
            ids = target.index.to_numpy()
            groups = [by_unit[i] for i in ids]
            targets = target.to_numpy(np.float32)
            votes = data.unit_votes(rows).loc[ids].to_numpy(np.float64)
        weights = None
        if balance:  # inverse class frequency, so every class weighs the same in the loss
            counts = np.bincount(targets.argmax(axis=1), minlength=targets.shape[1])
            per_class = len(targets) / (np.maximum(counts, 1) * (counts > 0).sum())
            weights = per_class[targets.argmax(axis=1)].astype(np.float32)
        row_groups = [rows.index.to_numpy()[g] for g in groups]
        return cls(ids, row_groups, targets.astype(np.float32), weights, votes)

    @property
    def n_rows(self) -> int:
        return sum(len(g) for g in self.row_groups)

    def epoch_weights(self, cfg: TrainConfig, epoch: int) -> np.ndarray | None:
        """Each unit's loss weight in epoch ``epoch`` (0-based, counted over the whole plan):
        its class weight times votes ** ``train.vote_weight``, low-vote units (fewer than
        ``train.low_votes``) times ``train.vote_weight_decay ** epoch``, scaled to average 1
        over the stage. None where nothing weighs (every unit 1)."""
        weights = None if self.weights is None else self.weights.astype(np.float64)
        if cfg.vote_weight > 0 or cfg.vote_weight_decay < 1:
            if self.votes is None:
                raise ValueError("train.vote_weight needs the stage's vote counts")
            by_votes = self.votes**cfg.vote_weight
            low = self.votes < cfg.low_votes
            by_votes = np.where(low, by_votes * cfg.vote_weight_decay**epoch, by_votes)
            weights = by_votes if weights is None else weights * by_votes
        if weights is None:
            return None
        return (weights / weights.mean()).astype(np.float32)

    def draws_per_unit(self, cfg: TrainConfig) -> int:
        """How often an epoch draws each unit: ``samples_per_eeg``, or more where the stage is
        small. A run of 20 epochs over 30 units would otherwise take 20 optimizer steps in all,
        far too few for any network (EEGNet stayed at chance on 30 motor-imagery trials with
        80 steps; 400 steps reached 0.94 balanced accuracy)."""
        floor = math.ceil(cfg.min_steps_per_epoch * cfg.batch_size / max(len(self.unit_ids), 1))
        return max(cfg.samples_per_eeg, floor)

    def steps(self, cfg: TrainConfig) -> int:
        """Batches in one epoch of this stage."""
        draws = len(self.unit_ids) * self.draws_per_unit(cfg)
        return draws // cfg.batch_size if drop_remainder(cfg) else math.ceil(draws / cfg.batch_size)


def augment(
    inputs: dict[str, np.ndarray],
    targets: np.ndarray,
    rng: np.random.Generator,
    cfg: TrainConfig,
    montage: Montage,
    raw_rate: float | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Hemisphere swap, the raw-signal transforms of ``cfg.augment``, time/frequency masks and
    mixup on a batch (numpy, in place where safe).

    The swap needs the montage's mirror (a run without one was refused a swap probability); the
    raw transforms need ``raw_rate``, the raw input's sample rate in Hz."""
    n = len(targets)
    swap = rng.random(n) < cfg.swap_prob
    if swap.any() and montage.mirror is not None:  # the same mirror as the test-time swap
        for key, mirrored in swap_batch({k: v[swap] for k, v in inputs.items()}, montage).items():
            inputs[key][swap] = mirrored
    if cfg.augment and RAW_INPUT in inputs:
        if raw_rate is None:
            raise ValueError(f"train.augment={cfg.augment} needs the raw input's sample rate")
        augment_raw(inputs[RAW_INPUT], rng, cfg.augment, cfg.augment_params, raw_rate)
    if "image" in inputs:
        image = inputs["image"]
        h, w = image.shape[1:3]
        n_bands = len(montage.groups)
        band = h // n_bands  # one group's tile: a frequency mask hits the same band of each
        for i in range(n):
            for _ in range(cfg.time_masks):
                width = rng.integers(0, max(1, int(cfg.mask_frac * w)) + 1)
                start = rng.integers(0, w - width + 1)
                image[i, :, start : start + width] = 0.0
            for _ in range(cfg.freq_masks):
                width = rng.integers(0, max(1, int(cfg.mask_frac * band)) + 1)
                start = rng.integers(0, band - width + 1)
                for tile in range(n_bands):
                    image[i, tile * band + start : tile * band + start + width] = 0.0
    if cfg.mixup_alpha > 0 and rng.random() < cfg.mixup_prob:
        lam = rng.beta(cfg.mixup_alpha, cfg.mixup_alpha)
        perm = rng.permutation(n)
        inputs = {k: lam * v + (1 - lam) * v[perm] for k, v in inputs.items()}
        targets = lam * targets + (1 - lam) * targets[perm]
    return inputs, targets


def drop_remainder(cfg: TrainConfig) -> bool:
    """Whether an epoch leaves out its last, partial batch: JAX's DataParallel shards every
    batch over the devices and cannot split one whose size they do not divide (the units left
    out are drawn in other epochs, each epoch's order being a new permutation)."""
    return cfg.strategy == "data_parallel"


class EpochBatches(keras.utils.PyDataset):
    """One epoch of training batches: every unit ``StageData.draws_per_unit`` times, each at a
    random one of its rows (for HMS, its labelled sub-windows: a random time shift within the
    recording), moved by up to ``shift_seconds`` where the inputs stream from the recording
    store. Batches are prepared ahead of the model by ``workers`` threads (the preprocessing
    releases the GIL). Every draw is seeded by (seed, fold, epoch) and the batch index, so a
    resumed run sees the same data whatever the threads' timing. With class or vote weights
    (:meth:`StageData.epoch_weights`), batches carry them as Keras sample weights. ``raw_rate``,
    the raw input's sample rate in Hz, is what ``train.augment`` needs (its time and frequency
    shifts are in seconds and Hz)."""

    def __init__(
        self,
        stage: StageData,
        cache: Inputs,
        names: tuple[str, ...],
        cfg: TrainConfig,
        seed: list[int],
        montage: Montage,
        workers: int = 1,
        shard: tuple[int, int] = (0, 1),
        raw_rate: float | None = None,
        epoch: int = 0,
    ) -> None:
        """``shard`` = (this process, processes): with several hosts, each process feeds its
        share of every global batch (the same draws everywhere, so the shares partition it).
        ``epoch`` (of the whole plan) sets the decay of low-vote weights."""
        super().__init__(workers=workers, use_multiprocessing=False)
        self.stage, self.cache, self.names, self.cfg = stage, cache, names, cfg
        self.montage, self.seed, self.shard = montage, list(seed), shard
        self.raw_rate = raw_rate
        self.weights = stage.epoch_weights(cfg, epoch)
        rng = np.random.default_rng(seed)
        units = np.repeat(np.arange(len(stage.unit_ids)), stage.draws_per_unit(cfg))
        self.order = rng.permutation(units)  # positions in the stage's unit list
        self.rows = np.array([rng.choice(stage.row_groups[i]) for i in self.order])

    def __len__(self) -> int:
        return self.stage.steps(self.cfg)

    def __getitem__(self, index: int) -> tuple:
        pick = slice(index * self.cfg.batch_size, (index + 1) * self.cfg.batch_size)
        # A process of a cluster draws its own shifts and augmentation for its share: with
        # the batch's seed alone, every share would get the same draws, row for row.
        process = [self.shard[0]] if self.shard[1] > 1 else []
        rng = np.random.default_rng([*self.seed, index, *process])
        mine = np.arange(len(self.rows))[pick][self.shard[0] :: self.shard[1]]
        rows = self.rows[mine]
        shift = self.cfg.shift_seconds
        shifts = rng.uniform(-shift, shift, len(rows)) if shift > 0 else None
        batch = self.cache.batch(rows, shifts)
        inputs = {k: batch[k] for k in self.names}
        targets = self.stage.targets[self.order[mine]].copy()
        inputs, targets = augment(inputs, targets, rng, self.cfg, self.montage, self.raw_rate)
        x = tuple(inputs[k] for k in self.names)
        if self.weights is None:
            return x, targets
        return x, targets, self.weights[self.order[mine]]
