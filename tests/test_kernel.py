"""The Kaggle path end to end on CPU: package a two-run demo ensemble, run the kernel against the
real sample files laid out as ``/kaggle/input``, and match ``predict.py`` + ``ensemble.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest

from hmsbrain.cli import ensemble_main, package_main
from hmsbrain.constants import VOTE_COLUMNS
from hmsbrain.inference import predict_run
from hmsbrain.kaggle_package import COMPETITION, DATASET_SLUG, KERNEL_NOTEBOOK, KERNELS_DIR
from hmsbrain.submission import validate_submission
from tests.conftest import tiny_config

KERNEL_SOURCE = KERNELS_DIR / "hms_inference.py"


@pytest.fixture(scope="module")
def wavenet_run(small_demo, tmp_path_factory) -> Path:
    """A second tiny run (WaveNet alone, same fold), so the package holds a real blend."""
    from hmsbrain.training import train_fold

    tmp_path = tmp_path_factory.mktemp("wavenet_run")
    train_fold(tiny_config(small_demo, tmp_path, backbone="wavenet"), fold=1)
    return tmp_path / "outputs" / "wavenet"


@pytest.fixture(scope="module")
def packaged(hms_sample_dir, tiny_run, wavenet_run, tmp_path_factory):
    """predict.py + ensemble.py on the sample test EEG, then package.py on their report."""
    tmp = tmp_path_factory.mktemp("package")
    runs = [tiny_run.run_dir, wavenet_run]
    for run in runs:
        predict_run(run, str(hms_sample_dir), "test")
    ensemble_main([*map(str, runs), "--name", "sample", "--out-dir", str(tmp)])
    package_main(
        [str(tmp / "sample.json"), "--out-dir", str(tmp / "dist"), "--kaggle-user", "tester"]
    )
    return tmp


def test_package_holds_the_project_models_and_metadata(packaged, capsys) -> None:
    dataset = packaged / "dist" / DATASET_SLUG
    assert (dataset / "hmsbrain" / "kaggle_package.py").is_file()
    assert not list(dataset.rglob("__pycache__"))
    manifest = json.loads((dataset / "ensemble.json").read_text())
    report = json.loads((packaged / "sample.json").read_text())
    assert manifest["weights"] == report["weights"] and manifest["method"] == report["method"]
    for run in manifest["runs"]:
        for name in ("model.onnx", "model.keras", "config.yaml", "export.json"):
            assert (dataset / "runs" / run / "fold1" / name).is_file()
    meta = json.loads((dataset / "dataset-metadata.json").read_text())
    assert meta["id"] == f"tester/{DATASET_SLUG}"
    kernel_meta = json.loads((packaged / "dist" / "kernel" / "kernel-metadata.json").read_text())
    assert kernel_meta["dataset_sources"] == [f"tester/{DATASET_SLUG}"]
    assert (packaged / "dist" / "kernel" / kernel_meta["code_file"]).is_file()


def test_package_prints_the_upload_commands_and_never_overwrites(packaged, capsys) -> None:
    args = [str(packaged / "sample.json"), "--out-dir", str(packaged / "dist")]
    with pytest.raises(SystemExit) as exit_info:
        package_main([*args, "--kaggle-user", "tester"])
    assert exit_info.value.code == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    package_main([*args, "--kaggle-user", "tester", "--overwrite"])
    out = capsys.readouterr().out
    assert f"kaggle datasets create -p {packaged / 'dist' / DATASET_SLUG}" in out
    assert f"kaggle kernels push -p {packaged / 'dist' / 'kernel'}" in out


@pytest.mark.slow
def test_kernel_writes_the_same_submission_as_predict_and_ensemble(
    packaged, hms_sample_dir, tmp_path
) -> None:
    """The notebook source, run as Kaggle would (its inputs under one folder, no project on the
    path), writes a valid submission.csv equal to ensemble.py's within 1e-5."""
    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / COMPETITION).symlink_to(hms_sample_dir)
    (inputs / DATASET_SLUG).symlink_to(packaged / "dist" / DATASET_SLUG)
    work = tmp_path / "working"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HMS_INPUT_DIR"] = str(inputs)
    # Run the notebook source as __main__, then report whether TensorFlow was ever imported.
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__'); "
        "print('tensorflow imported:', 'tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(KERNEL_SOURCE)],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # The package came from the model dataset, not from this checkout.
    assert f"hmsbrain from {inputs / DATASET_SLUG / 'hmsbrain'}" in done.stdout
    # With ONNX Runtime available the kernel never needs TensorFlow (nor Kaggle's Keras).
    assert "runtime auto: using onnx" in done.stdout + done.stderr
    assert "tensorflow imported: False" in done.stdout
    sub = pd.read_csv(work / "submission.csv")
    validate_submission(sub, hms_sample_dir / "test.csv", hms_sample_dir / "sample_submission.csv")
    expected = pd.read_csv(packaged / "sample.csv")
    assert sub["eeg_id"].tolist() == expected["eeg_id"].tolist()
    np.testing.assert_allclose(sub[list(VOTE_COLUMNS)], expected[list(VOTE_COLUMNS)], atol=1e-5)


def test_notebook_is_generated_from_the_reviewed_source() -> None:
    """kernels/hms_inference.ipynb must be `jupytext --to ipynb kernels/hms_inference.py`."""
    source = jupytext.read(KERNEL_SOURCE)
    notebook = jupytext.read(KERNELS_DIR / KERNEL_NOTEBOOK)
    assert [(c.cell_type, c.source) for c in notebook.cells] == [
        (c.cell_type, c.source) for c in source.cells
    ], "regenerate with: jupytext --to ipynb kernels/hms_inference.py"


def test_kernel_metadata_is_offline_gpu_with_competition_and_model_sources() -> None:
    meta = json.loads((KERNELS_DIR / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["competition_sources"] == [COMPETITION]
    assert meta["dataset_sources"][0].endswith(f"/{DATASET_SLUG}")
    assert meta["code_file"] == KERNEL_NOTEBOOK and meta["kernel_type"] == "notebook"
