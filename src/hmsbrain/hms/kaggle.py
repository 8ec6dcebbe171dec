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
class prior, and a line starting ``FALLBACK`` names it and says why. Nor does it stop for a run
that no runtime can run (no onnxruntime, a Keras too old for the models): that run gets its
class prior, in a line starting ``NO RUNTIME``. A notebook that runs out of time scores nothing
too: after the first test EEG it logs its rate and the projected total, loudly when that
exceeds the time budget.

Importing this module (and running the ONNX path) needs only numpy, pandas, pyarrow, scipy,
scikit-learn, librosa, PyYAML and tqdm, all in Kaggle's image: never TensorFlow, Keras, MNE,
edfio, jax or matplotlib, unless the Keras runtime is used.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.atomic import write_json
from hmsbrain.core.fallback import apply_fallback
from hmsbrain.hms.constants import SAMPLE_SUBMISSION_CSV, TEST_CSV, VOTE_COLUMNS
from hmsbrain.hms.layout import read_test_csv
from hmsbrain.hms.submission import write_submission
from hmsbrain.hms.wheels import MANIFEST, WHEELS_DIR, WheelTarget, download_wheels
from hmsbrain.inference.ensemble import blend_frames
from hmsbrain.inference.predict import OpenedRun, RunPrediction, open_run, predict_opened
from hmsbrain.runs import EXPORT_REPORT, KERAS_FILE, ONNX_FILE, PARITY_INPUTS, fold_dirs

log = logging.getLogger(__name__)

COMPETITION = "hms-harmful-brain-activity-classification"
DATASET_SLUG = "hmsbrain-models"
KERNEL_SLUG = "hmsbrain-inference"
KERNEL_NOTEBOOK = "hms_inference.ipynb"
FOLD_FILES = (ONNX_FILE, KERAS_FILE, "config.yaml", "summary.json", EXPORT_REPORT, PARITY_INPUTS)
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the whole hmsbrain package is shipped
KERNELS_DIR = PACKAGE_DIR.parents[1] / "kernels"
KAGGLE_HOURS = 9.0  # Kaggle stops a notebook after this long, and it scores nothing


class PackageError(RuntimeError):
    """An ensemble that cannot be packaged as asked; the message names the file."""


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
) -> tuple[Path, Path]:
    """Write the model dataset and kernel folders for the ensemble in ``report_path``, with the
    ONNX Runtime ``wheels`` bundled (None: none).

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
        predict_opened(o, str(data_dir), "test", tta, write=False, fallback=True) for o in opened
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
) -> tuple[pd.DataFrame, dict[int, str]]:
    """The blended test prediction of a packaged ensemble (``eeg_id`` + six vote columns), and
    the EEGs that got the ensemble's class prior because they could not be read, or because no
    run could run (id -> why).

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
    blended = blend_frames(
        frames,
        names,
        weights,
        manifest["method"],
        None if bias is None else np.asarray(bias, dtype=float),
    )
    fallback = {k: v for part in parts for p in part for k, v in p.fallback.items()}
    if all(o.no_runtime is not None for o in opened):
        log.error(
            "NO RUNTIME for any run: every test EEG gets the ensemble's class prior (%s)",
            opened[0].no_runtime,
        )
        fallback = {k: "no runtime could run" for k in blended["eeg_id"]}
        apply_fallback(blended, fallback, manifest["class_prior"], list(VOTE_COLUMNS))
    elif fallback:
        apply_fallback(
            blended, fallback, manifest["class_prior"], list(VOTE_COLUMNS), "the ensemble's"
        )
    return blended, fallback


def run_kernel(
    model_dir: str | Path,
    data_dir: str | Path,
    out_path: str | Path = "submission.csv",
    runtime: str = "auto",
    budget_hours: float = KAGGLE_HOURS,
) -> pd.DataFrame:
    """What the Kaggle notebook does: predict, blend, validate, write ``submission.csv``."""
    data_dir = Path(data_dir)
    submission, fallback = predict_package(model_dir, data_dir, runtime, budget_hours=budget_hours)
    write_submission(
        submission, Path(out_path), data_dir / TEST_CSV, data_dir / SAMPLE_SUBMISSION_CSV
    )
    if fallback:
        log.warning(
            "%d of %d test EEGs got the fallback prediction: %s",
            len(fallback),
            len(submission),
            sorted(fallback),
        )
    return submission
