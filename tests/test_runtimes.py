"""Runtimes behind one interface: ONNX Runtime matches Keras, ``auto`` says what it picked and
why, and an explicit runtime that cannot run is a one-line error, never a silent fallback."""

from __future__ import annotations

import shutil
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from hmsbrain.cli import predict_main
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.inference import runtimes, tensorrt_runtime
from hmsbrain.inference.export import ONNX_FILE, export_fold
from hmsbrain.inference.predict import fold_dirs, predict_run
from hmsbrain.inference.runtimes import (
    CPU,
    CUDA,
    CUDA_PROBS_ATOL,
    TENSORRT_PROBS_ATOL,
    OnnxRuntime,
    RuntimeUnavailableError,
    keras_version_gap,
    open_fold_runtime,
    open_fold_runtimes,
    open_runtime,
    saved_keras_version,
)
from hmsbrain.inference.tensorrt_runtime import unavailable_reason as tensorrt_reason
from hmsbrain.runs import KERAS_FILE
from tests.conftest import resave_keras


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


def _open(kind, run, **kwargs):
    """open_fold_runtimes on every fold of ``run``, each fold its own engine cache."""
    return open_fold_runtimes(kind, fold_dirs(run), fold_dirs(run), **kwargs)


def test_auto_without_export_falls_back_to_keras_and_says_why(keras_only_run) -> None:
    lines: list[str] = []
    kind, runtimes = _open("auto", keras_only_run, log=lines.append)
    assert kind == "keras" and [r.name for r in runtimes] == ["keras"]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith("runtime auto: using keras")
    assert "model.onnx not found" in lines[0] and "export.py" in lines[0]


def test_explicit_onnx_without_export_is_a_one_line_error(keras_only_run, capsys) -> None:
    with pytest.raises(RuntimeUnavailableError, match=r"model\.onnx not found"):
        _open("onnx", keras_only_run)
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
        _open("tensorrt", exported_run)
    lines: list[str] = []
    assert _open("auto", exported_run, log=lines.append)[0] == "onnx"
    assert lines[0].startswith("runtime auto: using onnx (tensorrt: ")


def test_unknown_runtime_is_an_error(exported_run) -> None:
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime 'tflite'"):
        _open("tflite", exported_run)


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
    with pytest.raises(
        RuntimeUnavailableError, match=r"differs from ONNX Runtime \(CPU\) by 0\.05"
    ):
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


# --- auto takes only a runtime that imports and opens every fold (issue 19) --------------------


def test_auto_with_no_runtime_importable_is_one_error_naming_each(exported_run, monkeypatch):
    """The new user's crash: no keras and no onnxruntime to import. auto said keras and then
    raised ModuleNotFoundError; now it is one line naming why each runtime cannot run."""
    for module in ("keras", "onnxruntime"):
        monkeypatch.setitem(sys.modules, module, None)  # `import` of it now fails
    with pytest.raises(RuntimeUnavailableError) as error:
        _open("auto", exported_run)
    message = str(error.value)
    assert "\n" not in message
    assert "onnx: onnxruntime is not installed" in message
    assert "keras: keras is not installed" in message


def test_auto_passes_over_a_runtime_whose_fold_does_not_open(exported_run, monkeypatch):
    """A module that is found but does not work (here onnxruntime's library fails to load) is
    passed over for the next runtime, and the log line says why."""

    class BrokenOnnx(OnnxRuntime):
        def __init__(self, *args, **kwargs) -> None:
            raise OSError("libonnxruntime.so.1: cannot open shared object file")

    monkeypatch.setattr(runtimes, "OnnxRuntime", BrokenOnnx)
    lines: list[str] = []
    kind, opened = _open("auto", exported_run, log=lines.append)
    assert kind == "keras" and [r.name for r in opened] == ["keras"]
    assert lines[0].startswith("runtime auto: using keras (tensorrt: ")
    assert "onnx: " in lines[0] and "does not open: OSError: libonnxruntime.so.1" in lines[0]
    with pytest.raises(RuntimeUnavailableError, match=r"runtime onnx: .*does not open: OSError"):
        _open("onnx", exported_run)  # asked for explicitly: a one-line error


# --- the Keras fallback knows its limits --------------------------------------------------------


def test_keras_version_gap() -> None:
    assert keras_version_gap("3.15.1", "3.15.1") is None
    assert keras_version_gap("3.15.1", "3.15.0") is None  # a patch release reads its files
    assert keras_version_gap("3.8.0", "3.15.1") is None  # newer reads older
    older = keras_version_gap("3.15.1", "3.8.0")
    assert older == "saved by Keras 3.15.1; Keras 3.8.0 here is older and may not read it"
    assert "records no Keras version" in str(keras_version_gap(None, "3.15.1"))


def test_keras_says_when_it_is_older_than_the_models_and_when_it_cannot_load_them(
    exported_run, tmp_path, caplog
) -> None:
    fold = tmp_path / "fold1"
    shutil.copytree(fold_dirs(exported_run)[0], fold)
    assert saved_keras_version(fold / KERAS_FILE) == keras.__version__  # Keras records it
    resave_keras(fold, "3.99.0")
    with caplog.at_level("WARNING"):
        assert open_runtime("keras", fold, tmp_path).name == "keras"  # older, yet it loads
    assert f"saved by Keras 3.99.0; Keras {keras.__version__} here is older" in caplog.text
    resave_keras(fold, "3.99.0", class_name="ModelOfKeras399")
    with pytest.raises(RuntimeUnavailableError) as error:
        open_runtime("keras", fold, tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{fold / KERAS_FILE}: Keras {keras.__version__} cannot load it")
    assert "(saved by Keras 3.99.0)" in message


# --- ONNX Runtime's CUDA provider, checked like TensorRT ------------------------------------------


class FakeCuda(OnnxRuntime):
    """ONNX Runtime as onnxruntime-gpu on a GPU would open it (none here): asked for the
    default providers, it reports the CUDA provider and adds an error of a chosen size to the
    CPU's output; asked for the CPU provider, it is the real CPU session. ``starts`` False: the
    CUDA provider did not start, as when CUDA or cuDNN libraries are missing."""

    error = 0.0
    starts = True

    def __init__(self, fold_dir, threads=0, providers=None) -> None:
        super().__init__(fold_dir, threads, [CPU])
        self.on_gpu = providers is None and self.starts
        if self.on_gpu:
            self.providers = [CUDA, CPU]

    def predict(self, inputs):
        probs = super().predict(inputs)
        return probs + self.error * (np.arange(probs.shape[1]) == 0) if self.on_gpu else probs


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(runtimes, "onnx_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(runtimes, "OnnxRuntime", FakeCuda)
    monkeypatch.setattr(FakeCuda, "error", 0.0)
    monkeypatch.setattr(FakeCuda, "starts", True)
    return FakeCuda


def test_the_cuda_provider_is_used_only_after_it_matches_the_cpu(exported_run, fake_cuda):
    fold = fold_dirs(exported_run)[0]
    lines: list[str] = []
    fake_cuda.error = 0.2 * CUDA_PROBS_ATOL  # float32 reordering: accepted
    assert open_fold_runtime("onnx", fold, fold, True, lines.append).providers[0] == CUDA
    assert lines == []
    fake_cuda.error = 5 * CUDA_PROBS_ATOL  # a broken provider (or GPU)
    runtime = open_fold_runtime("onnx", fold, fold, True, lines.append)
    assert runtime.providers == [CPU] and len(lines) == 1
    assert lines[0].startswith(f"CUDA NOT USED for {fold}: the CUDA provider of {fold} differs")
    assert "by 0.005 in probability on 4 parity windows" in lines[0]
    assert lines[0].endswith("; using the CPU provider for this fold")


def test_a_cuda_provider_that_does_not_start_or_cannot_be_checked_is_not_used(
    exported_run, tmp_path, fake_cuda
) -> None:
    fold = tmp_path / "fold1"
    shutil.copytree(fold_dirs(exported_run)[0], fold, ignore=shutil.ignore_patterns("parity.npz"))
    lines: list[str] = []
    runtime = open_fold_runtime("onnx", fold, tmp_path, log_line=lines.append)
    assert runtime.providers == [CPU] and "cannot be checked before use" in lines[0]
    fake_cuda.starts = False
    runtime = open_fold_runtime("onnx", fold, tmp_path, log_line=lines.append)
    assert runtime.providers == [CPU] and "could not start it" in lines[1]


@pytest.mark.gpu
def test_the_cuda_provider_on_a_real_gpu_matches_the_cpu(exported_run, caplog) -> None:
    """With onnxruntime-gpu and a GPU (a Kaggle T4; never CI), auto runs on CUDA."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu (this onnxruntime has no CUDA provider)")
    fold = fold_dirs(exported_run)[0]
    with caplog.at_level("WARNING"):
        runtime = open_fold_runtime("onnx", fold, fold, auto=True)
    assert runtime.providers[0] == CUDA, caplog.text
    assert "CUDA NOT USED" not in caplog.text
