"""Prediction with trained runs: batches, hemisphere-swap TTA, sub-window and fold averaging.

A run's predictions are written as ``<run>/<split>.parquet`` in the OOF schema
(``eeg_id, fold, *_vote``; ``fold`` is -1 for the average over all folds), with a small JSON
sidecar recording which data, folds and TTA produced them, so ensembling never loads a model.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from hmsbrain.cache import InputCache, open_cache
from hmsbrain.config import Config, load_config
from hmsbrain.constants import VOTE_COLUMNS
from hmsbrain.dataio import HMSData
from hmsbrain.inputs import resolve_data_dir
from hmsbrain.preprocess import MONTAGE_MIRROR, swap_hemispheres_image
from hmsbrain.runtimes import Runtime, choose_runtime, open_runtime

FOLD_AVERAGE = -1


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


def predict_run(
    run: str | Path, data_dir: str | None = None, split: str = "test", tta: bool = True,
    batch_size: int = 64, runtime: str = "auto", cache_dir: str | None = None,
    write: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """Average of every fold model of ``run`` on ``split`` of ``data_dir``.

    ``runtime`` is one of :data:`hmsbrain.runtimes.RUNTIMES`; ``cache_dir`` replaces the runs'
    input-cache folder (a Kaggle kernel cannot write where the run was trained). With ``write``,
    the result goes to ``<run>/<split>.parquet`` with its JSON sidecar."""
    run = Path(run)
    folds = fold_dirs(run)
    kind = choose_runtime(runtime, folds)
    per_fold = []
    data_root = None
    for fold in folds:
        cfg: Config = load_config(fold / "config.yaml")
        if data_dir is not None:
            cfg.data.data_dir = str(data_dir)
        if cache_dir is not None:
            cfg.data.cache_dir = str(cache_dir)
        data_root = resolve_data_dir(cfg)
        data = HMSData(data_root, split)
        # Preprocessing is the training code itself (the cache builds it from the run's config).
        cache = open_cache(data, cfg)
        model = open_runtime(kind, fold, Path(cfg.data.cache_dir))
        probs = predict_rows(model, cache, np.arange(len(data)), batch_size, tta, progress=True)
        per_fold.append(average_by_eeg(data.rows["eeg_id"].to_numpy(), probs))
    stacked = np.stack([f[list(VOTE_COLUMNS)].to_numpy() for f in per_fold])
    mean = stacked.mean(axis=0)
    result = pd.DataFrame(mean / mean.sum(axis=1, keepdims=True), columns=list(VOTE_COLUMNS))
    result.insert(0, "eeg_id", per_fold[0]["eeg_id"].to_numpy())
    result.insert(1, "fold", FOLD_AVERAGE)
    if not write:
        return result
    result.to_parquet(run / f"{split}.parquet", index=False)
    sidecar = {
        "data_dir": str(Path(data_root).resolve()), "split": split, "tta": tta, "runtime": kind,
        "folds": [f.name for f in folds],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    (run / f"{split}.json").write_text(json.dumps(sidecar, indent=1))
    return result
