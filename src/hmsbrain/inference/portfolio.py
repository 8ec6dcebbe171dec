"""A portfolio's blend, its report and its predictions, from the members' files alone: blending
opens no model and no data folder (the ensemble's rule), predicting opens each member's.

**The blend.** Every member's out-of-fold predictions are first calibrated: a temperature and a
per-class bias on its log-probabilities, fitted by log loss. That repairs an over-confident
network and brings members trained with class weights back to the true class frequencies. A
member whose calibrated predictions, fitted on the other folds, score no better than the class
prior gets weight 0. The class prior is a member too, so the blend can always fall back on it.
The weights are then chosen on those cross-fitted predictions (``portfolio.blend``):

- ``hill_climb`` (default): Caruana et al.'s ensemble selection (ICML 2004), as Kaggle teams do:
  start from the best member, then repeatedly add (with replacement) the member that most lowers
  the blend's log loss, until none does. A weight is a count, so few members get one, and it
  stays close to the best member where the data are too few to tell more apart;
- ``weights``: non-negative weights summing to one, by SLSQP;
- ``best``: the best member alone.

**The figures are out of sample.** The blend's CV is nested: for each fold, calibration,
eligibility and weights are fitted on the other folds' units and scored on this one
(``oof.parquet`` holds these predictions). The blend applied to new data is fitted on every unit.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.special

from hmsbrain.atomic import atomic_path, write_json, write_text
from hmsbrain.config import load_config
from hmsbrain.core.metrics import METRIC_EPSILON, classification_metrics, kl_score
from hmsbrain.core.predictions import FOLD, FOLD_AVERAGE, write_predictions
from hmsbrain.core.truth import Truth, read_truth
from hmsbrain.data.base import DataError
from hmsbrain.data.dataset import EpochDataset
from hmsbrain.data.sources import open_dataset
from hmsbrain.dsp.filters import resample
from hmsbrain.inference.ensemble import EnsembleError, fit_weights, load_run
from hmsbrain.models.classical import ClassicalError, load_classical
from hmsbrain.runs import (
    BLEND_FILE,
    CLASSICAL_FILE,
    CONFIG_FILE,
    PORTFOLIO_FILE,
    fold_dirs,
    fold_summary,
)

log = logging.getLogger(__name__)

PRIOR = "prior"
HILL_ROUNDS = 50  # most additions of hill climbing (it stops earlier when none helps)
MAX_SHARPEN = 5.0  # the calibration may sharpen a member's log-probabilities this much at most
PERMUTATIONS = 2000  # label permutations of the chance test
CHANCE_ALPHA = 0.05  # the chance test's level, before Bonferroni over the members tested
# The smallest effect the report calls a signal: log loss this share below the class prior's.
# On thousands of epochs a balanced accuracy of 0.54 clears the permutation test while the
# probabilities stay within 0.5% of the prior's (the N170 headset set): real, but nothing to rely
# on, so "above chance" asks for both.
MIN_GAIN = 0.01


@dataclass
class Calibration:
    """``softmax(weight * log p + bias)``: an inverse temperature and a per-class bias."""

    weight: float
    bias: np.ndarray

    def apply(self, probs: np.ndarray) -> np.ndarray:
        logs = np.log(np.clip(probs, METRIC_EPSILON, 1.0))
        return scipy.special.softmax(self.weight * logs + self.bias, axis=1)


def fit_calibration(probs: np.ndarray, target: np.ndarray) -> Calibration:
    """The calibration minimising log loss on ``target``, with a weak pull (a unit Gaussian
    prior on the temperature's inverse around 1 and on each bias around 0, the whole worth one
    unit) so a handful of units cannot send it to infinity on a separable fold."""
    logs = np.log(np.clip(probs, METRIC_EPSILON, 1.0))
    target = np.asarray(target, np.float64)
    n, k = target.shape

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[0], params[1:]
        log_p = scipy.special.log_softmax(w * logs + b, axis=1)
        residual = (np.exp(log_p) - target) / n
        value = -float((target * log_p).sum()) / n + ((w - 1) ** 2 + (b**2).sum()) / (2 * n)
        grad = np.concatenate([[(residual * logs).sum() + (w - 1) / n], residual.sum(0) + b / n])
        return value, grad

    result = scipy.optimize.minimize(
        loss,
        np.concatenate([[1.0], np.zeros(k)]),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, MAX_SHARPEN)] + [(None, None)] * k,
    )
    bias = result.x[1:]
    return Calibration(float(result.x[0]), bias - bias.mean())


def cross_fitted(probs: np.ndarray, target: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """``probs`` calibrated out of fold: each fold's units by a calibration fitted on the other
    folds' (in-sample when there is one fold only)."""
    if len(np.unique(folds)) < 2:
        return fit_calibration(probs, target).apply(probs)
    out = np.empty_like(probs, dtype=np.float64)
    for k in np.unique(folds):
        held = folds == k
        out[held] = fit_calibration(probs[~held], target[~held]).apply(probs[held])
    return out


def hill_climb(preds: list[np.ndarray], target: np.ndarray) -> np.ndarray:
    """Caruana's ensemble selection with replacement on the mean of probabilities: weights
    (counts over their sum), starting from the member of lowest log loss."""
    counts = np.zeros(len(preds))
    best = int(np.argmin([kl_score(target, p) for p in preds]))
    counts[best], blend = 1, np.asarray(preds[best], np.float64)
    loss = kl_score(target, blend)
    for _ in range(HILL_ROUNDS):
        total = counts.sum()
        trials = [(blend * total + p) / (total + 1) for p in preds]
        scores = [kl_score(target, t) for t in trials]
        pick = int(np.argmin(scores))
        if scores[pick] >= loss - 1e-9:
            break
        counts[pick] += 1
        blend, loss = trials[pick], scores[pick]
    return counts / counts.sum()


@dataclass
class PortfolioBlend:
    """A fitted blend: each member's calibration and weight (the prior's uncalibrated)."""

    method: str
    calibrations: dict[str, Calibration]
    weights: dict[str, float]  # every member, 0 for those left out
    eligible: list[str]  # members that beat the prior out of fold, calibrated

    def apply(self, preds: dict[str, np.ndarray]) -> np.ndarray:
        out = 0.0
        for name, weight in self.weights.items():
            if weight > 0:
                member = preds[name]
                calibrated = member if name == PRIOR else self.calibrations[name].apply(member)
                out = out + weight * calibrated
        return np.asarray(out) / np.asarray(out).sum(axis=1, keepdims=True)

    def to_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "weights": self.weights,
            "eligible": self.eligible,
            "calibrations": {
                n: {"weight": c.weight, "bias": c.bias.tolist()}
                for n, c in self.calibrations.items()
            },
        }

    @classmethod
    def from_json(cls, raw: dict) -> PortfolioBlend:
        calibrations = {
            n: Calibration(float(c["weight"]), np.asarray(c["bias"], np.float64))
            for n, c in raw["calibrations"].items()
        }
        return cls(raw["method"], calibrations, dict(raw["weights"]), list(raw["eligible"]))


def fit_portfolio_blend(
    preds: dict[str, np.ndarray], target: np.ndarray, folds: np.ndarray, method: str
) -> PortfolioBlend:
    """The blend of ``preds`` (member -> probabilities, :data:`PRIOR` among them) fitted on
    ``target``; ``folds`` (each unit's) cross-fit the calibrations the weights are chosen on."""
    members = [n for n in preds if n != PRIOR]
    calibrations = {n: fit_calibration(preds[n], target) for n in members}
    fitted = {n: cross_fitted(preds[n], target, folds) for n in members}
    prior_loss = kl_score(target, preds[PRIOR])
    eligible = [n for n in members if kl_score(target, fitted[n]) < prior_loss]
    names = [PRIOR, *eligible]
    candidates = [preds[PRIOR], *(fitted[n] for n in eligible)]
    if method == "hill_climb":
        chosen = hill_climb(candidates, target)
    elif method == "weights":
        chosen = fit_weights(candidates, target, "linear")
    else:
        chosen = np.eye(len(names))[int(np.argmin([kl_score(target, p) for p in candidates]))]
    weights = dict.fromkeys(preds, 0.0) | dict(zip(names, chosen.tolist(), strict=True))
    return PortfolioBlend(method, calibrations, weights, eligible)


def nested_blend(
    preds: dict[str, np.ndarray], target: np.ndarray, folds: np.ndarray, method: str
) -> np.ndarray:
    """Every unit blended by a blend fitted on the other folds' units only."""
    out = np.empty_like(target, dtype=np.float64)
    for k in np.unique(folds):
        held = folds == k
        blend = fit_portfolio_blend(
            {n: p[~held] for n, p in preds.items()}, target[~held], folds[~held], method
        )
        out[held] = blend.apply({n: p[held] for n, p in preds.items()})
    return out


def fold_priors(truth: Truth, ids: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """The prior member's out-of-fold predictions: each unit gets the mean target of the units
    of the other folds (what a fold's training data knows of the classes)."""
    targets = truth.targets.loc[ids].to_numpy(np.float64)
    out = np.empty_like(targets)
    for k in np.unique(folds):
        held = folds == k
        out[held] = targets[~held].mean(axis=0)
    return out


def figures(
    target: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    hard: bool,
    scale: np.ndarray | None = None,
) -> dict:
    """Log loss, and for hard labels accuracy and balanced accuracy of the decision
    ``argmax(probs * scale)`` (:func:`decision_scale`; None: ``argmax(probs)``)."""
    out: dict[str, float] = {"log_loss": kl_score(target, probs)}
    if hard:
        decided = probs if scale is None else probs * scale
        # Renormalised: the metrics that read probabilities (AUC) want rows that sum to one.
        decided = decided / decided.sum(axis=1, keepdims=True)
        found = classification_metrics(target, decided, tuple(classes))
        out["accuracy"] = float(found["accuracy"])  # type: ignore[arg-type]
        out["balanced_accuracy"] = float(found["balanced_accuracy"])  # type: ignore[arg-type]
    return out


def decision_scale(class_weights: str, prior: np.ndarray) -> np.ndarray | None:
    """How the blend's calibrated probabilities become labels: with ``train.class_weights=
    balanced`` each class counts the same, so the label is ``argmax p(c | x) / prior(c)`` (the
    decision that maximises balanced accuracy, which is what the members were trained for),
    while the probabilities stay calibrated to the true frequencies; else ``argmax p``."""
    return 1.0 / np.maximum(prior, METRIC_EPSILON) if class_weights == "balanced" else None


def chance_p_value(
    target: np.ndarray, probs: np.ndarray, scale: np.ndarray | None = None, seed: int = 0
) -> float:
    """One-sided p-value of the balanced accuracy of the decisions of ``probs`` (see
    :func:`figures`) against label permutations: how often shuffled labels score as well."""
    from sklearn.metrics import balanced_accuracy_score

    decided = probs if scale is None else probs * scale
    truth, predicted = target.argmax(axis=1), decided.argmax(axis=1)
    observed = balanced_accuracy_score(truth, predicted)
    rng = np.random.default_rng(seed)
    as_good = sum(
        balanced_accuracy_score(rng.permutation(truth), predicted) >= observed
        for _ in range(PERMUTATIONS)
    )
    return (1 + as_good) / (1 + PERMUTATIONS)


@dataclass
class PortfolioResult:
    """A portfolio's blend and every figure of its report."""

    table: pd.DataFrame  # a row per member (trained or skipped), the blend, the prior, chance
    blend: PortfolioBlend
    nested: dict[str, float]  # the blend's out-of-sample figures
    beats_chance: list[str]  # members (and "blend") above chance, by the test of the report
    report: Path


def blend_portfolio(root: str | Path) -> PortfolioResult:
    """Blend the members of the portfolio at ``root`` from their OOF files: the nested CV,
    the blend fitted on every unit, ``blend.json``, ``oof.parquet`` (the nested blend),
    ``report.md``, ``report.json`` and ``members.png``."""
    root = Path(root)
    portfolio = json.loads((root / PORTFOLIO_FILE).read_text())
    members = [m for m in portfolio["members"] if m["status"] == "trained"]
    truth = read_truth(portfolio["truth"])
    runs = {m["name"]: load_run(root / m["name"]) for m in members}
    id_column, classes = truth.id_column, truth.classes
    ids = np.array(sorted(truth.targets.index))
    for name, run in runs.items():
        if set(run.oof[id_column]) != set(ids):
            raise EnsembleError(
                f"{root / name}: its OOF covers {len(run.oof)} of the {len(ids)} units; train "
                "every fold of every member (--fold all) before blending"
            )
    first = next(iter(runs.values()), None)
    if first is None:
        raise EnsembleError(f"{root}: no member was trained; nothing to blend")
    folds = first.oof.set_index(id_column).loc[ids, FOLD].to_numpy()
    target = truth.targets.loc[ids].to_numpy(np.float64)
    preds = {PRIOR: fold_priors(truth, ids, folds)}
    for name, run in runs.items():
        preds[name] = run.oof.set_index(id_column).loc[ids, classes].to_numpy(np.float64)
    method = portfolio["blend"]
    nested = nested_blend(preds, target, folds, method)
    blend = fit_portfolio_blend(preds, target, folds, method)
    oof = pd.DataFrame(nested, columns=classes)
    oof.insert(0, id_column, ids)
    oof.insert(1, FOLD, folds)
    write_predictions(oof, root / "oof.parquet", {"kind": "oof", "portfolio": True, "tta": False})
    result = _report(root, portfolio, truth, target, preds, nested, blend)
    write_json(
        root / BLEND_FILE,
        {
            **blend.to_json(),
            "class_prior": truth.targets.mean(axis=0).tolist(),
            "class_weights": portfolio["class_weights"],
            "classes": classes,
            "nested": result.nested,
        },
    )
    return result


def _report(
    root: Path,
    portfolio: dict,
    truth: Truth,
    target: np.ndarray,
    preds: dict[str, np.ndarray],
    nested: np.ndarray,
    blend: PortfolioBlend,
) -> PortfolioResult:
    classes, hard = truth.classes, truth.hard
    scale = decision_scale(portfolio["class_weights"], truth.targets.mean(axis=0).to_numpy())
    prior_figures = figures(target, preds[PRIOR], classes, hard, scale)
    rows, tested = [], {}
    for m in portfolio["members"]:
        row: dict[str, object] = {"member": m["name"], "kind": m["kind"], "seconds": m["seconds"]}
        if m["status"] == "skipped":
            rows.append({**row, "note": f"skipped: {m['note']}"})
            continue
        found = figures(target, preds[m["name"]], classes, hard)
        notes = [m["note"]] if m["note"] else []
        if found["log_loss"] > prior_figures["log_loss"]:
            notes.append("log loss WORSE THAN THE CLASS PRIOR (calibrated in the blend)")
        if m["name"] not in blend.eligible:
            notes.append("no better than the prior once calibrated: weight 0")
        tested[m["name"]] = (preds[m["name"]], None)
        rows.append({**row, **found, "weight": blend.weights[m["name"]], "note": "; ".join(notes)})
    found = figures(target, nested, classes, hard, scale)
    note = "nested CV: fitted on the other folds"
    if scale is not None:
        note += "; label: argmax p / class prior (train.class_weights=balanced)"
    if found["log_loss"] > prior_figures["log_loss"]:
        note += "; log loss WORSE THAN THE CLASS PRIOR"
    rows.append({"member": "blend", "kind": blend.method, **found, "note": note})
    tested["blend"] = (nested, scale)
    rows.append({"member": PRIOR, "kind": "prior", **prior_figures, "weight": blend.weights[PRIOR]})
    if hard:
        counts = target.sum(axis=0)
        rows.append(
            {
                "member": "chance",
                "kind": "chance",
                "accuracy": float(counts.max() / counts.sum()),
                "balanced_accuracy": 1.0 / len(classes),
                "log_loss": math.log(len(classes)),
                "note": "accuracy: the largest class always; log loss: uniform",
            }
        )
    table = pd.DataFrame(rows)
    beats, small = beats_chance(target, tested, prior_figures["log_loss"], hard)
    nested_figures = {k: float(v) for k, v in found.items()}
    report = {
        "root": str(root),
        "classes": classes,
        "hard": hard,
        "method": blend.method,
        "blend": nested_figures,
        "beats_chance": beats,
        "too_small": small,
        "budget_minutes": portfolio["budget_minutes"],
        "seconds": portfolio["seconds"],
        "table": table.replace({np.nan: None}).to_dict(orient="records"),
    }
    write_json(root / "report.json", report)
    text = markdown(table, report)
    write_text(root / "report.md", text)
    plot_members(table, root / "members.png", hard)
    return PortfolioResult(table, blend, nested_figures, beats, root / "report.md")


def beats_chance(
    target: np.ndarray,
    tested: dict[str, tuple[np.ndarray, np.ndarray | None]],
    prior_loss: float,
    hard: bool,
) -> tuple[list[str], dict[str, float]]:
    """The members (and the blend) above chance: log loss at least :data:`MIN_GAIN` below the
    prior's and, for hard labels, balanced accuracy above label permutations (Bonferroni over
    those tested); and, apart, those whose log loss is below the prior's and that pass the
    permutation test, but by less than :data:`MIN_GAIN` (name -> their gain).
    ``tested``: name -> (probabilities, decision scale)."""
    alpha = CHANCE_ALPHA / max(1, len(tested))
    found, small = [], {}
    for name, (probs, scale) in tested.items():
        gain = 1.0 - kl_score(target, probs) / prior_loss
        if gain <= 0 or (hard and chance_p_value(target, probs, scale) >= alpha):
            continue
        if gain >= MIN_GAIN:
            found.append(name)
        else:
            small[name] = round(gain, 4)
    return found, small


def markdown(table: pd.DataFrame, report: dict) -> str:
    """``report.md``: the one table, then what it means."""
    hard = report["hard"]
    metrics = ["accuracy", "balanced_accuracy", "log_loss"] if hard else ["log_loss"]
    head = ["member", "kind", *metrics, "weight", "seconds", "note"]
    lines = [
        f"# Portfolio report: {report['root']}",
        "",
        f"classes: {', '.join(report['classes'])}; out-of-fold figures (every member in the "
        f"same folds); blend: {report['method']}, scored by nested CV",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in table.to_dict(orient="records"):
        cells = []
        for key in head:
            value = row.get(key)
            if isinstance(value, float) and not math.isnan(value):
                cells.append(f"{value:.0f}" if key == "seconds" else f"{value:.3f}")
            else:
                cells.append("" if value is None or value != value else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    beats = report["beats_chance"]
    if beats:
        lines.append(f"Above chance ({_test(hard)}): {', '.join(beats)}.")
    else:
        lines.append(
            f"NO MEMBER BEATS CHANCE ({_test(hard)}): these epochs show no reliable signal of "
            "the classes, and the blend is close to the class prior's guess."
        )
    small = report["too_small"]
    if small:
        gains = ", ".join(f"{name} {100 * gain:.1f}%" for name, gain in small.items())
        lines.append(
            f"Below the prior's log loss and above the label permutations, but by less than "
            f"{100 * MIN_GAIN:g}%, too little to rely on: {gains}."
        )
    lines.append(
        f"Time: {report['seconds']:.0f} s in all, budget {report['budget_minutes']:g} min "
        "(portfolio.budget_minutes)."
    )
    return "\n".join(lines) + "\n"


def _test(hard: bool) -> str:
    loss = f"log loss at least {100 * MIN_GAIN:g}% below the class prior's"
    if not hard:
        return loss
    return (
        f"{loss}, and balanced accuracy above {PERMUTATIONS} label permutations at "
        f"p < {CHANCE_ALPHA} over the members tested"
    )


def plot_members(table: pd.DataFrame, path: Path, hard: bool) -> None:
    """``members.png``: each trained member's out-of-fold figure beside the blend's, with the
    prior's (log loss) and chance (balanced accuracy) as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = table[table["log_loss"].notna() & ~table["kind"].isin(["prior", "chance"])]
    prior = float(table.loc[table["kind"] == "prior", "log_loss"].iloc[0])
    panels = [("log_loss", "log loss (lower is better)", prior, "class prior")]
    if hard:
        chance = float(table.loc[table["kind"] == "chance", "balanced_accuracy"].iloc[0])
        panels.insert(0, ("balanced_accuracy", "balanced accuracy", chance, "chance"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 0.45 * len(shown) + 1.5))
    for ax, (key, label, line, line_label) in zip(np.atleast_1d(axes), panels, strict=True):
        colours = ["tab:orange" if m == "blend" else "tab:blue" for m in shown["member"]]
        ax.barh(shown["member"], shown[key], color=colours)
        ax.axvline(line, color="grey", ls="--", label=line_label)
        ax.set_xlabel(label)
        ax.invert_yaxis()
        ax.legend(loc="lower right")
    fig.suptitle("members (out of fold) and the blend (nested CV)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def read_blend(root: str | Path) -> PortfolioBlend:
    """The fitted blend of the portfolio at ``root`` (``blend.json``)."""
    path = Path(root) / BLEND_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; train every fold (--fold all) to blend")
    return PortfolioBlend.from_json(json.loads(path.read_text()))


@dataclass
class PortfolioPrediction:
    """The blended prediction of new data, and each member's (prediction files, same schema)."""

    frame: pd.DataFrame  # id, fold (-1), one column per class
    members: dict[str, Path]  # member -> its prediction file
    path: Path


def predict_portfolio(
    root: str | Path,
    data_dir: str | None = None,
    split: str = "test",
    batch_size: int = 64,
    runtime: str = "auto",
    fallback: bool = False,
    cache_dir: str | None = None,
) -> PortfolioPrediction:
    """Predict ``split`` of ``data_dir`` (default: the data the portfolio was trained on) with
    every member that has a weight, then blend them with the fitted calibrations and weights:
    ``<root>/<member>/<split>.parquet`` and ``<root>/<split>.parquet``; sliding windows over
    unlabelled recordings also give ``<root>/windows/<recording>.csv``. Networks predict as
    ``predict.py`` does (``runtime``, ``fallback``, ``cache_dir``: their input cache, default the
    one they were trained with); classical members in Python."""
    from hmsbrain.inference.predict import predict_run, write_window_csvs

    root = Path(root)
    blend = read_blend(root)
    raw = json.loads((root / BLEND_FILE).read_text())
    classes, prior = list(raw["classes"]), np.asarray(raw["class_prior"], np.float64)
    members = json.loads((root / PORTFOLIO_FILE).read_text())["members"]
    kinds = {m["name"]: m["kind"] for m in members if m["status"] == "trained"}
    data = _open_new_data(root / next(iter(kinds)), data_dir, split)
    ids = np.array(sorted(set(data.rows[data.id_column])))
    preds = {PRIOR: np.tile(prior, (len(ids), 1))}
    files: dict[str, Path] = {}
    for name in (n for n, w in blend.weights.items() if w > 0 and n != PRIOR):
        run, files[name] = root / name, root / name / f"{split}.parquet"
        if kinds[name] == "classical":
            frame = _predict_classical(run, data, classes)
            write_predictions(frame, files[name], {"kind": split, "split": split, "tta": False})
        else:
            frame = predict_run(
                run,
                data_dir,
                split,
                batch_size=batch_size,
                runtime=runtime,
                cache_dir=cache_dir,
                fallback=fallback,
            ).frame
        frame = frame.set_index(data.id_column)
        if set(frame.index) != set(ids):
            raise EnsembleError(f"{run}: predicts other units than {data.root} holds")
        preds[name] = frame.loc[ids, classes].to_numpy(np.float64)
    result = pd.DataFrame(blend.apply(preds), columns=classes)
    result.insert(0, data.id_column, ids)
    result.insert(1, FOLD, FOLD_AVERAGE)
    path = root / f"{split}.parquet"
    meta = {
        "kind": split,
        "split": split,
        "portfolio": True,
        "tta": False,
        "data_dir": str(Path(data.root).resolve()),
        "members": {n: str(p) for n, p in files.items()},
        "weights": blend.weights,
    }
    write_predictions(result, path, meta)
    if "start" in data.rows and not data.labelled:
        write_window_csvs(result, data, classes, root / "windows")
    return PortfolioPrediction(result, files, path)


def _open_new_data(member: Path, data_dir: str | None, split: str) -> EpochDataset:
    """``split`` of ``data_dir`` (default: the training data), read as ``member`` was: its first
    fold's config, and the epochs' length for sliding windows over new recordings."""
    fold = fold_dirs(member)[0]
    cfg = load_config(fold / CONFIG_FILE)
    if data_dir is not None:
        cfg.data.data_dir = str(data_dir)
    cfg.preprocess.crop_seconds = 0.0  # one row per epoch; the members cut their own crops
    data = open_dataset(cfg, split, window_seconds=fold_summary(fold)["window_seconds"])
    if not isinstance(data, EpochDataset):
        raise EnsembleError(f"{data.root}: a portfolio predicts epochs of the generic layouts")
    return data


def _predict_classical(run: Path, data: EpochDataset, classes: list[str]) -> pd.DataFrame:
    """The mean over a classical member's fold models of its probabilities for every epoch of
    ``data`` (resampled to the member's rate where the new recordings have another)."""
    probs = []
    for fold in fold_dirs(run):
        model = load_classical(fold / CLASSICAL_FILE)
        signals = resample(data.epochs.signals, data.epochs.sfreq, model.sfreq)
        try:
            probs.append(model.predict(signals, data.epochs.channels))
        except ClassicalError as exc:
            raise DataError(f"{data.root}: {exc}") from None
    frame = pd.DataFrame(np.mean(probs, axis=0), columns=classes)
    frame.insert(0, data.id_column, data.epochs.ids)
    frame.insert(1, FOLD, FOLD_AVERAGE)
    return frame
