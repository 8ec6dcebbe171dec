"""Blending runs from their OOF and test files alone (no model is ever loaded).

Weights are non-negative and sum to one, chosen to minimise the official KL on the OOF EEGs
that every run covers; blending is tried on probabilities (weighted mean) and in log space
(weighted geometric mean, renormalised), and the better of the two on OOF is kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.optimize

from hmsbrain.config import load_config
from hmsbrain.constants import METRIC_EPSILON, VOTE_COLUMNS
from hmsbrain.dataio import HMSData
from hmsbrain.inference import fold_dirs
from hmsbrain.inputs import resolve_data_dir
from hmsbrain.metrics import eeg_targets, kl_score

HIGH_VOTES = 10  # the "high-quality" rows top teams report CV on
METHODS = ("linear", "log")


@dataclass
class RunPredictions:
    name: str
    oof: pd.DataFrame  # eeg_id, fold, votes; one row per EEG
    test: pd.DataFrame | None
    test_info: dict = field(default_factory=dict)


def load_run(run: str | Path) -> RunPredictions:
    run = Path(run)
    parts = [pd.read_parquet(f / "oof.parquet") for f in fold_dirs(run)]
    oof = pd.concat(parts, ignore_index=True).sort_values("eeg_id", ignore_index=True)
    if oof["eeg_id"].duplicated().any():
        raise ValueError(f"{run}: an eeg_id appears in the OOF of two folds")
    test_path = run / "test.parquet"
    test = (
        pd.read_parquet(test_path).sort_values("eeg_id", ignore_index=True)
        if test_path.is_file()
        else None
    )
    info = json.loads((run / "test.json").read_text()) if (run / "test.json").is_file() else {}
    return RunPredictions(run.name, oof, test, info)


def blend(preds: list[np.ndarray], weights: np.ndarray, method: str) -> np.ndarray:
    """Weighted mean of probability arrays, or their weighted geometric mean (``log``)."""
    stack = np.stack(preds)
    if method == "linear":
        out = np.tensordot(weights, stack, axes=1)
    else:
        out = np.exp(np.tensordot(weights, np.log(np.clip(stack, METRIC_EPSILON, 1.0)), axes=1))
    return out / out.sum(axis=1, keepdims=True)


def blend_frames(
    frames: list[pd.DataFrame], names: list[str], weights: np.ndarray, method: str
) -> pd.DataFrame:
    """Blend per-run prediction frames (``eeg_id`` + vote columns) that cover the same EEGs;
    ensemble.py and the Kaggle kernel both blend test predictions through this."""
    frames = [f.sort_values("eeg_id", ignore_index=True) for f in frames]
    ids = frames[0]["eeg_id"].to_numpy()
    for name, frame in zip(names[1:], frames[1:], strict=True):
        if not np.array_equal(frame["eeg_id"].to_numpy(), ids):
            raise ValueError(f"{name}: predicts other EEGs than {names[0]}")
    out = pd.DataFrame(
        blend([f[list(VOTE_COLUMNS)].to_numpy() for f in frames], weights, method),
        columns=list(VOTE_COLUMNS),
    )
    out.insert(0, "eeg_id", ids)
    return out


def fit_weights(preds: list[np.ndarray], target: np.ndarray, method: str) -> np.ndarray:
    """Non-negative, sum-to-one weights minimising OOF KL (SLSQP from equal weights)."""
    n = len(preds)
    if n == 1:
        return np.ones(1)
    result = scipy.optimize.minimize(
        lambda w: kl_score(target, blend(preds, np.clip(w, 0, None), method)),
        np.full(n, 1.0 / n), method="SLSQP", bounds=[(0.0, 1.0)] * n,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
    )  # fmt: skip
    weights = np.clip(result.x, 0.0, None)
    return weights / weights.sum()


def eeg_vote_counts(rows: pd.DataFrame) -> pd.Series:
    """Votes per EEG: the median of its sub-windows' totals (they rarely differ)."""
    totals = rows[list(VOTE_COLUMNS)].sum(axis=1)
    return totals.groupby(rows["eeg_id"]).median()


@dataclass
class EnsembleResult:
    table: pd.DataFrame  # per run and for the blend: CV, CV on >= 10 votes, n EEGs, weight
    method: str
    weights: dict[str, float]
    cv: float
    best_single: float
    submission: pd.DataFrame | None
    notes: list[str]


def ensemble(runs: list[RunPredictions], train_rows: pd.DataFrame) -> EnsembleResult:
    """Score every run on its OOF, fit blend weights on the common EEGs, blend the test files."""
    notes = []
    common = set(runs[0].oof["eeg_id"])
    for r in runs[1:]:
        common &= set(r.oof["eeg_id"])
    if any(set(r.oof["eeg_id"]) != common for r in runs):
        sizes = ", ".join(f"{r.name}: {len(r.oof)}" for r in runs)
        notes.append(f"runs cover different OOF EEGs ({sizes}); blending on the {len(common)} "
                     "EEGs they share")  # fmt: skip
    ids = np.array(sorted(common))
    targets = eeg_targets(train_rows).loc[ids].to_numpy()
    high = (eeg_vote_counts(train_rows).loc[ids] >= HIGH_VOTES).to_numpy()
    preds = [r.oof.set_index("eeg_id").loc[ids, list(VOTE_COLUMNS)].to_numpy() for r in runs]

    def scores(p: np.ndarray) -> tuple[float, float]:
        return kl_score(targets, p), (kl_score(targets[high], p[high]) if high.any() else np.nan)

    rows = []
    for r in runs:  # each run over all its own OOF EEGs, and over the common ones
        own = r.oof.set_index("eeg_id")
        own_t = eeg_targets(train_rows).loc[own.index].to_numpy()
        own_high = (eeg_vote_counts(train_rows).loc[own.index] >= HIGH_VOTES).to_numpy()
        p = own[list(VOTE_COLUMNS)].to_numpy()
        rows.append({
            "run": r.name, "eegs": len(own), "cv": kl_score(own_t, p),
            "cv_10plus": kl_score(own_t[own_high], p[own_high]) if own_high.any() else np.nan,
        })  # fmt: skip
    best = {}
    for method in METHODS:
        w = fit_weights(preds, targets, method)
        best[method] = (scores(blend(preds, w, method))[0], w)
    method = min(best, key=lambda m: best[m][0])
    weights = best[method][1]
    blended = blend(preds, weights, method)
    cv, cv_high = scores(blended)
    single = min(scores(p)[0] for p in preds)
    table = pd.DataFrame(rows)
    table["weight"] = weights
    table.loc[len(table)] = {"run": f"blend ({method})", "eegs": len(ids), "cv": cv,
                             "cv_10plus": cv_high, "weight": weights.sum()}  # fmt: skip
    submission = None
    if all(r.test is not None for r in runs):
        names = [f"{r.name}/test.parquet" for r in runs]
        submission = blend_frames([r.test for r in runs], names, weights, method)
    else:
        notes.append("some runs have no test.parquet (run predict.py): no submission written")
    return EnsembleResult(
        table, method, dict(zip([r.name for r in runs], weights.tolist(), strict=True)),
        cv, single, submission, notes,
    )  # fmt: skip


def train_rows_of(run: str | Path) -> pd.DataFrame:
    """The labelled rows a run was trained on (its config's data folder)."""
    cfg = load_config(fold_dirs(run)[0] / "config.yaml")
    return HMSData(resolve_data_dir(cfg), "train").rows


def write_report(result: EnsembleResult, path: Path, runs: list[str]) -> None:
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "runs": runs,
        "method": result.method, "weights": result.weights, "blend_cv": result.cv,
        "best_single_cv": result.best_single,
        "table": result.table.replace({np.nan: None}).to_dict(orient="records"),
        "notes": result.notes,
    }  # fmt: skip
    path.write_text(json.dumps(report, indent=1))
