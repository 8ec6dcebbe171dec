"""Kaggle packaging: the model dataset, the kernel folder, and what the kernel runs.

``build_package`` turns an ensemble report (``submissions/<name>.json``, written by
``ensemble.py``) into two upload-ready folders:

- ``<out>/<dataset slug>/``: the ``hmsbrain`` package itself, every fold of every blended run
  (``model.onnx`` checked by export, ``model.keras`` as the fallback runtime, ``config.yaml``,
  ``export.json``), the ONNX Runtime wheels the offline notebook installs (``wheels/``, see
  :mod:`hmsbrain.hms.wheels`), ``ensemble.json`` (blend method and weights and, for logit-bias,
  the bias; the wheels and their SHA-256s) and ``dataset-metadata.json``;
- ``<out>/kernel/``: the notebook and a ``kernel-metadata.json`` naming that dataset.

``run_kernel`` is the notebook's body: predict every packaged run with the same code as
``predict.py``, blend with the same code and weights as ``ensemble.py``, validate, and write
``submission.csv``. A notebook that crashes scores nothing, so it never stops for one test EEG:
an EEG that cannot be read (missing, corrupt, too short, not parquet...) gets the ensemble's
class prior, and a line starting ``FALLBACK`` names it and says why. Any other exception in one
EEG's reading is a bug: that EEG gets the prior too, but the error is logged with its traceback
and counted. Nor does the notebook stop for a run that no runtime can run (no onnxruntime, a
Keras too old for the models): a line starting ``NO RUNTIME`` names it, and it is left out of the
blend, whose weights are renormalised over the runs that ran (every EEG gets the prior when none
did). It ends with one ``SUMMARY`` line: the fallbacks by reason and the runs left out.

A submission that is mostly the class prior is valid, and scores like the prior. Away from
Kaggle the notebook is a dry run (:func:`on_kaggle`), and so is ``package.py``'s own check of a
package (:func:`check_package`): there, any unexpected error, or a share of prior rows above
``HMS_MAX_FALLBACK`` (default 0.5), fails the run once the submission is written. On Kaggle the
notebook still submits, and its summary says so in capitals.

A notebook that runs out of time scores nothing too: after the first test EEG it logs its rate
and the projected total, loudly when that exceeds the time budget.

Importing this module (and running the ONNX path) needs only numpy, pandas, pyarrow, scipy,
scikit-learn, librosa, PyYAML and tqdm, all in Kaggle's image: never TensorFlow, Keras, MNE,
edfio, jax or matplotlib, unless the Keras runtime is used.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.atomic import write_json
from hmsbrain.core.fallback import FallbackSummary, apply_fallback
from hmsbrain.data.sources import resolve_data_dir
from hmsbrain.hms.constants import SAMPLE_SUBMISSION_CSV, TEST_CSV, VOTE_COLUMNS
from hmsbrain.hms.layout import read_test_csv
from hmsbrain.hms.submission import write_submission
from hmsbrain.hms.wheels import MANIFEST, WHEELS_DIR, WheelTarget, download_wheels
from hmsbrain.inference.ensemble import blend_ran
from hmsbrain.inference.predict import OpenedRun, RunPrediction, open_run, predict_opened
from hmsbrain.runs import (
    EXPORT_REPORT,
    KERAS_FILE,
    ONNX_FILE,
    PARITY_INPUTS,
    fold_dirs,
    run_config,
)

log = logging.getLogger(__name__)

COMPETITION = "hms-harmful-brain-activity-classification"
DATASET_SLUG = "hmsbrain-models"
KERNEL_SLUG = "hmsbrain-inference"
KERNEL_NOTEBOOK = "hms_inference.ipynb"
FOLD_FILES = (ONNX_FILE, KERAS_FILE, "config.yaml", "summary.json", EXPORT_REPORT, PARITY_INPUTS)
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the whole hmsbrain package is shipped
KERNELS_DIR = PACKAGE_DIR.parents[1] / "kernels"
KAGGLE_HOURS = 9.0  # Kaggle stops a notebook after this long, and it scores nothing
# Kaggle sets this in every notebook it runs: without it, the notebook is a local dry run.
KAGGLE_RUN_VARIABLE = "KAGGLE_KERNEL_RUN_TYPE"
# HMS_MAX_FALLBACK's default: a dry run fails when more than this share of the test EEGs get
# the class prior (a real test set has a few bad EEGs at most; a bug makes it all of them).
MAX_FALLBACK = 0.5


class PackageError(RuntimeError):
    """An ensemble that cannot be packaged as asked; the message names the file."""


class DryRunError(RuntimeError):
    """A run of the notebook away from Kaggle whose submission hides a bug or is mostly the
    class prior; the message says which, in one line."""


def on_kaggle() -> bool:
    """Whether this process is a notebook that Kaggle runs (anything else is a dry run)."""
    return KAGGLE_RUN_VARIABLE in os.environ


def _read_report(report_path: Path) -> dict:
    if not report_path.is_file():
        raise FileNotFoundError(f"{report_path}: file not found (ensemble.py writes it)")
    try:
        report = json.loads(report_path.read_text())
    except json.JSONDecodeError as exc:
        raise PackageError(f"{report_path}: not a JSON ensemble report ({exc})") from exc
    missing = {"runs", "method", "weights"} - set(report)
    if missing:
        raise PackageError(f"{report_path}: missing {sorted(missing)}; is it ensemble.py's report?")
    for key in ("class_prior", "tta"):
        if key not in report:
            raise PackageError(
                f"{report_path}: no {key!r}; it was written by an older ensemble.py, re-run it"
            )
    if report["method"] == "logit-bias" and not report.get("bias"):
        raise PackageError(f"{report_path}: a logit-bias blend without its per-class 'bias'")
    return report


def ensure_exported(run: Path, data_dir: str | None = None) -> list[Path]:
    """Every fold of ``run`` with a current ``model.onnx`` (exported and checked if missing or
    older than ``model.keras``)."""
    from hmsbrain.inference.export import (
        export_fold,  # TensorFlow is needed to export, not to predict
    )

    folds = fold_dirs(run)
    for fold in folds:
        onnx, keras_file = fold / ONNX_FILE, fold / KERAS_FILE
        if not onnx.is_file() or onnx.stat().st_mtime < keras_file.stat().st_mtime:
            print(f"exporting {fold} to ONNX")
            export_fold(fold, data_dir)
    return folds


def build_package(
    report_path: str | Path,
    out_dir: str | Path,
    kaggle_user: str,
    data_dir: str | None = None,
    overwrite: bool = False,
    wheels: WheelTarget | None = None,
    max_fallback: float = MAX_FALLBACK,
) -> tuple[Path, Path]:
    """Write the model dataset and kernel folders for the ensemble in ``report_path``, with the
    ONNX Runtime ``wheels`` bundled (None: none), once the package passed :func:`check_package` on
    the test split of ``data_dir`` (default: the data the first run was trained on), which also
    holds the train windows of any export's parity check.

    Returns ``(dataset_dir, kernel_dir)``. Run paths in the report are taken relative to the
    current folder, as ``ensemble.py`` wrote them."""
    report_path, out_dir = Path(report_path), Path(out_dir)
    report = _read_report(report_path)
    runs = [Path(r) for r in report["runs"]]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise PackageError(f"{report_path}: two runs share a folder name: {names}")
    if set(names) != set(report["weights"]):
        raise PackageError(f"{report_path}: weights {sorted(report['weights'])} != runs {names}")
    dataset_dir, kernel_dir = out_dir / DATASET_SLUG, out_dir / "kernel"
    for target in (dataset_dir, kernel_dir):
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")

    out_dir.mkdir(parents=True, exist_ok=True)
    # Built in a temporary folder and moved into place, so a failed export leaves the previous
    # package untouched.
    staging = Path(tempfile.mkdtemp(prefix=".package-", dir=out_dir))
    try:
        dataset = staging / DATASET_SLUG
        shutil.copytree(
            PACKAGE_DIR, dataset / "hmsbrain", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        for run in runs:
            for fold in ensure_exported(run, data_dir):
                target = dataset / "runs" / run.name / fold.name
                target.mkdir(parents=True)
                for name in FOLD_FILES:
                    shutil.copy2(fold / name, target / name)
        bundled = None if wheels is None else download_wheels(dataset / WHEELS_DIR, wheels)
        manifest = {
            "runs": names,
            "method": report["method"],
            "weights": report["weights"],
            "bias": report.get("bias"),  # per class, for method logit-bias
            # ensemble.py blends only runs whose OOF and test used the same TTA.
            "tta": report["tta"],
            "class_prior": report["class_prior"],
            "blend_cv": report.get("blend_cv"),
            "report": report_path.name,
            "wheels": bundled,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json(dataset / MANIFEST, manifest)
        write_json(
            dataset / "dataset-metadata.json",
            {
                "title": "hmsbrain models",
                "id": f"{kaggle_user}/{DATASET_SLUG}",
                "licenses": [{"name": "CC0-1.0"}],
            },
        )
        kernel = staging / "kernel"
        kernel.mkdir()
        shutil.copy2(KERNELS_DIR / KERNEL_NOTEBOOK, kernel / KERNEL_NOTEBOOK)
        metadata = json.loads((KERNELS_DIR / "kernel-metadata.json").read_text())
        metadata["id"] = f"{kaggle_user}/{KERNEL_SLUG}"
        metadata["dataset_sources"] = [f"{kaggle_user}/{DATASET_SLUG}"]
        write_json(kernel / "kernel-metadata.json", metadata)
        # Checked before anything moves into place: a package that fails leaves the last one.
        test_data = Path(data_dir) if data_dir else resolve_data_dir(run_config(runs[0]))
        check_package(dataset, test_data, max_fallback)
        for target in (dataset_dir, kernel_dir):
            shutil.rmtree(target, ignore_errors=True)
        (staging / DATASET_SLUG).rename(dataset_dir)
        kernel.rename(kernel_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dataset_dir, kernel_dir


def folder_megabytes(folder: Path) -> float:
    """The size of the files under ``folder`` (0 when it does not exist), in MB."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def upload_commands(dataset_dir: Path, kernel_dir: Path) -> list[str]:
    """The two ``kaggle`` CLI commands that publish the package (``version`` once it exists)."""
    return [
        f"kaggle datasets create -p {dataset_dir} --dir-mode zip"
        f"   # later: kaggle datasets version -p {dataset_dir} --dir-mode zip -m 'new models'",
        f"kaggle kernels push -p {kernel_dir}",
    ]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _test_view(data_dir: Path, rows: pd.DataFrame, folder: Path) -> Path:
    """``data_dir`` with only ``rows`` in its test.csv: a folder whose other entries link to the
    originals (nothing is copied)."""
    folder.mkdir()
    rows.to_csv(folder / TEST_CSV, index=False)
    for entry in data_dir.iterdir():
        if entry.name != TEST_CSV:
            (folder / entry.name).symlink_to(entry.resolve(), entry.is_dir())
    return folder


def _predict_all(opened: list[OpenedRun], data_dir: Path, tta: bool) -> list[RunPrediction]:
    return [
        predict_opened(o, str(data_dir), "test", tta, write=False, fallback=True, count_bugs=True)
        for o in opened
    ]


def _log_projection(
    opening: float, first: float, n_runs: int, n_eegs: int, budget_hours: float
) -> None:
    """Log the rate of the first test EEG and the projected total for all ``n_eegs`` (an upper
    bound: the first EEG also pays the runtimes' warm-up); loud when over the budget."""
    projected = opening + first * n_eegs
    log.info(
        "time: %d runs opened in %s; the first test EEG took %s (%.2f EEGs/s); projected %s "
        "for %d test EEGs (budget %s)",
        n_runs,
        _duration(opening),
        _duration(first),
        1.0 / max(first, 1e-9),
        _duration(projected),
        n_eegs,
        _duration(budget_hours * 3600),
    )
    if projected > budget_hours * 3600:
        log.error(
            "TIME BUDGET: the projected %s for %d test EEGs exceeds the %s budget; Kaggle stops "
            "the notebook at %g h and it then scores nothing: package fewer runs or folds, or "
            "run on a GPU",
            _duration(projected),
            n_eegs,
            _duration(budget_hours * 3600),
            KAGGLE_HOURS,
        )


def predict_package(
    model_dir: str | Path,
    data_dir: str | Path,
    runtime: str = "auto",
    cache_dir: str | Path | None = None,
    budget_hours: float = KAGGLE_HOURS,
) -> tuple[pd.DataFrame, FallbackSummary]:
    """The blended test prediction of a packaged ensemble (``eeg_id`` + six vote columns), and
    its summary: the EEGs that got the ensemble's class prior because they could not be read, a
    bug met them, or no run could run (id -> why), and the runs left out of the blend.

    The first test EEG is predicted by itself, then the rest, by the same opened models: the
    rate after the first EEG gives the projected total, checked against ``budget_hours``."""
    model_dir, data_dir = Path(model_dir), Path(data_dir)
    manifest_path = model_dir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: not found; is {model_dir} a package folder?")
    manifest = json.loads(manifest_path.read_text())
    names = manifest["runs"]
    test = read_test_csv(data_dir / TEST_CSV)
    with tempfile.TemporaryDirectory(prefix="hms-cache-") as tmp:
        # Without a cache folder, the inputs go to the temporary one, removed afterwards: a
        # kernel or test run must not leave a folder behind for every call.
        cache, tta = str(cache_dir or tmp), manifest["tta"]
        started = time.perf_counter()
        opened = [open_run(model_dir / "runs" / n, runtime, cache, fallback=True) for n in names]
        opening = time.perf_counter() - started
        first = _test_view(data_dir, test[:1], Path(tmp) / "first")
        parts = [_predict_all(opened, first, tta)]
        seconds = time.perf_counter() - started - opening
        _log_projection(opening, seconds, len(names), len(test), budget_hours)
        if len(test) > 1:
            parts.append(
                _predict_all(opened, _test_view(data_dir, test[1:], Path(tmp) / "rest"), tta)
            )
        total = _duration(time.perf_counter() - started)
        log.info("predicted %d test EEGs in %s", len(test), total)
    frames = [
        pd.concat([part[i].frame for part in parts], ignore_index=True) for i in range(len(names))
    ]
    weights = np.array([manifest["weights"][n] for n in names], dtype=float)
    # Manifests written before the logit-bias method have no bias (nor need one).
    bias = manifest.get("bias")
    ran = [o.no_runtime is None for o in opened]
    left_out = {n: str(o.no_runtime) for n, o, r in zip(names, opened, ran, strict=True) if not r}
    blended = blend_ran(
        frames,
        names,
        weights,
        manifest["method"],
        None if bias is None else np.asarray(bias, dtype=float),
        ran,
    )
    fallback = {k: v for part in parts for p in part for k, v in p.fallback.items()}
    classes = list(VOTE_COLUMNS)
    if blended is None:
        log.error(
            "NO RUNTIME for any run: every test EEG gets the ensemble's class prior (%s)",
            opened[0].no_runtime,
        )
        blended = frames[0].sort_values("eeg_id", ignore_index=True)[["eeg_id", *classes]].copy()
        fallback = dict.fromkeys(blended["eeg_id"], "no runtime could run")
        apply_fallback(blended, fallback, manifest["class_prior"], classes)
    else:
        if left_out:
            log.error(
                "LEFT OUT of the blend, as no runtime could run them: %s; the weights are "
                "renormalised over %s",
                ", ".join(left_out),
                ", ".join(n for n, r in zip(names, ran, strict=True) if r),
            )
        if fallback:
            apply_fallback(blended, fallback, manifest["class_prior"], classes, "the ensemble's")
    return blended, FallbackSummary(len(blended), fallback, left_out)


def _verdict(summary: FallbackSummary, max_fallback: float) -> str:
    """What fails a dry run, in capitals (empty when nothing does): the share of the submission
    that is the class prior when above ``max_fallback``, or when a bug made any of it."""
    over = summary.share > max_fallback
    if not (over or summary.unexpected):
        return ""
    text = (
        f"{summary.share:.0%} of the submission is the class prior ({len(summary.fallback)} of "
        f"{summary.units} test EEGs)"
    )
    if over:
        text += f", above HMS_MAX_FALLBACK={max_fallback:g}"
    if summary.unexpected:
        text += (
            f"; unexpected errors (bugs, not bad input): {summary.unexpected}, each traceback "
            "logged above"
        )
    return text.upper()


def run_kernel(
    model_dir: str | Path,
    data_dir: str | Path,
    out_path: str | Path = "submission.csv",
    runtime: str = "auto",
    budget_hours: float = KAGGLE_HOURS,
    max_fallback: float = MAX_FALLBACK,
    dry_run: bool = False,
) -> pd.DataFrame:
    """What the Kaggle notebook does: predict, blend, validate, write ``submission.csv``, and
    log its ``SUMMARY`` line, which ends in capitals when a bug met a test EEG or more than
    ``max_fallback`` of them got the class prior. With ``dry_run`` (the notebook away from
    Kaggle), that raises DryRunError, once the submission is written."""
    data_dir = Path(data_dir)
    submission, summary = predict_package(model_dir, data_dir, runtime, budget_hours=budget_hours)
    write_submission(
        submission, Path(out_path), data_dir / TEST_CSV, data_dir / SAMPLE_SUBMISSION_CSV
    )
    line, verdict = summary.line("test EEGs"), _verdict(summary, max_fallback)
    if not verdict:
        log.log(logging.WARNING if summary.fallback or summary.left_out else logging.INFO, line)
        return submission
    log.error("%s; %s", line, verdict)
    if dry_run:
        raise DryRunError(f"dry run: {verdict} ({out_path} is written, as on Kaggle)")
    return submission


def check_package(model_dir: Path, data_dir: Path, max_fallback: float = MAX_FALLBACK) -> None:
    """``package.py``'s own check: the notebook's body, here, on the test split of ``data_dir``
    (the competition's folder, or the demo), as a dry run (see :func:`run_kernel`)."""
    if not (data_dir / TEST_CSV).is_file():
        raise PackageError(
            f"{data_dir / TEST_CSV}: not found; the package's dry run needs a test split: pass "
            "--data-dir a Kaggle-layout folder that has one"
        )
    log.info("dry run of the notebook on %s", data_dir / TEST_CSV)
    with tempfile.TemporaryDirectory(prefix="hms-dry-run-") as tmp:
        run_kernel(
            model_dir,
            data_dir,
            Path(tmp) / "submission.csv",
            max_fallback=max_fallback,
            dry_run=True,
        )
