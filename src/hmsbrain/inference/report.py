"""A run's report over all its folds: the CV of the network and of each classical baseline in
the same folds, per fold and overall, and for hard labels every classification metric with the
confusion matrix (``report.json``, ``report.md``, ``confusion.csv``, ``confusion.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.atomic import atomic_path, write_json, write_text
from hmsbrain.core.metrics import classification_metrics, kl_score
from hmsbrain.core.truth import Truth
from hmsbrain.inference.ensemble import load_run, truth_of_run
from hmsbrain.runs import BASELINE_LABELS, fold_dirs, fold_summary

FOLD_FIGURES = ("kl", "balanced_accuracy")  # a baseline's figures in the per-fold lines


def _figures(truth: Truth, frame: pd.DataFrame) -> dict[str, object]:
    ids = frame[truth.id_column].to_numpy()
    target = truth.targets.loc[ids].to_numpy()
    pred = frame[truth.classes].to_numpy()
    out: dict[str, object] = {"kl": kl_score(target, pred), "units": len(ids)}
    if truth.hard:
        out.update(classification_metrics(target, pred, tuple(truth.classes)))
    return out


def write_run_report(run: str | Path) -> dict[str, object]:
    """Score the concatenated OOF of every fold of ``run`` against the truth file of its
    training data (no data folder is opened) and write the report files into the run folder;
    returns the report."""
    run = Path(run)
    predictions = load_run(run)
    truth = truth_of_run(run)
    hard = truth.hard
    summaries = [fold_summary(f) for f in fold_dirs(run)]
    prior = np.mean([s["class_prior"] for s in summaries], axis=0)
    prior_frame = predictions.oof[[truth.id_column]].copy()
    for i, name in enumerate(truth.classes):
        prior_frame[name] = prior[i]
    report: dict[str, object] = {
        "run": str(run),
        "classes": truth.classes,
        "hard": hard,
        "model": _figures(truth, predictions.oof),
        "class_prior": _figures(truth, prior_frame),
        "folds": [
            {
                "fold": s["fold"],
                "cv_kl": s["cv_kl"],
                "class_prior_kl": s["class_prior_kl"],
                # Older summaries picked the epoch on the scored fold.
                "select_on": s.get("select_on", "outer"),
                # Which rows trained (data.min_votes, data.dedup, vote weights, pseudo labels);
                # summaries written before issue 20 do not say.
                "training": s.get("training", {}).get("rule"),
                **({"balanced_accuracy": s["metrics"].get("balanced_accuracy")} if hard else {}),
                "baselines": {
                    name: {k: figures.get(k) for k in FOLD_FIGURES}
                    for name, figures in s.get("baselines", {}).items()
                },
            }
            for s in summaries
        ],
        "baselines": {
            name: _figures(truth, frame) for name, frame in predictions.baselines.items()
        },
    }
    write_json(run / "report.json", report)
    write_text(run / "report.md", _markdown(report))
    if hard:
        _confusion(report["model"]["confusion"], truth.classes, run)  # type: ignore[index]
    return report


def _markdown(report: dict) -> str:
    hard = report["hard"]
    cols = ["kl", "balanced_accuracy", "accuracy", "macro_f1", "roc_auc"] if hard else ["kl"]
    lines = [f"# CV report: {report['run']}", "", f"classes: {', '.join(report['classes'])}", ""]
    lines += ["| | units | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    rows = [
        ("model", report["model"]),
        *((BASELINE_LABELS[name], figures) for name, figures in report["baselines"].items()),
        ("class prior", report["class_prior"]),
    ]
    for label, figures in rows:
        cells = [_cell(figures.get(c)) for c in cols]
        lines.append(f"| {label} | {figures['units']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Chance balanced accuracy: "
        f"{report['model'].get('chance_balanced_accuracy', float('nan')):.3f}"
        if hard
        else "",
        "",
        f"Epoch selection: {_selection(report['folds'])}",
        "",
        "## Folds",
        "",
    ]
    for fold in report["folds"]:
        text = (
            f"- fold {fold['fold']}: KL {fold['cv_kl']:.4f} "
            f"(class prior {fold['class_prior_kl']:.4f})"
        )
        if hard:
            text += f", balanced accuracy {fold['balanced_accuracy']:.3f}"
        for name, base in fold["baselines"].items():
            text += f"; {BASELINE_LABELS[name]} KL {base['kl']:.4f}"
            if hard:
                text += f", balanced accuracy {base['balanced_accuracy']:.3f}"
        if fold["training"]:
            text += f"; trained on {fold['training']}"
        lines.append(text)
    if hard:
        lines += [
            "",
            "## Per class",
            "",
            "| class | precision | recall | support |",
            "|---|---|---|---|",
        ]
        for name, row in report["model"]["per_class"].items():
            lines.append(
                f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['support']} |"
            )
        lines += [
            "",
            "Confusion matrix (rows: true, columns: predicted): confusion.csv, confusion.png",
        ]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


def _confusion(matrix: list[list[int]], classes: list[str], run: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    counts = np.asarray(matrix)
    frame = pd.DataFrame(counts, index=list(classes), columns=list(classes))
    frame.index.name = "true \\ predicted"
    with atomic_path(run / "confusion.csv") as tmp:
        frame.to_csv(tmp)
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(counts, display_labels=list(classes)).plot(
        ax=ax, colorbar=False, xticks_rotation="vertical", values_format="d"
    )
    ax.set_title("out-of-fold confusion matrix")
    fig.tight_layout()
    with atomic_path(run / "confusion.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


SELECTIONS = {
    "outer": "on the validation fold the CV scores (optimistic on small folds)",
    "inner": "on an inner split of the training folds; each outer fold scored once",
    "last": "none; the last epoch of the plan is kept",
}


def _selection(folds: list[dict]) -> str:
    """How the folds picked their epoch (train.select_on), in words."""
    kinds = sorted({fold["select_on"] for fold in folds})
    return "; ".join(f"{kind} ({SELECTIONS[kind]})" for kind in kinds)
