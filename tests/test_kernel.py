"""The Kaggle path end to end on CPU: package a two-run demo ensemble, run the kernel against the
real sample files laid out as ``/kaggle/input``, and match ``predict.py`` + ``ensemble.py``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest
import yaml

from hmsbrain.cli import package_main, predict_main
from hmsbrain.core.predictions import read_predictions
from hmsbrain.hms import inputs as hms_inputs
from hmsbrain.hms.constants import EEG_COLUMNS, VOTE_COLUMNS
from hmsbrain.hms.kaggle import (
    COMPETITION,
    DATASET_SLUG,
    KAGGLE_RUN_VARIABLE,
    KERNEL_NOTEBOOK,
    KERNELS_DIR,
    MANIFEST,
    DryRunError,
    on_kaggle,
    run_kernel,
)
from hmsbrain.hms.submission import validate_submission
from hmsbrain.hms.wheels import KAGGLE_PYTHONS, installed_onnxruntime
from hmsbrain.inference.predict import predict_run
from tests.conftest import (
    resave_keras,
    spec_columns,
    write_parquet,
    write_spectrogram,
)

KERNEL_SOURCE = KERNELS_DIR / "hms_inference.py"
# What the kernel path (hmsbrain.hms.kaggle and all it imports, run on ONNX Runtime) must never
# import: Kaggle's image lacks some (pyriemann, tf2onnx, edfio), and the others are heavy or a
# version Kaggle does not pin (TensorFlow and Keras only when the Keras runtime runs).
NOT_ON_THE_KERNEL_PATH = ("tensorflow", "keras", "mne", "edfio", "jax", "matplotlib")
NOT_ON_THE_KERNEL_PATH += ("tf2onnx", "pyriemann")


def test_package_holds_the_project_models_and_metadata(packaged, capsys) -> None:
    dataset = packaged / "dist" / DATASET_SLUG
    assert (dataset / "hmsbrain" / "hms" / "kaggle.py").is_file()
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
    package_main([*args, "--kaggle-user", "tester", "--overwrite", "--no-wheels"])
    out, err = capsys.readouterr()
    assert err.startswith("warning: --no-wheels: the dataset bundles no onnxruntime")
    assert f"kaggle datasets create -p {packaged / 'dist' / DATASET_SLUG}" in out
    assert f"kaggle kernels push -p {packaged / 'dist' / 'kernel'}" in out


def test_package_without_reachable_wheels_is_a_one_line_error(packaged, tmp_path, capsys):
    """Offline, with --wheels-from a folder that lacks them (or is no folder), package.py says
    what failed and what to do in one line, and leaves no package behind."""
    args = [str(packaged / "sample.json"), "--out-dir", str(tmp_path / "dist")]
    args += ["--kaggle-user", "tester", "--wheels-from"]
    empty, nowhere = tmp_path / "empty", tmp_path / "nowhere"
    empty.mkdir()
    errors = []
    for folder in (empty, nowhere):
        with pytest.raises(SystemExit) as exit_info:
            package_main([*args, str(folder)])
        assert exit_info.value.code == 2
        errors.append(capsys.readouterr().err.strip())
    assert all("\n" not in err for err in errors)
    requirement = f"onnxruntime=={installed_onnxruntime()}"
    python = KAGGLE_PYTHONS[0]
    assert errors[0].startswith(f"error: pip download {requirement} for CPython {python} from")
    assert errors[0].endswith("; offline, pass --wheels-from a folder holding them, or --no-wheels")
    assert errors[1] == f"error: {nowhere}: no such folder (--wheels-from)"
    assert not (tmp_path / "dist" / DATASET_SLUG).exists()


def _kaggle_folders(tmp_path: Path, data: Path, packaged: Path) -> tuple[Path, dict[str, str]]:
    """The notebook's working folder and environment, its inputs laid out as ``/kaggle/input``
    and no project on the path; a local dry run (no KAGGLE_KERNEL_RUN_TYPE)."""
    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / COMPETITION).symlink_to(data)
    (inputs / DATASET_SLUG).symlink_to(packaged / "dist" / DATASET_SLUG)
    work = tmp_path / "working"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", KAGGLE_RUN_VARIABLE)}
    return work, {**env, "HMS_INPUT_DIR": str(inputs)}


@pytest.mark.slow
def test_kernel_writes_the_same_submission_as_predict_and_ensemble(
    packaged, hms_sample_dir, tmp_path
) -> None:
    """The notebook source, run as Kaggle would (its inputs under one folder, no project on the
    path), writes a valid submission.csv equal to ensemble.py's within 1e-5, and leaves no
    temporary folder behind."""
    work, env = _kaggle_folders(tmp_path, hms_sample_dir, packaged)
    inputs = tmp_path / "input"
    env["TMPDIR"] = str(tmp_path / "tmp")  # where the kernel's temporary input cache goes
    (tmp_path / "tmp").mkdir()
    # Run the notebook source as __main__, then report which packages outside Kaggle's image
    # (or too heavy for the kernel path) it ever imported.
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__'); "
        f"print('imported:', sorted(set({NOT_ON_THE_KERNEL_PATH!r}) & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(KERNEL_SOURCE)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The package came from the model dataset, not from this checkout.
    assert f"hmsbrain from {inputs / DATASET_SLUG / 'hmsbrain'}" in done.stdout
    # With ONNX Runtime available the kernel never needs TensorFlow (nor Kaggle's Keras).
    assert "runtime auto: using onnx" in done.stdout + done.stderr
    assert "imported: []" in done.stdout
    assert "dry run (not on Kaggle): True" in done.stdout
    assert "SUMMARY: 0 of 1 test EEGs (0%) got the class prior; runs left out" in done.stderr
    assert not list((tmp_path / "tmp").glob("hms-cache-*")), "the kernel left its cache behind"
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


# --- The notebook always submits ---------------------------------------------------------------

REAL_TEST_EEG = 3911565283
BAD_EEG, BAD_SPEC = 1000001, 2000002
# The first sample of the test EEG of kind "planted bug": a good EEG, whose preprocessing the
# tests make raise a TypeError (_plant_bug), as a bug in a preprocessing change would.
BUG_MARK = 12345.0


def _write_bad_eeg(path: Path, kind: str, good: np.ndarray) -> None:
    """The bad test EEG of each kind real Kaggle folders can hold."""
    eeg = good.copy()
    if kind == "missing file":
        return
    if kind == "csv text named .parquet":
        path.write_text(pd.DataFrame(eeg[:5], columns=list(EEG_COLUMNS)).to_csv(index=False))
        return
    if kind == "corrupt pages":  # the footer still reads
        write_parquet(path, eeg, list(EEG_COLUMNS))
        raw = bytearray(path.read_bytes())
        raw[4:3000] = bytes(b ^ 0x5A for b in raw[4:3000])
        path.write_bytes(bytes(raw))
        return
    if kind == "column given twice":
        write_parquet(path, np.c_[eeg, eeg[:, :1]], [*EEG_COLUMNS, "Fp1"])
        return
    if kind == "planted bug":
        eeg[0, 0] = BUG_MARK
    if kind == "zero rows":
        eeg = eeg[:0]
    elif kind == "30 s EEG":
        eeg = eeg[:6000]
    elif kind == "missing column":
        write_parquet(path, eeg[:, 1:], list(EEG_COLUMNS[1:]))
        return
    elif kind == "string column":
        frame = pd.DataFrame(eeg, columns=list(EEG_COLUMNS))
        frame["Fp1"] = frame["Fp1"].map("{:.3f} uV".format)
        frame.to_parquet(path)
        return
    elif kind == "inf":
        eeg[1000:1004, 3] = np.inf
    elif kind == "all-NaN channel":
        eeg[:, EEG_COLUMNS.index("C3")] = np.nan
    write_parquet(path, eeg, list(EEG_COLUMNS))


# Kinds that cannot be read get the fallback, counted in the summary as the problem their
# DataError names; the others are cleaned and only warned about.
UNREADABLE = {
    "missing file": "file not found",
    "csv text named .parquet": "not a parquet file",
    "corrupt pages": "corrupt parquet file",
    "column given twice": "corrupt parquet file",
    "zero rows": "too short",
    "30 s EEG": "too short",
    "missing column": "missing columns",
    "string column": "columns are not numeric",
}
CLEANED = ("inf", "all-NaN channel", "NaN-heavy spectrogram")


def _bad_folder(root: Path, sample: Path, kind: str) -> Path:
    """The real test EEG plus one bad EEG of ``kind``, in the Kaggle layout."""
    for sub in ("test_eegs", "test_spectrograms"):
        (root / sub).mkdir(parents=True)
    (root / "test_eegs" / f"{REAL_TEST_EEG}.parquet").symlink_to(
        sample / "test_eegs" / f"{REAL_TEST_EEG}.parquet"
    )
    real_spec = next((sample / "test_spectrograms").glob("*.parquet"))
    (root / "test_spectrograms" / real_spec.name).symlink_to(real_spec)
    test = pd.read_csv(sample / "test.csv")
    test.loc[1] = {"spectrogram_id": BAD_SPEC, "eeg_id": BAD_EEG, "patient_id": 1}
    test.to_csv(root / "test.csv", index=False)
    sub = pd.DataFrame({"eeg_id": test["eeg_id"], **{c: 1 / 6 for c in VOTE_COLUMNS}})
    sub.to_csv(root / "sample_submission.csv", index=False)
    good = pd.read_parquet(sample / "test_eegs" / f"{REAL_TEST_EEG}.parquet")
    _write_bad_eeg(root / "test_eegs" / f"{BAD_EEG}.parquet", kind, good.to_numpy(np.float32))
    spec = pd.read_parquet(real_spec).drop(columns="time").to_numpy(np.float32, copy=True)
    if kind == "NaN-heavy spectrogram":
        spec[:240] = np.nan
    write_spectrogram(root / "test_spectrograms" / f"{BAD_SPEC}.parquet", spec, spec_columns())
    if kind == "NaN-heavy spectrogram":  # the EEG itself is fine
        write_parquet(root / "test_eegs" / f"{BAD_EEG}.parquet", good.to_numpy(), list(EEG_COLUMNS))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*UNREADABLE, *CLEANED])
def test_kernel_submits_despite_a_bad_test_eeg(packaged, hms_sample_dir, tmp_path, caplog, kind):
    """One bad test EEG never costs the submission, nor fails a dry run (one EEG of two is not
    above HMS_MAX_FALLBACK's 0.5): it is named in the log, the unreadable kinds get the
    ensemble's class prior and are counted by reason, and the good EEG's prediction is
    unchanged."""
    data = _bad_folder(tmp_path / "data", hms_sample_dir, kind)
    model_dir = packaged / "dist" / DATASET_SLUG
    with caplog.at_level("INFO"):
        sub = run_kernel(model_dir, data, tmp_path / "submission.csv", dry_run=True)
    written = pd.read_csv(tmp_path / "submission.csv")
    validate_submission(written, data / "test.csv", data / "sample_submission.csv")
    rows = sub.set_index("eeg_id")
    assert str(BAD_EEG) in caplog.text or str(BAD_SPEC) in caplog.text
    expected = pd.read_csv(packaged / "sample.csv").set_index("eeg_id").loc[REAL_TEST_EEG]
    np.testing.assert_allclose(rows.loc[REAL_TEST_EEG], expected, atol=1e-5)
    prior = json.loads((model_dir / MANIFEST).read_text())["class_prior"]
    [summary] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SUMMARY")]
    if kind in UNREADABLE:
        assert f"FALLBACK eeg_id {BAD_EEG}" in caplog.text
        np.testing.assert_allclose(rows.loc[BAD_EEG], prior, atol=1e-12)
        assert summary.startswith(
            f"SUMMARY: 1 of 2 test EEGs (50%) got the class prior: 1 {UNREADABLE[kind]}; "
        )
    else:
        assert "FALLBACK" not in caplog.text
        assert not np.allclose(rows.loc[BAD_EEG], prior, atol=1e-4)
        assert summary.startswith("SUMMARY: 0 of 2 test EEGs (0%) got the class prior; ")
    assert "UNEXPECTED" not in caplog.text


@pytest.mark.slow
def test_predict_stops_on_a_bad_eeg_unless_asked_to_fall_back(
    tiny_run, hms_sample_dir, tmp_path, capsys
) -> None:
    data = _bad_folder(tmp_path / "data", hms_sample_dir, "missing file")
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("*.parquet", "*.onnx"))
    shutil.copy(tiny_run.run_dir / "fold1" / "oof.parquet", run / "fold1" / "oof.parquet")
    with pytest.raises(SystemExit) as exit_info:
        predict_main([str(run), "--data-dir", str(data), "--runtime", "keras"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar's line
    assert err.startswith("error: ")
    assert f"test_eegs/{BAD_EEG}.parquet: file not found" in err
    assert not (run / "test.parquet").exists()
    predict_main([str(run), "--data-dir", str(data), "--runtime", "keras", "--fallback"])
    out = capsys.readouterr().out
    assert "1 EEGs got the class prior" in out
    assert out.strip().splitlines()[-1] == (
        "SUMMARY: 1 of 2 units (50%) got the class prior: 1 file not found; runs left out of "
        "the blend (no runtime could run them): none"
    )
    meta = read_predictions(run / "test.parquet").meta
    assert list(meta["fallback"]) == [str(BAD_EEG)]


def _marked(eeg: np.ndarray) -> bool:
    return bool(np.any(eeg[..., 0, 0] == BUG_MARK))


def _plant_bug(
    monkeypatch: pytest.MonkeyPatch, hits: Callable[[np.ndarray], bool] = _marked
) -> None:
    """Make the preprocessing of the raw windows that ``hits`` (by default, those of the
    "planted bug" test EEG) raise a TypeError, as a bug in a preprocessing change would."""
    clean = hms_inputs.clean_montage

    def planted(eeg: np.ndarray, cfg: object) -> np.ndarray:
        if hits(np.asarray(eeg)):
            raise TypeError("planted bug")
        return clean(eeg, cfg)

    monkeypatch.setattr(hms_inputs, "clean_montage", planted)


@pytest.mark.slow
def test_predict_with_fallback_stops_on_a_bug_with_its_traceback(
    tiny_run, hms_sample_dir, tmp_path, monkeypatch
) -> None:
    """--fallback covers bad input only: a TypeError in one EEG's preprocessing is a bug, and
    predict.py stops with it, writing nothing."""
    data = _bad_folder(tmp_path / "data", hms_sample_dir, "planted bug")
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("*.parquet", "*.onnx"))
    _plant_bug(monkeypatch)
    with pytest.raises(TypeError, match="planted bug"):
        predict_main([str(run), "--data-dir", str(data), "--runtime", "keras", "--fallback"])
    assert not (run / "test.parquet").exists()


@pytest.mark.slow
def test_a_recording_store_run_falls_back_per_eeg(tiny_run, hms_sample_dir, tmp_path, capsys):
    """A run of the full recipes (data.storage=recordings) predicts through the recording
    store: with --fallback (and in the notebook) an EEG it cannot store gets the prior, as with
    the window cache, instead of failing the whole test split."""
    data = _bad_folder(tmp_path / "data", hms_sample_dir, "missing file")
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("*.parquet", "*.onnx"))
    config = run / "fold1" / "config.yaml"
    recipe = yaml.safe_load(config.read_text())
    recipe["data"]["storage"] = "recordings"
    config.write_text(yaml.safe_dump(recipe))
    predict_main([str(run), "--data-dir", str(data), "--runtime", "keras", "--fallback"])
    assert "SUMMARY: 1 of 2 units (50%) got the class prior: 1 cannot be read;" in (
        capsys.readouterr().out
    )
    assert list(read_predictions(run / "test.parquet").meta["fallback"]) == [str(BAD_EEG)]


PLANTED_NOTEBOOK = f"""
import runpy, sys
import numpy as np
sys.path.insert(0, sys.argv[2])  # the model dataset's hmsbrain, which the notebook imports
from hmsbrain.hms import inputs
clean = inputs.clean_montage
def planted(eeg, cfg):
    if np.any(np.asarray(eeg)[..., 0, 0] == {BUG_MARK!r}):
        raise TypeError("planted bug")
    return clean(eeg, cfg)
inputs.clean_montage = planted
runpy.run_path(sys.argv[1], run_name="__main__")
"""


@pytest.mark.slow
def test_a_bug_in_one_eeg_is_logged_counted_and_fails_the_notebooks_dry_run(
    packaged, hms_sample_dir, tmp_path
) -> None:
    """The notebook, run here as on Kaggle but without KAGGLE_KERNEL_RUN_TYPE, with a TypeError
    planted in one test EEG's preprocessing: that EEG gets the prior, the error is logged with
    its traceback and counted in the summary, and the run fails after writing its submission."""
    data = _bad_folder(tmp_path / "data", hms_sample_dir, "planted bug")
    work, env = _kaggle_folders(tmp_path, data, packaged)
    model_dir = tmp_path / "input" / DATASET_SLUG
    done = subprocess.run(
        [sys.executable, "-c", PLANTED_NOTEBOOK, str(KERNEL_SOURCE), str(model_dir)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert f"test_eegs/{BAD_EEG}.parquet), a bug, not bad input: it gets" in done.stderr
    assert "Traceback" in done.stderr and "TypeError: planted bug" in done.stderr
    assert (
        "SUMMARY: 1 of 2 test EEGs (50%) got the class prior: 1 unexpected TypeError; runs left "
        "out of the blend (no runtime could run them): none; 50% OF THE SUBMISSION IS THE CLASS "
        "PRIOR (1 OF 2 TEST EEGS); UNEXPECTED ERRORS (BUGS, NOT BAD INPUT): 1" in done.stderr
    )
    assert "DryRunError: dry run: 50% OF THE SUBMISSION IS THE CLASS PRIOR" in done.stderr
    sub = pd.read_csv(work / "submission.csv")  # written first, as on Kaggle
    validate_submission(sub, data / "test.csv", data / "sample_submission.csv")
    prior = json.loads((packaged / "dist" / DATASET_SLUG / MANIFEST).read_text())["class_prior"]
    np.testing.assert_allclose(sub.set_index("eeg_id").loc[BAD_EEG], prior, atol=1e-12)


@pytest.mark.slow
def test_on_kaggle_a_bug_or_too_many_fallbacks_still_submit_and_shout(
    packaged, hms_sample_dir, tmp_path, monkeypatch, caplog
) -> None:
    """On Kaggle (KAGGLE_KERNEL_RUN_TYPE set) the notebook submits whatever happens, and its
    summary says in capitals what share is the prior; the same run here, a dry run, fails. Above
    HMS_MAX_FALLBACK, bad input alone fails a dry run too."""
    monkeypatch.setenv(KAGGLE_RUN_VARIABLE, "Batch")
    assert on_kaggle()
    monkeypatch.delenv(KAGGLE_RUN_VARIABLE)
    assert not on_kaggle()
    model_dir = packaged / "dist" / DATASET_SLUG
    prior = json.loads((model_dir / MANIFEST).read_text())["class_prior"]
    data = _bad_folder(tmp_path / "bug", hms_sample_dir, "planted bug")
    _plant_bug(monkeypatch)
    with caplog.at_level("INFO"):
        sub = run_kernel(model_dir, data, tmp_path / "a.csv").set_index("eeg_id")
    np.testing.assert_allclose(sub.loc[BAD_EEG], prior, atol=1e-12)
    assert any(r.exc_info for r in caplog.records if "UNEXPECTED ERROR" in r.getMessage())
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SUMMARY")]
    assert line.endswith(
        "; 50% OF THE SUBMISSION IS THE CLASS PRIOR (1 OF 2 TEST EEGS); UNEXPECTED ERRORS (BUGS, "
        "NOT BAD INPUT): 1, EACH TRACEBACK LOGGED ABOVE"
    )
    monkeypatch.undo()
    data = _bad_folder(tmp_path / "bad", hms_sample_dir, "missing file")
    caplog.clear()
    with caplog.at_level("INFO"):
        run_kernel(model_dir, data, tmp_path / "b.csv", max_fallback=0.4)
    assert (
        "50% OF THE SUBMISSION IS THE CLASS PRIOR (1 OF 2 TEST EEGS), ABOVE HMS_MAX_FALLBACK=0.4"
        in caplog.text
    )
    with pytest.raises(DryRunError, match=r"ABOVE HMS_MAX_FALLBACK=0\.4"):
        run_kernel(model_dir, data, tmp_path / "c.csv", max_fallback=0.4, dry_run=True)
    validate_submission(
        pd.read_csv(tmp_path / "c.csv"), data / "test.csv", data / "sample_submission.csv"
    )
    run_kernel(model_dir, data, tmp_path / "d.csv", dry_run=True)  # 0.5 is not above 0.5


@pytest.mark.slow
def test_package_fails_its_dry_run_on_a_bug_and_writes_nothing(
    packaged, tmp_path, monkeypatch, capsys
) -> None:
    """package.py's own check: the notebook on the test split of the runs' data, before the
    package moves into place; a bug in every EEG fails it, in one line, and leaves no package."""
    # Every test EEG: only the blank window the cache takes its shapes from is all zeros.
    _plant_bug(monkeypatch, np.any)
    args = [str(packaged / "sample.json"), "--out-dir", str(tmp_path / "dist")]
    with pytest.raises(SystemExit) as exit_info:
        package_main([*args, "--kaggle-user", "tester", "--no-wheels"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: dry run: 100% OF THE SUBMISSION IS THE CLASS PRIOR")
    assert err.endswith("is written, as on Kaggle); no package was written")
    assert not (tmp_path / "dist" / DATASET_SLUG).exists()


# --- The notebook submits whatever can or cannot run (issue 19) ---------------------------------


def _copy_package(packaged: Path, tmp_path: Path) -> Path:
    """A copy of the packaged dataset that a test may damage."""
    return Path(shutil.copytree(packaged / "dist" / DATASET_SLUG, tmp_path / DATASET_SLUG))


@pytest.mark.slow
def test_without_any_runtime_the_kernel_submits_the_class_prior(
    packaged, hms_sample_dir, tmp_path, monkeypatch, caplog
) -> None:
    """The crash a new user met: neither keras nor onnxruntime imports. auto picked keras and
    the notebook died in open_runtime; now every run gets the class prior, loudly, and the
    notebook submits."""
    for module in ("keras", "onnxruntime"):
        monkeypatch.setitem(sys.modules, module, None)  # `import` of it now fails
    model_dir = packaged / "dist" / DATASET_SLUG
    with caplog.at_level("WARNING"):
        sub = run_kernel(model_dir, hms_sample_dir, tmp_path / "submission.csv")
    written = pd.read_csv(tmp_path / "submission.csv")
    validate_submission(
        written, hms_sample_dir / "test.csv", hms_sample_dir / "sample_submission.csv"
    )
    manifest = json.loads((model_dir / MANIFEST).read_text())
    for run in manifest["runs"]:
        assert f"NO RUNTIME for {model_dir / 'runs' / run}: runtime auto: " in caplog.text
    assert "onnx: onnxruntime is not installed; keras: keras is not installed" in caplog.text
    assert "NO RUNTIME for any run: every test EEG gets the ensemble's class prior" in caplog.text
    np.testing.assert_allclose(sub[list(VOTE_COLUMNS)], [manifest["class_prior"]], atol=1e-12)


@pytest.mark.slow
def test_a_run_keras_cannot_load_is_left_out_and_the_blend_is_the_other_run_alone(
    packaged, hms_sample_dir, tmp_path, caplog
) -> None:
    """On the Keras runtime (Kaggle without onnxruntime), a run saved by a Keras newer than the
    installed one that it cannot read is left out of the blend: of two runs, the submission is
    the other run alone, and the log and the summary name the one left out."""
    model_dir = _copy_package(packaged, tmp_path)
    manifest = json.loads((model_dir / MANIFEST).read_text())
    good, bad = (model_dir / "runs" / name for name in manifest["runs"])
    resave_keras(bad / "fold1", "3.99.0", class_name="ModelOfKeras399")
    with caplog.at_level("WARNING"):
        sub = run_kernel(model_dir, hms_sample_dir, tmp_path / "submission.csv", runtime="keras")
    validate_submission(
        pd.read_csv(tmp_path / "submission.csv"),
        hms_sample_dir / "test.csv",
        hms_sample_dir / "sample_submission.csv",
    )
    assert "saved by Keras 3.99.0; Keras " in caplog.text and "is older" in caplog.text
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("NO RUNTIME")]
    keras_file = bad / "fold1" / "model.keras"
    assert line.startswith(f"NO RUNTIME for {bad}: runtime keras: keras: {keras_file}: Keras ")
    assert "cannot load it (saved by Keras 3.99.0): ValueError: " in line and "\n" not in line
    assert line.endswith(f"; every unit gets {bad.name}'s class prior, and a blend leaves it out")
    assert f"LEFT OUT of the blend, as no runtime could run them: {bad.name}; " in caplog.text
    assert f"runs left out of the blend (no runtime could run them): {bad.name}" in caplog.text
    good_frame = predict_run(good, str(hms_sample_dir), "test", runtime="keras", write=False).frame
    # The fitted blend weighs the run left out fully (the fixture's OOF favours it), so at its
    # weight its class prior would be the whole submission. The run that ran, weighing nothing,
    # takes the whole weight, and a linear or log blend of one run is that run itself.
    assert manifest["weights"][bad.name] > 0 and manifest["method"] in ("linear", "log")
    np.testing.assert_allclose(sub[list(VOTE_COLUMNS)], good_frame[list(VOTE_COLUMNS)], atol=1e-6)


@pytest.mark.slow
def test_the_kernel_projects_its_time_after_the_first_eeg(
    packaged, hms_sample_dir, tmp_path, caplog
) -> None:
    """After the first test EEG: its rate and the projected total, and a loud line when that
    exceeds the budget (Kaggle's 9 h by default); the submission is the same either way."""
    data = _bad_folder(tmp_path / "data", hms_sample_dir, "inf")  # two test EEGs
    model_dir = packaged / "dist" / DATASET_SLUG
    with caplog.at_level("INFO"):
        within = run_kernel(model_dir, data, tmp_path / "a.csv")
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("time: ")]
    assert line.startswith("time: 2 runs opened in ")
    assert "; the first test EEG took " in line and "EEGs/s); projected " in line
    assert line.endswith("for 2 test EEGs (budget 9.0 h)")
    assert "TIME BUDGET" not in caplog.text
    caplog.clear()
    with caplog.at_level("INFO"):
        over = run_kernel(model_dir, data, tmp_path / "b.csv", budget_hours=1e-6)
    assert "TIME BUDGET: the projected " in caplog.text
    assert "for 2 test EEGs exceeds the 0.0 s budget" in caplog.text
    pd.testing.assert_frame_equal(within, over)
