"""Prediction with trained runs: batches, hemisphere-swap TTA, averaging per unit and fold.

A run's predictions are written as ``<run>/<split>.parquet`` in the prediction file schema of
:mod:`hmsbrain.core.predictions` (the unit id, ``fold`` = -1 for the average over folds,
one probability column per class), which also records which data, folds, runtime and TTA
produced them. TTA is the run's own setting (``train.tta``), the one its OOF was predicted
with, so blend weights fitted on the OOF describe the test predictions they are applied to.

Sliding windows over new recordings (a folder of EDF files without events) are also written as
one CSV per recording, ``<run>/windows/<recording>.csv``: window start and end in seconds and
the class probabilities.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.atomic import atomic_path
from hmsbrain.config import Config, load_config
from hmsbrain.core.fallback import apply_fallback
from hmsbrain.core.inputs import cached_inputs
from hmsbrain.core.predict import Runtime, average_by_unit, predict_rows
from hmsbrain.core.predictions import FOLD_AVERAGE, PredictionError, write_predictions
from hmsbrain.data.cache import open_cache
from hmsbrain.data.dataset import Dataset
from hmsbrain.data.sources import open_dataset
from hmsbrain.inference.runtimes import RuntimeUnavailableError, open_fold_runtimes
from hmsbrain.runs import fold_dirs, fold_summary, run_config

log = logging.getLogger(__name__)


def class_prior(run: str | Path) -> np.ndarray:
    """The mean training target of a run's folds: the fallback prediction of an unreadable EEG."""
    priors = []
    for fold in fold_dirs(run):
        summary = fold_summary(fold)
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
    """A run's fold-averaged prediction and the units that got the fallback instead."""

    frame: pd.DataFrame  # id, fold (-1), one column per class
    fallback: dict[object, str] = field(default_factory=dict)  # unit id -> why
    meta: dict = field(default_factory=dict)
    no_runtime: str | None = None  # why no runtime could run: every unit got the class prior


@dataclass
class OpenedRun:
    """A run's fold models, opened on one runtime and ready to predict any data: the Kaggle
    notebook predicts its first test EEG, then the whole test set, with the same models."""

    run: Path
    folds: list[Path]
    configs: list[Config]
    models: list[Runtime]  # one per fold; empty when no runtime can run
    no_runtime: str | None = None  # why not


def open_run(
    run: str | Path, runtime: str = "auto", cache_dir: str | None = None, fallback: bool = False
) -> OpenedRun:
    """Every fold model of ``run`` on ``runtime`` (one of
    :data:`hmsbrain.inference.runtimes.RUNTIMES`). ``cache_dir`` replaces the runs' input-cache
    folder (a Kaggle kernel cannot write where the run was trained). When no runtime can run,
    ``fallback`` turns the error into one loud line: every unit will get the run's class prior,
    and a blend leaves the run out (:func:`hmsbrain.inference.ensemble.blend_ran`)."""
    run = Path(run)
    folds = fold_dirs(run)
    configs = [load_config(fold / "config.yaml") for fold in folds]
    if cache_dir is not None:
        for cfg in configs:
            cfg.data.cache_dir = str(cache_dir)
    try:
        _, models = open_fold_runtimes(runtime, folds, [Path(c.data.cache_dir) for c in configs])
    except RuntimeUnavailableError as exc:
        if not fallback:
            raise
        log.error(
            "NO RUNTIME for %s: %s; every unit gets %s's class prior, and a blend leaves it out",
            run,
            exc,
            run.name,
        )
        return OpenedRun(run, folds, configs, [], str(exc))
    return OpenedRun(run, folds, configs, models)


def predict_run(
    run: str | Path,
    data_dir: str | None = None,
    split: str = "test",
    tta: bool | None = None,
    batch_size: int = 64,
    runtime: str = "auto",
    cache_dir: str | None = None,
    write: bool = True,
    fallback: bool = False,
) -> RunPrediction:
    """Average of every fold model of ``run`` on ``split`` of ``data_dir``: :func:`open_run`,
    then :func:`predict_opened`."""
    opened = open_run(run, runtime, cache_dir, fallback)
    return predict_opened(opened, data_dir, split, tta, batch_size, write, fallback)


def predict_opened(
    opened: OpenedRun,
    data_dir: str | None = None,
    split: str = "test",
    tta: bool | None = None,
    batch_size: int = 64,
    write: bool = True,
    fallback: bool = False,
    count_bugs: bool = False,
) -> RunPrediction:
    """Average of every fold model of an opened run on ``split`` of ``data_dir`` (default: the
    data each fold was trained on).

    ``tta`` defaults to the run's ``train.tta`` (what its OOF used). With ``fallback``, a unit
    that cannot be read (a DataError), or whose prediction is not finite, gets the run's class
    prior and a warning naming it, instead of stopping the whole prediction; so does every unit
    when no runtime could run. Any other exception in reading a unit is a bug and stops the
    prediction with its traceback, unless ``count_bugs`` (the Kaggle notebook) makes that unit
    fall back too, with a reason that says ``unexpected`` (see :mod:`hmsbrain.data.cache`).
    With ``write``, the result goes to ``<run>/<split>.parquet``."""
    run, folds = opened.run, opened.folds
    tta = run_config(run).train.tta if tta is None else tta
    per_fold, failed, used = [], {}, []
    data: Dataset | None = None
    for index, fold in enumerate(folds):
        cfg: Config = copy.deepcopy(opened.configs[index])
        if data_dir is not None:
            cfg.data.data_dir = str(data_dir)
        summary = fold_summary(fold)
        # With fallback, a recording store (data.storage=recordings) leaves the recordings it
        # cannot store to the cache's fallback below, instead of failing the whole split.
        window_seconds = summary.get("window_seconds", 0.0)
        data = open_dataset(cfg, split, window_seconds=window_seconds, fallback=fallback)
        # The run's classes: data to predict may carry no labels, hence no class names.
        classes = tuple(summary.get("classes") or data.classes)
        ids = data.rows[data.id_column].to_numpy()
        if opened.no_runtime is not None:
            # Only the units are needed: nothing is preprocessed, every fold would be the same.
            prior = np.tile(class_prior(run), (len(ids), 1))
            per_fold.append(average_by_unit(ids, prior, classes, data.id_column))
            break
        # Preprocessing is the training code itself (the cache builds it from the run's config).
        cache = open_cache(data, cfg, cached_inputs(cfg), fallback=fallback, count_bugs=count_bugs)
        model = opened.models[index]
        used.append(model.name)
        mirror = data.montage if tta else None
        probs = predict_rows(model, cache, np.arange(len(data)), batch_size, mirror, True)
        for row, reason in cache.failed.items():
            failed[ids[row]] = reason
        bad = ~np.isfinite(probs).all(axis=1)
        for row in np.flatnonzero(bad):
            reason = f"{data.source(ids[row])}: the {fold.name} model's prediction is not finite"
            if not fallback:
                raise PredictionError(
                    f"{reason} ({data.id_column} {ids[row]}); nothing was written"
                )
            failed.setdefault(ids[row], reason)
        probs[bad] = 1.0  # replaced below; keeps the fold average finite meanwhile
        per_fold.append(average_by_unit(ids, probs, classes, data.id_column))
    assert data is not None  # fold_dirs never returns an empty list
    classes = list(classes)
    mean = np.stack([f[classes].to_numpy() for f in per_fold]).mean(axis=0)
    result = pd.DataFrame(mean / mean.sum(axis=1, keepdims=True), columns=classes)
    result.insert(0, data.id_column, per_fold[0][data.id_column].to_numpy())
    result.insert(1, "fold", FOLD_AVERAGE)
    if failed:
        apply_fallback(result, failed, class_prior(run), classes, f"{run.name}'s")
    meta = {
        "kind": split,
        "data_dir": str(Path(data.root).resolve()),
        "split": split,
        "tta": tta,
        "runtime": sorted(set(used)),
        "folds": [f.name for f in folds],
        "fallback": {str(k): v for k, v in failed.items()},
        "no_runtime": opened.no_runtime,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if write:
        write_predictions(result, run / f"{split}.parquet", meta, source=data.source)
        if "start" in data.rows and not data.labelled:
            write_window_csvs(result, data, classes, run / "windows")
    return RunPrediction(result, failed, meta, opened.no_runtime)


def write_window_csvs(
    result: pd.DataFrame, data: Dataset, classes: list[str], out_dir: Path
) -> list[Path]:
    """One CSV per recording: ``start, end`` (seconds) and the class probabilities of each
    sliding window, in time order."""
    # One row per window: a window's crops (preprocess.crop_seconds) share its start.
    windows = data.rows[[data.id_column, "file", "start"]].drop_duplicates(data.id_column)
    frame = windows.merge(result, on=data.id_column)
    paths = []
    for file, part in frame.groupby("file", sort=True):
        table = part.sort_values("start")
        out = pd.DataFrame({"start": table["start"], "end": table["start"] + data.epoch_seconds})
        for name in classes:
            out[name] = table[name].to_numpy()
        path = out_dir / f"{Path(str(file)).stem}.csv"
        with atomic_path(path) as tmp:
            out.to_csv(tmp, index=False, float_format="%.6g")
        paths.append(path)
    return paths
