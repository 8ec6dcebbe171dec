"""Prediction with trained runs: batches, hemisphere-swap TTA, sub-window and fold averaging.

A run's predictions are written as ``<run>/<split>.parquet`` in the prediction file schema of
:mod:`hmsbrain.inference.predictions` (``eeg_id, fold, *_vote``; ``fold`` is -1 for the average
over all folds), which also records which data, folds, runtime and TTA produced them. TTA is the
run's own setting (``train.tta``), the one its OOF was predicted with, so blend weights fitted
on the OOF describe the test predictions they are applied to.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from hmsbrain.config import Config, load_config
from hmsbrain.data.cache import InputCache, open_cache
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.inputs import model_inputs, resolve_data_dir
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.preprocess import MONTAGE_MIRROR, swap_hemispheres_image
from hmsbrain.inference.predictions import FOLD_AVERAGE, PredictionError, write_predictions
from hmsbrain.inference.runtimes import Runtime, choose_runtime, open_fold_runtime

log = logging.getLogger(__name__)


def swap_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The hemisphere-mirrored copy of a model-input batch (image bands and raw channels)."""
    out = dict(batch)
    if "image" in batch:
        out["image"] = swap_hemispheres_image(batch["image"], axis=-3)
    if "raw" in batch:
        out["raw"] = batch["raw"][..., MONTAGE_MIRROR]
    return out


def predict_rows(
    runtime: Runtime, cache: InputCache, rows: np.ndarray, batch_size: int,
    tta: bool = False, progress: bool = False,
) -> np.ndarray:  # fmt: skip
    """Probabilities ``(len(rows), 6)`` of cached rows; with ``tta``, averaged with the
    hemisphere-swapped input (a mirrored head shows the same pattern, so the label is kept)."""
    out = []
    starts = range(0, len(rows), batch_size)
    for start in tqdm(starts, desc="predicting", unit="batch", disable=not progress):
        batch = cache.batch(rows[start : start + batch_size])
        probs = np.asarray(runtime.predict(batch))
        if tta:
            probs = 0.5 * (probs + np.asarray(runtime.predict(swap_batch(batch))))
        out.append(probs)
    return np.concatenate(out) if out else np.zeros((0, len(VOTE_COLUMNS)), np.float32)


def average_by_eeg(eeg_ids: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """Mean prediction of each EEG's sub-windows: ``eeg_id`` + six vote columns, sorted by id."""
    frame = pd.DataFrame(probs, columns=list(VOTE_COLUMNS))
    frame.insert(0, "eeg_id", eeg_ids)
    mean = frame.groupby("eeg_id", sort=True).mean()
    mean = mean.div(mean.sum(axis=1), axis=0)  # renormalise float32 round-off
    return mean.reset_index()


def fold_dirs(run: str | Path) -> list[Path]:
    """The trained folds of a run folder, in fold order."""
    run = Path(run)
    found = sorted(p.parent for p in run.glob("fold*/model.keras"))
    if not found:
        raise FileNotFoundError(f"{run}: no fold*/model.keras; train the run first")
    return found


def run_config(run: str | Path) -> Config:
    """The config of a run's first fold (every fold of a run shares its recipe)."""
    return load_config(fold_dirs(run)[0] / "config.yaml")


def class_prior(run: str | Path) -> np.ndarray:
    """The mean training target of a run's folds: the fallback prediction of an unreadable EEG."""
    priors = []
    for fold in fold_dirs(run):
        summary = json.loads((fold / "summary.json").read_text())
        if "class_prior" not in summary:
            raise FileNotFoundError(
                f"{fold / 'summary.json'}: no class_prior (written by training since the "
                "fallback prediction exists); retrain the fold"
            )
        priors.append(summary["class_prior"])
    prior = np.mean(priors, axis=0)
    return prior / prior.sum()


@dataclass
class RunPrediction:
    """A run's fold-averaged prediction and the EEGs that got the fallback instead."""

    frame: pd.DataFrame  # eeg_id, fold (-1), six vote columns
    fallback: dict[int, str] = field(default_factory=dict)  # eeg_id -> why
    meta: dict = field(default_factory=dict)


def predict_run(
    run: str | Path, data_dir: str | None = None, split: str = "test", tta: bool | None = None,
    batch_size: int = 64, runtime: str = "auto", cache_dir: str | None = None,
    write: bool = True, fallback: bool = False,
) -> RunPrediction:  # fmt: skip
    """Average of every fold model of ``run`` on ``split`` of ``data_dir``.

    ``tta`` defaults to the run's ``train.tta`` (what its OOF used); ``runtime`` is one of
    :data:`hmsbrain.runtimes.RUNTIMES`; ``cache_dir`` replaces the runs' input-cache folder (a
    Kaggle kernel cannot write where the run was trained). With ``fallback``, an EEG that cannot
    be read, or whose prediction is not finite, gets the run's class prior and a warning naming
    it, instead of stopping the whole prediction. With ``write``, the result goes to
    ``<run>/<split>.parquet``."""
    run = Path(run)
    folds = fold_dirs(run)
    first = run_config(run)
    tta = first.train.tta if tta is None else tta
    kind = choose_runtime(runtime, folds)
    per_fold, failed, used = [], {}, []
    data = None
    for fold in folds:
        cfg: Config = load_config(fold / "config.yaml")
        if data_dir is not None:
            cfg.data.data_dir = str(data_dir)
        if cache_dir is not None:
            cfg.data.cache_dir = str(cache_dir)
        data = HMSData(resolve_data_dir(cfg), split)
        # Preprocessing is the training code itself (the cache builds it from the run's config).
        cache = open_cache(data, cfg, model_inputs(cfg.model), fallback=fallback)
        model = open_fold_runtime(kind, fold, Path(cfg.data.cache_dir), auto=runtime == "auto")
        used.append(model.name)
        probs = predict_rows(model, cache, np.arange(len(data)), batch_size, tta, progress=True)
        ids = data.rows["eeg_id"].to_numpy()
        for row, reason in cache.failed.items():
            failed[int(ids[row])] = reason
        bad = ~np.isfinite(probs).all(axis=1)
        for row in np.flatnonzero(bad):
            reason = f"{data.eeg_path(ids[row])}: the {fold.name} model's prediction is not finite"
            if not fallback:
                raise PredictionError(f"{reason} (eeg_id {ids[row]}); nothing was written")
            failed.setdefault(int(ids[row]), reason)
        probs[bad] = 1.0  # replaced below; keeps the fold average finite meanwhile
        per_fold.append(average_by_eeg(ids, probs))
    assert data is not None  # fold_dirs never returns an empty list
    stacked = np.stack([f[list(VOTE_COLUMNS)].to_numpy() for f in per_fold])
    mean = stacked.mean(axis=0, dtype=np.float64)
    result = pd.DataFrame(mean / mean.sum(axis=1, keepdims=True), columns=list(VOTE_COLUMNS))
    result.insert(0, "eeg_id", per_fold[0]["eeg_id"].to_numpy())
    result.insert(1, "fold", FOLD_AVERAGE)
    if failed:
        prior = class_prior(run)
        result.loc[result["eeg_id"].isin(list(failed)), list(VOTE_COLUMNS)] = prior
        for eeg_id, reason in failed.items():
            log.warning("FALLBACK eeg_id %s gets %s's class prior: %s", eeg_id, run.name, reason)
    meta = {
        "kind": split, "data_dir": str(Path(data.root).resolve()), "split": split, "tta": tta,
        "runtime": sorted(set(used)), "folds": [f.name for f in folds],
        "fallback": {str(k): v for k, v in failed.items()},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    if write:
        write_predictions(
            result, run / f"{split}.parquet", meta, source=lambda i: str(data.eeg_path(i))
        )
    return RunPrediction(result, failed, meta)
