"""Blending runs from their OOF and test files and the truth file of the data they were trained
on (:mod:`hmsbrain.core.truth`) alone: no model is ever loaded, no data folder opened.

Weights are chosen to minimise the official KL (the log loss, for hard labels) on the OOF units
that every run covers and that the runs' selection subset keeps (``train.select_min_votes``: all
units, or those with at least N votes). The method is ``auto`` by default: non-negative,
sum-to-one weights on probabilities (weighted mean, ``linear``) and in log space (weighted
geometric mean, renormalised, ``log``) are both tried and the better is kept. ``logit-bias``
(the 3rd place HMS blend) is a softmax of non-negative weights on the runs' log-probabilities
plus a per-class bias: the weights need not sum to one (their sum is a temperature) and the bias
recalibrates the class prior; it is a convex fit (a multinomial logistic regression on fixed
features), done exactly with its gradient.

The blend's CV is scored out of sample, by nested cross-validation over the folds the OOF files
record: for each fold, weights and method are fitted on the other folds' units and scored on
the held-out one. The in-sample figure (fitted and scored on the same units, which flatters the
blend more the more runs it has) is reported beside it, named as such, and never as the CV.

Runs are blended only when they were predicted the same way: OOF and test with the same TTA
setting (inside each run and across runs), the same selection subset, the same classes and the
same folds. Every table also shows the classical baselines of the first run that has them
(band power, tangent space: ``train.baseline``), fitted in the same folds. With
``with_baselines``, every run's baselines are blend members too; they have OOF predictions only,
so such a blend is scored in CV (nested, as any blend) and no submission is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.special

from hmsbrain.atomic import write_json
from hmsbrain.core.fallback import apply_fallback
from hmsbrain.core.metrics import METRIC_EPSILON, classification_metrics, kl_score
from hmsbrain.core.predictions import probability_columns, read_predictions
from hmsbrain.core.truth import Truth, read_truth
from hmsbrain.runs import (
    BASELINE_LABELS,
    OOF_FILE,
    SUMMARY_FILE,
    baseline_oof_file,
    fold_dirs,
    fold_summary,
    run_config,
)

HIGH_VOTES = 10  # the "high-quality" units top HMS teams report CV on
METHODS = ("linear", "log", "logit-bias")
AUTO_METHODS = ("linear", "log")  # what --method auto chooses between
# Classification figures shown in the table for hard labels.
TABLE_METRICS = ("balanced_accuracy", "accuracy", "macro_f1", "roc_auc")


class EnsembleError(ValueError):
    """Runs that cannot be blended as they are; the message says which and why."""


@dataclass
class RunPredictions:
    name: str
    oof: pd.DataFrame  # id, fold, classes; one row per unit
    test: pd.DataFrame | None
    tta: bool = True
    select_min_votes: int = 0
    test_info: dict = field(default_factory=dict)  # the test file's metadata
    # Each baseline's OOF (same folds, same schema) by its train.baseline name.
    baselines: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def id_column(self) -> str:
        return str(self.oof.columns[0])

    @property
    def classes(self) -> list[str]:
        return probability_columns(self.oof)


def _concat_oof(run: Path, name: str) -> tuple[pd.DataFrame, list[dict]] | None:
    paths = [f / name for f in fold_dirs(run)]
    if not all(p.is_file() for p in paths):
        return None
    parts = [read_predictions(p) for p in paths]
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    id_column = frame.columns[0]
    if frame[id_column].duplicated().any():
        raise EnsembleError(f"{run}: a {id_column} appears in the {name} of two folds")
    return frame.sort_values(id_column, ignore_index=True), [p.meta for p in parts]


def load_run(run: str | Path) -> RunPredictions:
    """A run's OOF (every fold) and test predictions, checked to be predicted the same way."""
    run = Path(run)
    found = _concat_oof(run, OOF_FILE)
    if found is None:
        raise FileNotFoundError(f"{run}: a fold has no {OOF_FILE}; finish training it")
    oof, metas = found
    # OOF files written before the setting was recorded were predicted without TTA.
    oof_tta = {bool(m.get("tta", False)) for m in metas}
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
        test = predicted.frame.sort_values(predicted.frame.columns[0], ignore_index=True)
    baselines = {}
    for name in BASELINE_LABELS:
        found = _concat_oof(run, baseline_oof_file(name))
        if found is not None:
            baselines[name] = found[0]
    select = run_config(run).train.select_min_votes
    return RunPredictions(run.name, oof, test, tta, select, info, baselines)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _log_probs(stack: np.ndarray) -> np.ndarray:
    return np.log(np.clip(stack, METRIC_EPSILON, 1.0))


def blend(
    preds: list[np.ndarray], weights: np.ndarray, method: str, bias: np.ndarray | None = None
) -> np.ndarray:
    """Weighted mean of probability arrays (``linear``), their weighted geometric mean
    (``log``), or softmax(sum of weights x log-probabilities + ``bias``) (``logit-bias``)."""
    stack = np.stack(preds)
    if method == "logit-bias":
        if bias is None:
            raise EnsembleError("a logit-bias blend needs its per-class bias")
        return scipy.special.softmax(
            np.tensordot(weights, _log_probs(stack), axes=1) + bias, axis=1
        )
    if method == "linear":
        out = np.tensordot(weights, stack, axes=1)
    else:
        out = np.exp(np.tensordot(weights, _log_probs(stack), axes=1))
    return out / out.sum(axis=1, keepdims=True)


@dataclass
class Blend:
    """A fitted blend: its method, one weight per run and, for ``logit-bias``, a bias per class."""

    method: str
    weights: np.ndarray
    bias: np.ndarray | None = None

    def apply(self, preds: list[np.ndarray]) -> np.ndarray:
        return blend(preds, self.weights, self.method, self.bias)


def blend_frames(
    frames: list[pd.DataFrame],
    names: list[str],
    weights: np.ndarray,
    method: str,
    bias: np.ndarray | None = None,
) -> pd.DataFrame:
    """Blend per-run prediction frames (id + class columns) that cover the same units;
    ensemble.py and the Kaggle kernel both blend test predictions through this."""
    id_column = frames[0].columns[0]
    classes = probability_columns(frames[0])
    frames = [f.sort_values(id_column, ignore_index=True) for f in frames]
    ids = frames[0][id_column].to_numpy()
    for name, frame in zip(names[1:], frames[1:], strict=True):
        if not np.array_equal(frame[id_column].to_numpy(), ids):
            raise EnsembleError(f"{name}: predicts other units than {names[0]}")
    out = pd.DataFrame(
        blend([f[classes].to_numpy() for f in frames], weights, method, bias), columns=classes
    )
    out.insert(0, id_column, ids)
    return out


def blend_ran(
    frames: list[pd.DataFrame],
    names: list[str],
    weights: np.ndarray,
    method: str,
    bias: np.ndarray | None,
    ran: list[bool],
) -> pd.DataFrame | None:
    """:func:`blend_frames` of the runs that ran, None when none did.

    A run that no runtime could run predicted nothing: its frame is its class prior, and at its
    full weight it would pull every unit towards that prior. It is left out, and the weights of
    the others are scaled to the sum of all: renormalised for ``linear`` and ``log`` (their sum
    is one), the same temperature for ``logit-bias``. Runs that ran but weigh nothing share that
    sum equally: their predictions still beat the prior."""
    kept = [i for i, r in enumerate(ran) if r]
    if not kept:
        return None
    weights = np.asarray(weights, dtype=float)
    part = weights[kept]
    total = weights.sum()
    scaled = part * total / part.sum() if part.sum() > 0 else np.full(len(kept), total / len(kept))
    return blend_frames([frames[i] for i in kept], [names[i] for i in kept], scaled, method, bias)


def fit_weights(preds: list[np.ndarray], target: np.ndarray, method: str) -> np.ndarray:
    """Non-negative, sum-to-one weights minimising OOF KL (SLSQP from equal weights)."""
    n = len(preds)
    if n == 1:
        return np.ones(1)
    result = scipy.optimize.minimize(
        lambda w: kl_score(target, blend(preds, np.clip(w, 0, None), method)),
        np.full(n, 1.0 / n),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
    )
    if not result.success:
        raise EnsembleError(
            f"fitting {method} blend weights on {len(target)} units failed: {result.message}"
        )
    weights = np.clip(result.x, 0.0, None)
    return weights / weights.sum()


def fit_logit_bias(preds: list[np.ndarray], target: np.ndarray) -> Blend:
    """Non-negative weights on the log-probabilities and a per-class bias minimising OOF KL.

    KL(target || softmax(z)) is convex in z, and z is linear in (weights, bias), so L-BFGS-B
    with the exact gradient finds the one optimum from the geometric mean (equal weights, no
    bias). A shift of every class's bias changes nothing; the bias returned sums to zero."""
    logs = _log_probs(np.stack(preds))  # (runs, units, classes)
    n, rows = len(preds), len(target)
    target = np.asarray(target, np.float64)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        log_p = scipy.special.log_softmax(
            np.tensordot(params[:n], logs, axes=1) + params[n:], axis=1
        )
        # The target's entropy is a constant: the cross-entropy has the KL's optimum.
        value = -float((target * log_p).sum()) / rows
        residual = (np.exp(log_p) - target) / rows
        grad = np.concatenate([np.einsum("ruc,uc->r", logs, residual), residual.sum(axis=0)])
        return value, grad

    start = np.concatenate([np.full(n, 1.0 / n), np.zeros(target.shape[1])])
    result = scipy.optimize.minimize(
        loss,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, None)] * n + [(None, None)] * target.shape[1],
        options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-9},
    )
    if not result.success:
        raise EnsembleError(
            f"fitting logit-bias blend weights on {rows} units failed: {result.message}"
        )
    bias = result.x[n:]
    return Blend("logit-bias", result.x[:n], bias - bias.mean())


def fit_blend(preds: list[np.ndarray], target: np.ndarray, method: str = "auto") -> Blend:
    """The blend of ``method`` fitted on ``target``'s rows only; ``auto``: the better of
    :data:`AUTO_METHODS` there."""
    if method == "logit-bias":
        return fit_logit_bias(preds, target)
    if method != "auto":
        return Blend(method, fit_weights(preds, target, method))
    fitted = [Blend(m, fit_weights(preds, target, m)) for m in AUTO_METHODS]
    return min(fitted, key=lambda b: kl_score(target, b.apply(preds)))


def nested_blend(
    preds: list[np.ndarray],
    target: np.ndarray,
    folds: np.ndarray,
    fit_rows: np.ndarray,
    method: str = "auto",
) -> np.ndarray:
    """Out-of-sample blend of every row: each fold blended as ``method`` is fitted (the method
    itself too, for ``auto``) on the ``fit_rows`` of the other folds."""
    out = np.empty_like(preds[0], dtype=np.float64)
    for k in np.unique(folds):
        held = folds == k
        train = ~held & fit_rows
        if not train.any():
            raise EnsembleError(f"no unit outside fold {k} to fit the blend on")
        fitted = fit_blend([p[train] for p in preds], target[train], method)
        out[held] = fitted.apply([p[held] for p in preds])
    return out


@dataclass
class EnsembleResult:
    table: pd.DataFrame  # per run, the baseline and the blend: units, CV figures, weight
    method: str
    weights: dict[str, float]
    cv: float  # nested (out of sample), all common units; NaN where it cannot be formed
    cv_selected: float  # nested, on the selection subset
    cv_in_sample: float  # fitted and scored on the same units: optimistic, for comparison only
    best_single: float
    select_min_votes: int
    tta: bool
    class_prior: np.ndarray  # mean unit target of the train rows: the fallback prediction
    submission: pd.DataFrame | None
    notes: list[str]
    fallback: dict[object, str] = field(default_factory=dict)  # test unit id -> why
    metrics: dict[str, object] = field(default_factory=dict)  # nested blend, hard labels
    bias: np.ndarray | None = None  # per class, for the logit-bias method


def _common_folds(runs: list[RunPredictions], ids: np.ndarray) -> np.ndarray:
    """The fold of each common unit, which every run must agree on (one split for all)."""
    folds = [r.oof.set_index(r.id_column).loc[ids, "fold"].to_numpy() for r in runs]
    for r, f in zip(runs[1:], folds[1:], strict=True):
        if not np.array_equal(f, folds[0]):
            raise EnsembleError(
                f"{r.name} and {runs[0].name} put the same units in different folds; blending "
                "them would score units that a run trained on. Train every run on the same split"
            )
    return folds[0]


def _one(values: list, what: str, runs: list[RunPredictions]) -> object:
    if len({str(v) for v in values}) > 1:
        listed = ", ".join(f"{r.name}: {v}" for r, v in zip(runs, values, strict=True))
        raise EnsembleError(f"the runs differ in {what} ({listed}); blend runs made alike")
    return values[0]


@dataclass
class _Scoring:
    """The figures of predictions for units of ``truth``, on all of them and on subsets."""

    truth: Truth  # unit targets of the whole training data
    select: int

    def scores(self, ids: np.ndarray, pred: np.ndarray) -> dict[str, float]:
        t = self.truth.targets.loc[ids].to_numpy()
        votes = self.truth.votes.loc[ids].to_numpy()
        s, h = votes >= self.select, votes >= HIGH_VOTES
        out = {
            "cv": kl_score(t, pred),
            "cv_selected": kl_score(t[s], pred[s]) if s.any() else np.nan,
        }
        if not self.truth.hard:
            out["cv_10plus"] = kl_score(t[h], pred[h]) if h.any() else np.nan
        else:
            found = classification_metrics(t, pred, tuple(self.truth.classes))
            out.update({k: found.get(k, np.nan) for k in TABLE_METRICS})
        return out


def _baseline_name(name: str, run: RunPredictions) -> str:
    return f"{BASELINE_LABELS[name]} ({run.name}'s folds)"


def baseline_members(runs: list[RunPredictions]) -> list[RunPredictions]:
    """Each run's baselines as blend members of their own: OOF only (they predict no test
    data), made without TTA, on the run's selection subset."""
    return [
        RunPredictions(_baseline_name(name, r), frame, None, False, r.select_min_votes)
        for r in runs
        for name, frame in r.baselines.items()
    ]


def ensemble(
    runs: list[RunPredictions], truth: Truth, with_baselines: bool = False, method: str = "auto"
) -> EnsembleResult:
    """Score every run on its OOF, fit the blend of ``method`` (:data:`METHODS`, or ``auto``)
    on the common units, score it by nested CV, blend the test files. ``truth`` holds the
    targets of the data the runs were trained on (:func:`truth_of_run`). ``with_baselines``
    makes every run's baselines blend members too (:func:`baseline_members`); that blend has no
    test predictions to blend."""
    if method != "auto" and method not in METHODS:
        raise EnsembleError(f"--method {method!r} is not auto or one of {list(METHODS)}")
    tta = bool(_one([r.tta for r in runs], "TTA (train.tta)", runs))
    select = int(_one([r.select_min_votes for r in runs], "train.select_min_votes", runs))
    classes = list(_one([r.classes for r in runs], "classes", runs))  # type: ignore[call-overload]
    if classes != truth.classes:
        raise EnsembleError(
            f"the runs predict classes {classes}, their training data has {truth.classes}"
        )
    notes = []
    # The baselines join after the checks of TTA and selection, which are the runs': made
    # without TTA, they predict OOF only, never a test file the weights would be applied to.
    members = [*runs, *(baseline_members(runs) if with_baselines else [])]
    if with_baselines and len(members) == len(runs):
        notes.append("no run has baseline OOF files (train.baseline): the runs are blended alone")
    id_column = runs[0].id_column
    common = set(runs[0].oof[id_column])
    for r in members[1:]:
        common &= set(r.oof[id_column])
    if any(set(r.oof[id_column]) != common for r in members):
        sizes = ", ".join(f"{r.name}: {len(r.oof)}" for r in members)
        notes.append(
            f"runs cover different OOF units ({sizes}); blending on the {len(common)} they share"
        )
    ids = np.array(sorted(common))
    scoring = _Scoring(truth, select)
    targets = truth.targets.loc[ids].to_numpy()
    selected = (truth.votes.loc[ids] >= select).to_numpy()
    folds = _common_folds(members, ids)
    preds = [r.oof.set_index(id_column).loc[ids, classes].to_numpy() for r in members]

    rows = []
    for r in members:  # each run over all its own OOF units
        own = r.oof.set_index(id_column)
        rows.append(
            {
                "run": r.name,
                "units": len(own),
                **scoring.scores(own.index.to_numpy(), own[classes].to_numpy()),
            }
        )
    # Blended, the baselines are rows above; otherwise those of the first run that has them,
    # shown beside the runs without a weight.
    shown = None if with_baselines else next((r for r in runs if r.baselines), None)
    if shown is not None:
        for name, frame in shown.baselines.items():
            own = frame.set_index(id_column)
            rows.append(
                {
                    "run": _baseline_name(name, shown),
                    "units": len(own),
                    **scoring.scores(own.index.to_numpy(), own[classes].to_numpy()),
                }
            )
    fitted = fit_blend([p[selected] for p in preds], targets[selected], method)
    weights = fitted.weights
    in_sample = scoring.scores(ids, fitted.apply(preds))
    if len(members) == 1 and fitted.method != "logit-bias":
        nested = dict(in_sample)  # nothing is fitted to a single run's probabilities
    elif len(np.unique(folds)) < 2:
        nested = dict.fromkeys(in_sample, np.nan)
        notes.append(
            "the OOF covers one fold: the blend cannot be scored out of sample (nested "
            "CV needs at least 2 folds); its CV is unknown"
        )
    else:
        nested = scoring.scores(ids, nested_blend(preds, targets, folds, selected, method))
    single = min(scoring.scores(ids, p)["cv"] for p in preds)
    table = pd.DataFrame(rows)
    table["weight"] = [*weights, *[np.nan] * (len(rows) - len(members))]
    for label, figures in (("nested CV", nested), ("in-sample", in_sample)):
        table.loc[len(table)] = {
            "run": f"blend ({fitted.method}), {label}",
            "units": len(ids),
            **figures,
            "weight": weights.sum(),
        }
    prior = truth.targets.mean(axis=0).to_numpy()
    submission, fallback = None, {}
    if all(r.test is not None for r in members):
        names = [f"{r.name}/test.parquet" for r in runs]
        ran = [r.test_info.get("no_runtime") is None for r in runs]
        tests = [r.test for r in runs]
        submission = blend_ran(tests, names, weights, fitted.method, fitted.bias, ran)
        left_out = [r.name for r, did in zip(runs, ran, strict=True) if not did]
        if left_out:
            notes.append(
                f"left out of the test blend, no runtime could run them: {', '.join(left_out)}; "
                "the weights are renormalised over the others"
            )
        if submission is None:  # every test file is a class prior: the ensemble's, below
            submission = tests[0][[id_column, *classes]].copy()
            fallback.update(dict.fromkeys(submission[id_column], "no runtime could run any run"))
        for r in runs:
            fallback.update(r.test_info.get("fallback", {}))
        if fallback:
            # A unit some run could not read gets the ensemble's class prior, not a blend of
            # one run's guess with another's prior.
            apply_fallback(submission, fallback, prior, classes)
            notes.append(
                f"{len(fallback)} test units could not be read and get the class prior: "
                f"{sorted(fallback)[:10]}"
            )
    elif len(members) > len(runs):
        notes.append(
            "the baselines have out-of-fold predictions only (no test.parquet): the blend with "
            "them is scored in CV only and no submission is written"
        )
    else:
        notes.append("some runs have no test.parquet (run predict.py): no submission written")
    return EnsembleResult(
        table,
        fitted.method,
        dict(zip([r.name for r in members], weights.tolist(), strict=True)),
        nested["cv"],
        nested["cv_selected"],
        in_sample["cv"],
        single,
        select,
        tta,
        prior,
        submission,
        notes,
        fallback,
        {k: nested[k] for k in TABLE_METRICS if k in nested},
        fitted.bias,
    )


def truth_of_run(run: str | Path) -> Truth:
    """The unit targets of the data ``run`` was trained on: the truth file its fold summaries
    name (written by training; no data folder is opened)."""
    paths = set()
    for fold in fold_dirs(run):
        summary = fold_summary(fold)
        if "truth" not in summary:
            raise FileNotFoundError(
                f"{fold / SUMMARY_FILE}: no 'truth' (the unit-targets file training writes since "
                "ensembles stopped reading the data folder); retrain the fold"
            )
        paths.add(summary["truth"])
    if len(paths) > 1:
        raise EnsembleError(f"{run}: its folds were trained on different data ({sorted(paths)})")
    path = Path(paths.pop())
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: file not found (the unit targets {run} was trained on, written by "
            "training beside its folds file); retrain the run"
        )
    return read_truth(path)


def write_report(
    result: EnsembleResult, path: Path, runs: list[str], submission: Path | None = None
) -> None:
    """The JSON report beside a submission; ``blend_cv`` is the nested (out-of-sample) CV."""
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": runs,
        "method": result.method,
        "weights": result.weights,
        # Per class (the truth's order), for method logit-bias; None for the others.
        "bias": None if result.bias is None else result.bias.tolist(),
        "blend_cv": _finite(result.cv),
        "blend_cv_selected": _finite(result.cv_selected),
        "blend_cv_in_sample": result.cv_in_sample,
        "best_single_cv": result.best_single,
        "blend_metrics": {k: _finite(v) for k, v in result.metrics.items()},
        "select_min_votes": result.select_min_votes,
        "tta": result.tta,
        "class_prior": result.class_prior.tolist(),
        "fallback": {str(k): v for k, v in result.fallback.items()},
        "table": result.table.replace({np.nan: None}).to_dict(orient="records"),
        "notes": result.notes,
    }
    if submission is not None:
        report["submission"] = submission.name
        report["submission_sha256"] = hashlib.sha256(submission.read_bytes()).hexdigest()
    write_json(path, report)


def _finite(value: object) -> object:
    return None if isinstance(value, float) and np.isnan(value) else value
