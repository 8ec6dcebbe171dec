"""Runtimes behind one interface: ONNX Runtime matches Keras, ``auto`` says what it picked and
why, and an explicit runtime that cannot run is a one-line error, never a silent fallback."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from hmsbrain.cli import predict_main
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.inference import tensorrt_runtime
from hmsbrain.inference.export import ONNX_FILE, export_fold
from hmsbrain.inference.predict import fold_dirs, predict_run
from hmsbrain.inference.runtimes import (
    TENSORRT_PROBS_ATOL,
    OnnxRuntime,
    RuntimeUnavailableError,
    choose_runtime,
    open_fold_runtime,
    open_runtime,
)
from hmsbrain.inference.tensorrt_runtime import unavailable_reason as tensorrt_reason


@pytest.fixture(scope="module")
def keras_only_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run with no ONNX export."""
    run = tmp_path_factory.mktemp("keras_only") / "effnetv2"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("model.onnx", "*.parquet"))
    return run


@pytest.fixture(scope="module")
def exported_run(tiny_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("exported") / "effnetv2"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("*.parquet"))
    for fold in fold_dirs(run):
        if not (fold / ONNX_FILE).is_file():
            export_fold(fold)
    return run


def test_auto_without_export_falls_back_to_keras_and_says_why(keras_only_run) -> None:
    lines: list[str] = []
    kind = choose_runtime("auto", fold_dirs(keras_only_run), log=lines.append)
    assert kind == "keras"
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith("runtime auto: using keras")
    assert "model.onnx not found" in lines[0] and "export.py" in lines[0]


def test_explicit_onnx_without_export_is_a_one_line_error(keras_only_run, capsys) -> None:
    with pytest.raises(RuntimeUnavailableError, match=r"model\.onnx not found"):
        choose_runtime("onnx", fold_dirs(keras_only_run))
    with pytest.raises(SystemExit) as exit_info:
        predict_main([str(keras_only_run), "--runtime", "onnx"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: runtime onnx:") and "\n" not in err
    assert not (keras_only_run / "test.parquet").exists()


def test_tensorrt_here_is_refused_cleanly(exported_run) -> None:
    if tensorrt_reason() is None:
        pytest.skip("TensorRT is usable on this machine")
    with pytest.raises(RuntimeUnavailableError, match="runtime tensorrt: tensorrt"):
        choose_runtime("tensorrt", fold_dirs(exported_run))
    lines: list[str] = []
    assert choose_runtime("auto", fold_dirs(exported_run), log=lines.append) == "onnx"
    assert lines[0].startswith("runtime auto: using onnx (tensorrt: ")


def test_unknown_runtime_is_an_error(exported_run) -> None:
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime 'tflite'"):
        choose_runtime("tflite", fold_dirs(exported_run))


@pytest.mark.slow
def test_onnx_and_keras_runtimes_agree(exported_run, small_demo, tmp_path) -> None:
    """Same rows, same TTA: the ONNX Runtime prediction equals Keras' within 1e-5."""
    fold = fold_dirs(exported_run)[0]
    rng = np.random.default_rng(0)
    keras_rt, onnx_rt = (open_runtime(k, fold, tmp_path) for k in ("keras", "onnx"))
    assert keras_rt.input_names == onnx_rt.input_names == ("image", "raw")
    batch = {
        t.name.split(":")[0]: rng.standard_normal((3, *t.shape[1:])).astype(np.float32)
        for t in keras_rt.model.inputs
    }
    np.testing.assert_allclose(onnx_rt.predict(batch), keras_rt.predict(batch), atol=1e-5)
    by_runtime = {
        kind: predict_run(exported_run, str(small_demo), "test", runtime=kind, write=False).frame
        for kind in ("keras", "onnx")
    }
    pd.testing.assert_frame_equal(by_runtime["onnx"], by_runtime["keras"], atol=1e-5)
    assert by_runtime["onnx"][list(VOTE_COLUMNS)].sum(axis=1).sub(1).abs().max() < 1e-6


class FakeEngine:
    """Stands in for a TensorRT engine (none can run here): ONNX Runtime's output plus an error
    of a chosen size, as FP16 rounding (small) or a broken engine (large) would give."""

    error = 0.0

    def __init__(self, onnx_path, cache_dir, *args) -> None:
        self.inner = OnnxRuntime(onnx_path.parent)
        self.input_names = self.inner.input_names
        self.name = "tensorrt"

    def predict(self, inputs):
        probs = self.inner.predict(inputs)
        return probs + self.error * (np.arange(probs.shape[1]) == 0)


@pytest.fixture
def fake_tensorrt(monkeypatch):
    monkeypatch.setattr(tensorrt_runtime, "unavailable_reason", lambda: None)
    monkeypatch.setattr(tensorrt_runtime, "TensorRTRuntime", FakeEngine)
    return FakeEngine


@pytest.mark.slow
def test_a_tensorrt_engine_is_used_only_after_it_matches_onnx(
    exported_run, small_demo, fake_tensorrt, monkeypatch, caplog
) -> None:
    fold = fold_dirs(exported_run)[0]
    assert (fold / "parity.npz").is_file()  # exported with the windows the check runs on
    fake_tensorrt.error = 0.2 * TENSORRT_PROBS_ATOL  # FP16-sized error: accepted
    assert open_fold_runtime("tensorrt", fold, fold, auto=True).name == "tensorrt"
    fake_tensorrt.error = 5 * TENSORRT_PROBS_ATOL  # a broken engine
    with pytest.raises(RuntimeUnavailableError, match=r"differs from ONNX Runtime by 0\.05"):
        open_fold_runtime("tensorrt", fold, fold)  # asked for explicitly: an error
    with caplog.at_level("WARNING"):
        result = predict_run(exported_run, str(small_demo), "test", write=False)
    assert f"TENSORRT NOT USED for {fold}" in caplog.text  # auto: loud, and onnx instead
    assert result.meta["runtime"] == ["onnx"]
    onnx = predict_run(exported_run, str(small_demo), "test", runtime="onnx", write=False)
    pd.testing.assert_frame_equal(result.frame, onnx.frame)


def test_an_engine_without_parity_windows_is_not_trusted(exported_run, tmp_path, fake_tensorrt):
    fold = tmp_path / "fold1"
    shutil.copytree(fold_dirs(exported_run)[0], fold, ignore=shutil.ignore_patterns("parity.npz"))
    with pytest.raises(RuntimeUnavailableError, match="cannot be checked"):
        open_fold_runtime("tensorrt", fold, tmp_path)
    lines: list[str] = []
    runtime = open_fold_runtime("tensorrt", fold, tmp_path, auto=True, log_line=lines.append)
    assert runtime.name == "onnx" and lines[0].startswith("TENSORRT NOT USED")
