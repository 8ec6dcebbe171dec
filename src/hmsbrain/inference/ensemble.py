"""Blending runs from their OOF and test files alone (no model is ever loaded).

Weights are non-negative and sum to one, chosen to minimise the official KL on the OOF EEGs
that every run covers and that the runs' selection subset keeps (``train.select_min_votes``:
all EEGs, or those with at least N votes); blending is tried on probabilities (weighted mean)
and in log space (weighted geometric mean, renormalised), and the better of the two is kept.

The blend's CV is scored out of sample, by nested cross-validation over the folds the OOF files
record: for each fold, weights and method are fitted on the other folds' EEGs and scored on the
held-out one. The in-sample figure (fitted and scored on the same EEGs, which flatters the blend
more the more runs it has) is reported beside it, named as such, and never as the CV.

Runs are blended only when they were predicted the same way: OOF and test with the same TTA
setting (inside each run and across runs) and the same selection subset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.optimize

from hmsbrain.atomic import write_json
from hmsbrain.hms.constants import METRIC_EPSILON, VOTE_COLUMNS
from hmsbrain.hms.inputs import resolve_data_dir
from hmsbrain.hms.layout import HMSData
from hmsbrain.inference.predict import fold_dirs, run_config
from hmsbrain.inference.predictions import read_predictions
from hmsbrain.training.metrics import eeg_targets, eeg_vote_counts, kl_score

HIGH_VOTES = 10  # the "high-quality" rows top teams report CV on
METHODS = ("linear", "log")


class EnsembleError(ValueError):
    """Runs that cannot be blended as they are; the message says which and why."""


@dataclass
class RunPredictions:
    name: str
    oof: pd.DataFrame  # eeg_id, fold, votes; one row per EEG
    test: pd.DataFrame | None
    tta: bool = True
    select_min_votes: int = 0
    test_info: dict = field(default_factory=dict)  # the test file's metadata


def load_run(run: str | Path) -> RunPredictions:
    """A run's OOF (every fold) and test predictions, checked to be predicted the same way."""
    run = Path(run)
    parts = [read_predictions(f / "oof.parquet") for f in fold_dirs(run)]
    oof = pd.concat([p.frame for p in parts], ignore_index=True).sort_values(
        "eeg_id", ignore_index=True
    )
    if oof["eeg_id"].duplicated().any():
        raise EnsembleError(f"{run}: an eeg_id appears in the OOF of two folds")
    # OOF files written before the setting was recorded were predicted without TTA.
    oof_tta = {bool(p.meta.get("tta", False)) for p in parts}
    if len(oof_tta) > 1:
        raise EnsembleError(f"{run}: its folds' OOF files mix TTA on and off; retrain them alike")
    tta = oof_tta.pop()
    test, info = None, {}
    test_path = run / "test.parquet"
    if test_path.is_file():
        predicted = read_predictions(test_path)
        info = predicted.meta
        if "tta" not in info:
            raise EnsembleError(
                f"{test_path}: written before predictions recorded their TTA setting; "
                f"re-run `python src/predict.py {run}`"
            )
        if bool(info["tta"]) != tta:
            raise EnsembleError(
                f"{run}: OOF predicted with TTA {_on(tta)} but test.parquet with TTA "
                f"{_on(info['tta'])}; blend weights fitted on one would be applied to the other. "
                f"Re-run `python src/predict.py {run}` (it uses the run's train.tta)"
            )
        test = predicted.frame.sort_values("eeg_id", ignore_index=True)
    select = run_config(run).train.select_min_votes
    return RunPredictions(run.name, oof, test, tta, select, info)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


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
            raise EnsembleError(f"{name}: predicts other EEGs than {names[0]}")
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
    if not result.success:
        raise EnsembleError(
            f"fitting {method} blend weights on {len(target)} EEGs failed: {result.message}"
        )
    weights = np.clip(result.x, 0.0, None)
    return weights / weights.sum()


def fit_blend(preds: list[np.ndarray], target: np.ndarray) -> tuple[str, np.ndarray]:
    """The better method and its weights, both chosen on ``target``'s rows only."""
    fitted = {m: fit_weights(preds, target, m) for m in METHODS}
    score = {m: kl_score(target, blend(preds, w, m)) for m, w in fitted.items()}
    method = min(score, key=score.__getitem__)
    return method, fitted[method]


def nested_blend(
    preds: list[np.ndarray], target: np.ndarray, folds: np.ndarray, fit_rows: np.ndarray
) -> np.ndarray:
    """Out-of-sample blend of every row: each fold blended with the method and weights fitted
    on the ``fit_rows`` of the other folds."""
    out = np.empty_like(preds[0], dtype=np.float64)
    for k in np.unique(folds):
        held = folds == k
        train = ~held & fit_rows
        if not train.any():
            raise EnsembleError(f"no EEG outside fold {k} to fit the blend on")
        method, weights = fit_blend([p[train] for p in preds], target[train])
        out[held] = blend([p[held] for p in preds], weights, method)
    return out


@dataclass
class EnsembleResult:
    table: pd.DataFrame  # per run and for the blend: EEGs, CV (all / selected / >= 10), weight
    method: str
    weights: dict[str, float]
    cv: float  # nested (out of sample), all common EEGs; NaN where it cannot be formed
    cv_selected: float  # nested, on the selection subset
    cv_in_sample: float  # fitted and scored on the same EEGs: optimistic, for comparison only
    best_single: float
    select_min_votes: int
    tta: bool
    class_prior: np.ndarray  # mean EEG-level target of the train rows: the fallback prediction
    submission: pd.DataFrame | None
    notes: list[str]
    fallback: dict[int, str] = field(default_factory=dict)  # test eeg_id -> why


def _common_folds(runs: list[RunPredictions], ids: np.ndarray) -> np.ndarray:
    """The fold of each common EEG, which every run must agree on (one split for all)."""
    folds = [r.oof.set_index("eeg_id").loc[ids, "fold"].to_numpy() for r in runs]
    for r, f in zip(runs[1:], folds[1:], strict=True):
        if not np.array_equal(f, folds[0]):
            raise EnsembleError(
                f"{r.name} and {runs[0].name} put the same EEGs in different folds; blending "
                "them would score EEGs that a run trained on. Train every run on the same split"
            )
    return folds[0]


def _one(values: list, what: str, runs: list[RunPredictions]) -> object:
    if len(set(values)) > 1:
        listed = ", ".join(f"{r.name}: {v}" for r, v in zip(runs, values, strict=True))
        raise EnsembleError(f"the runs differ in {what} ({listed}); blend runs made alike")
    return values[0]


def ensemble(runs: list[RunPredictions], train_rows: pd.DataFrame) -> EnsembleResult:
    """Score every run on its OOF, fit blend weights on the common EEGs, score the blend by
    nested CV, blend the test files."""
    tta = bool(_one([r.tta for r in runs], "TTA (train.tta)", runs))
    select = int(_one([r.select_min_votes for r in runs], "train.select_min_votes", runs))
    notes = []
    common = set(runs[0].oof["eeg_id"])
    for r in runs[1:]:
        common &= set(r.oof["eeg_id"])
    if any(set(r.oof["eeg_id"]) != common for r in runs):
        sizes = ", ".join(f"{r.name}: {len(r.oof)}" for r in runs)
        notes.append(f"runs cover different OOF EEGs ({sizes}); blending on the {len(common)} "
                     "EEGs they share")  # fmt: skip
    ids = np.array(sorted(common))
    all_targets = eeg_targets(train_rows)
    votes = eeg_vote_counts(train_rows)
    targets = all_targets.loc[ids].to_numpy()
    selected = (votes.loc[ids] >= select).to_numpy()
    high = (votes.loc[ids] >= HIGH_VOTES).to_numpy()
    folds = _common_folds(runs, ids)
    preds = [r.oof.set_index("eeg_id").loc[ids, list(VOTE_COLUMNS)].to_numpy() for r in runs]

    def scores(p: np.ndarray, own: pd.Index | None = None) -> dict[str, float]:
        t, s, h = targets, selected, high
        if own is not None:
            t = all_targets.loc[own].to_numpy()
            s, h = (votes.loc[own] >= select).to_numpy(), (votes.loc[own] >= HIGH_VOTES).to_numpy()
        return {
            "cv": kl_score(t, p), "cv_selected": kl_score(t[s], p[s]) if s.any() else np.nan,
            "cv_10plus": kl_score(t[h], p[h]) if h.any() else np.nan,
        }  # fmt: skip

    rows = []
    for r in runs:  # each run over all its own OOF EEGs
        own = r.oof.set_index("eeg_id")
        rows.append({"run": r.name, "eegs": len(own),
                     **scores(own[list(VOTE_COLUMNS)].to_numpy(), own.index)})  # fmt: skip
    method, weights = fit_blend([p[selected] for p in preds], targets[selected])
    in_sample = scores(blend(preds, weights, method))
    if len(runs) == 1:
        nested = dict(in_sample)  # nothing is fitted to a single run
    elif len(np.unique(folds)) < 2:
        nested = dict.fromkeys(in_sample, np.nan)
        notes.append("the OOF covers one fold: the blend cannot be scored out of sample (nested "
                     "CV needs at least 2 folds); its CV is unknown")  # fmt: skip
    else:
        nested = scores(nested_blend(preds, targets, folds, selected))
    single = min(scores(p)["cv"] for p in preds)
    table = pd.DataFrame(rows)
    table["weight"] = weights
    table.loc[len(table)] = {"run": f"blend ({method}), nested CV", "eegs": len(ids), **nested,
                             "weight": weights.sum()}  # fmt: skip
    table.loc[len(table)] = {"run": f"blend ({method}), in-sample", "eegs": len(ids),
                             **in_sample, "weight": weights.sum()}  # fmt: skip
    prior = all_targets.mean(axis=0).to_numpy()
    submission, fallback = None, {}
    if all(r.test is not None for r in runs):
        names = [f"{r.name}/test.parquet" for r in runs]
        submission = blend_frames([r.test for r in runs], names, weights, method)
        for r in runs:
            fallback.update({int(k): v for k, v in r.test_info.get("fallback", {}).items()})
        if fallback:
            # An EEG some run could not read gets the ensemble's class prior, not a blend of
            # one run's guess with another's prior.
            submission.loc[submission["eeg_id"].isin(list(fallback)), list(VOTE_COLUMNS)] = prior
            notes.append(f"{len(fallback)} test EEGs could not be read and get the class prior: "
                         f"{sorted(fallback)[:10]}")  # fmt: skip
    else:
        notes.append("some runs have no test.parquet (run predict.py): no submission written")
    return EnsembleResult(
        table, method, dict(zip([r.name for r in runs], weights.tolist(), strict=True)),
        nested["cv"], nested["cv_selected"], in_sample["cv"], single, select, tta, prior,
        submission, notes, fallback,
    )  # fmt: skip


def train_rows_of(run: str | Path) -> pd.DataFrame:
    """The labelled rows a run was trained on (its config's data folder)."""
    return HMSData(resolve_data_dir(run_config(run)), "train").rows


def write_report(
    result: EnsembleResult, path: Path, runs: list[str], submission: Path | None = None
) -> None:
    """The JSON report beside a submission; ``blend_cv`` is the nested (out-of-sample) CV."""
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "runs": runs,
        "method": result.method, "weights": result.weights,
        "blend_cv": _finite(result.cv), "blend_cv_selected": _finite(result.cv_selected),
        "blend_cv_in_sample": result.cv_in_sample, "best_single_cv": result.best_single,
        "select_min_votes": result.select_min_votes, "tta": result.tta,
        "class_prior": result.class_prior.tolist(),
        "fallback": {str(k): v for k, v in result.fallback.items()},
        "table": result.table.replace({np.nan: None}).to_dict(orient="records"),
        "notes": result.notes,
    }  # fmt: skip
    if submission is not None:
        report["submission"] = submission.name
        report["submission_sha256"] = hashlib.sha256(submission.read_bytes()).hexdigest()
    write_json(path, report)


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else value
