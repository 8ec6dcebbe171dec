"""The TensorRT runtime: type-checked against the official API stubs wherever mypy and
tensorrt-stubs are installed; built and run only where TensorRT and a CUDA GPU exist."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hmsbrain.inference.tensorrt_runtime import (
    TensorRTRuntime,
    TensorRTUnavailableError,
    unavailable_reason,
)

SOURCE = (
    Path(__file__).resolve().parents[1] / "src" / "hmsbrain" / "inference" / "tensorrt_runtime.py"
)

# tensorrt-stubs 10.13 cannot be used by mypy as installed:
# - its tensorrt/ folder has no py.typed marker, so mypy declines it ("import-untyped") and
#   tensorrt would silently be Any; the .pyi files are therefore copied onto mypy_path;
# - five signatures are not valid Python (parameters named ``in``; ``channel_axis`` without a
#   default after defaulted ones), a blocking syntax error; the copies are patched below;
# - the stubs have hundreds of errors of their own (a module-level ``bool`` DataType constant
#   shadows the builtin, so every ``-> bool`` is Any; an unimported ``typing_extensions``), so
#   errors inside them are ignored; only the code that uses them is checked.
STUB_FIXES = (
    (re.compile(r"(?<=[(,] )in(?=: )"), "in_"),
    (re.compile(r", channel_axis: int\)"), ", channel_axis: int = ...)"),
)
MYPY_CONFIG = """\
[mypy]
python_version = 3.11
follow_imports = silent
mypy_path = {stubs}

[mypy-tensorrt.*,tensorrt_bindings.*]
ignore_errors = True

# torch is Any whether or not it is installed (the code marks its imports), and mypy does not
# spend a minute analysing it.
[mypy-torch.*]
follow_imports = skip
"""
# Misuses of the API that mypy must report if it really sees the stubs, rather than Any.
PROBE = """\
import tensorrt as trt

builder = trt.Builder(trt.Logger())
builder.create_network("explicit batch")
builder.build_engine_from_thin_air()
"""

MypyRun = Callable[[Path], tuple[str, int]]


@pytest.fixture(scope="module")
def run_mypy(tmp_path_factory: pytest.TempPathFactory) -> MypyRun:
    """mypy with tensorrt-stubs usable: (report, exit status) for one file."""
    mypy_api = pytest.importorskip("mypy.api", reason="mypy is not installed")
    if importlib.util.find_spec("tensorrt_stubs") is None:
        pytest.skip("tensorrt-stubs is not installed (pip install --no-deps tensorrt-stubs)")
    stubs = [f for f in importlib.metadata.files("tensorrt-stubs") or [] if f.suffix == ".pyi"]
    assert stubs, "tensorrt-stubs is installed but lists no .pyi files"
    root = tmp_path_factory.mktemp("mypy")
    for stub in stubs:
        text = Path(str(stub.locate())).read_text(encoding="utf-8")
        for pattern, replacement in STUB_FIXES:
            text = pattern.sub(replacement, text)
        try:
            ast.parse(text)
        except SyntaxError as exc:  # a new stubs release broke differently: extend STUB_FIXES
            pytest.fail(f"tensorrt-stubs {stub} is still not valid Python after patching: {exc}")
        target = root / "stubs" / stub
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    config = root / "mypy.ini"
    config.write_text(MYPY_CONFIG.format(stubs=root / "stubs"))

    def run(path: Path) -> tuple[str, int]:
        args = ["--config-file", str(config), "--cache-dir", str(root / "cache"), str(path)]
        stdout, stderr, status = mypy_api.run(args)
        return stdout + stderr, status

    return run


def test_tensorrt_code_type_checks_against_official_stubs(run_mypy: MypyRun, tmp_path) -> None:
    report, status = run_mypy(SOURCE)
    assert status == 0, f"mypy found problems in {SOURCE.name}:\n{report}"

    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    report, status = run_mypy(probe)
    assert status == 1, f"mypy accepted misuse of the TensorRT API; are the stubs used?\n{report}"
    assert 'incompatible type "str"; expected "int"' in report, report
    assert 'has no attribute "build_engine_from_thin_air"' in report, report


def test_unavailable_here_is_one_clean_line(tmp_path) -> None:
    reason = unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and a CUDA GPU are usable here")
    spec = importlib.util.find_spec("tensorrt")
    if spec is not None and spec.origin is None:  # a namespace package: only stubs' tensorrt/
        assert "type stubs" in reason
    cache_dir = tmp_path / "engines"
    with pytest.raises(TensorRTUnavailableError) as excinfo:
        TensorRTRuntime(tmp_path / "missing.onnx", cache_dir)
    message = str(excinfo.value)
    assert message == reason
    assert message and "\n" not in message
    assert not cache_dir.exists()  # refused before touching anything


def write_tiny_onnx(path: Path, weight: np.ndarray) -> None:
    """The export's contract in miniature: ``raw`` (N, 4, 16) -> ``logits``, ``probs`` (N, 6)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["raw"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weight"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info("raw", TensorProto.FLOAT, ["N", 4, 16])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 6]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 6]),
        ],
        initializer=[numpy_helper.from_array(weight, "weight")],
    )
    # IR version 8 / opset 17, like the export: old enough for any TensorRT 10 parser.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.mark.gpu
def test_engine_matches_numpy_and_is_cached(tmp_path) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"TensorRT is not usable here: {reason}")
    pytest.importorskip("onnx")
    rng = np.random.default_rng(0)
    weight = (0.3 * rng.standard_normal((64, 6))).astype(np.float32)
    onnx_path = tmp_path / "tiny.onnx"
    write_tiny_onnx(onnx_path, weight)
    cache_dir = tmp_path / "engines"

    runtime = TensorRTRuntime(onnx_path, cache_dir, max_batch=8)
    assert runtime.input_names == ("raw",)
    raw = rng.standard_normal((20, 4, 16)).astype(np.float32)  # chunks of 8, 8 and 4
    probs = runtime.predict({"raw": raw})
    logits = raw.reshape(20, 64) @ weight
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert probs.dtype == np.float32 and probs.shape == (20, 6)
    np.testing.assert_allclose(probs, expected, atol=1e-2)  # FP16 kernels
    with pytest.raises(KeyError, match="raw"):
        runtime.predict({"image": raw})

    engine = runtime.engine_path
    assert sorted(cache_dir.glob("*.engine")) == [engine]
    assert engine.name.startswith("tiny-")
    assert (cache_dir / "timing.cache").stat().st_size > 0
    built = engine.stat().st_mtime_ns
    again = TensorRTRuntime(onnx_path, cache_dir, max_batch=8)
    assert again.engine_path == engine and engine.stat().st_mtime_ns == built  # reused
    np.testing.assert_allclose(again.predict({"raw": raw}), probs, atol=1e-6)

    engine.write_bytes(b"not an engine")  # a corrupt cache entry is rebuilt, not fatal
    rebuilt = TensorRTRuntime(onnx_path, cache_dir, max_batch=8)
    assert engine.stat().st_size > len(b"not an engine")
    np.testing.assert_allclose(rebuilt.predict({"raw": raw}), expected, atol=1e-2)
