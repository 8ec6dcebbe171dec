"""Inference runtimes behind one interface: Keras, ONNX Runtime and TensorRT.

A runtime serves one fold model: ``input_names`` and ``predict(inputs) -> probs (N, 6)``.
``auto`` tries them fastest first (TensorRT, then ONNX Runtime, then Keras) and says in one line
which it took and why it passed over the faster ones. ONNX and TensorRT read the fold's
``model.onnx`` written by ``export.py``; Keras reads ``model.keras``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hmsbrain.core.parity import load_parity_inputs
from hmsbrain.core.predict import Runtime, cpu_count
from hmsbrain.runs import KERAS_FILE, ONNX_FILE, PARITY_INPUTS

if TYPE_CHECKING:
    import onnxruntime as ort

RUNTIMES = ("auto", "tensorrt", "onnx", "keras")
FASTEST_FIRST = ("tensorrt", "onnx", "keras")
# A TensorRT engine runs in FP16; its probabilities must match ONNX Runtime's (float32) on the
# fold's packaged parity windows within this, or it is not used.
TENSORRT_PROBS_ATOL = 1e-2

log = logging.getLogger(__name__)


class RuntimeUnavailableError(RuntimeError):
    """The requested runtime cannot run here; the message says why in one line."""


def onnx_providers() -> list[str]:
    """CUDA first where this onnxruntime build has it, CPU always."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def onnx_session(
    path: Path, providers: Sequence[str] | None = None, threads: int = 0
) -> ort.InferenceSession:
    """An ONNX Runtime session for a model exported by this project.

    Thread counts are set explicitly (``threads``, default: the CPUs this process may use, for
    operators; one for running graph branches): ONNX Runtime's own default reads the host's
    cores, which in a container oversubscribes the CPU and made its speed vary by 2x here.
    ``Pad_Fusion`` is disabled: it folds ResNet50V2's explicit padding into the following
    convolution in a way that moved its logits by 2.6e-3 relative to Keras (3e-7 without it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or cpu_count()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        str(path),
        options,
        providers=list(providers or onnx_providers()),
        disabled_optimizers=["Pad_Fusion"],
    )


class OnnxRuntime:
    name = "onnx"

    def __init__(self, fold_dir: Path, threads: int = 0) -> None:
        self.session = onnx_session(fold_dir / ONNX_FILE, threads=threads)
        self._names = tuple(i.name for i in self.session.get_inputs())
        self.providers = self.session.get_providers()

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._names

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {k: np.ascontiguousarray(inputs[k], dtype=np.float32) for k in self._names}
        return self.session.run(["probs"], feed)[0]


def unavailable_reason(kind: str, fold_dir: Path) -> str | None:
    """None when ``kind`` can serve ``fold_dir`` here, else one line saying why not."""
    if kind == "keras":
        return None if (fold_dir / KERAS_FILE).is_file() else f"{fold_dir / KERAS_FILE} not found"
    if not (fold_dir / ONNX_FILE).is_file():
        return f"{fold_dir / ONNX_FILE} not found (run `python src/export.py {fold_dir.parent}`)"
    if kind == "onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        return None
    if kind == "tensorrt":
        from hmsbrain.inference.tensorrt_runtime import unavailable_reason as trt_reason

        return trt_reason()
    raise ValueError(f"unknown runtime {kind!r}; valid: {list(RUNTIMES)}")


def choose_runtime(kind: str, fold_dirs: Sequence[Path], log: Callable[[str], None] = print) -> str:
    """The runtime to use for every fold in ``fold_dirs``; ``auto`` logs its choice in one line.

    An explicit runtime that cannot run raises RuntimeUnavailableError, never a fallback, so
    a benchmark or a submission never silently runs on something else than was asked for."""
    if kind not in RUNTIMES:
        raise RuntimeUnavailableError(f"unknown runtime {kind!r}; valid: {list(RUNTIMES)}")
    candidates = FASTEST_FIRST if kind == "auto" else (kind,)
    skipped = []
    for name in candidates:
        reason = next(filter(None, (unavailable_reason(name, d) for d in fold_dirs)), None)
        if reason is None:
            if kind == "auto":
                passed = "; ".join(skipped)
                log(f"runtime auto: using {name}" + (f" ({passed})" if passed else ""))
            return name
        skipped.append(f"{name}: {reason}")
    raise RuntimeUnavailableError(f"runtime {kind}: " + "; ".join(skipped))


def check_tensorrt(engine: Runtime, fold_dir: Path, atol: float = TENSORRT_PROBS_ATOL) -> float:
    """Largest probability difference between a TensorRT engine and ONNX Runtime (CPU, float32)
    on the fold's parity windows (``parity.npz``, written by export.py and packaged with the
    model); raises RuntimeUnavailableError when it exceeds ``atol`` or cannot be measured."""
    path = Path(fold_dir) / PARITY_INPUTS
    if not path.is_file():
        raise RuntimeUnavailableError(
            f"runtime tensorrt: {path} not found, so the engine cannot be checked before use "
            f"(re-run `python src/export.py {Path(fold_dir).parent}`)"
        )
    inputs = load_parity_inputs(path)
    reference = onnx_session(Path(fold_dir) / ONNX_FILE, providers=["CPUExecutionProvider"])
    names = [i.name for i in reference.get_inputs()]
    expected = reference.run(["probs"], {k: inputs[k] for k in names})[0]
    got = np.asarray(engine.predict(inputs))
    gap = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not gap <= atol:  # also catches NaN
        raise RuntimeUnavailableError(
            f"runtime tensorrt: the engine of {fold_dir} differs from ONNX Runtime by {gap:.3g} "
            f"in probability on {len(expected)} parity windows (FP16 tolerance {atol:g})"
        )
    return gap


def open_fold_runtime(
    kind: str,
    fold_dir: Path,
    cache_dir: Path,
    auto: bool = False,
    log_line: Callable[[str], None] = log.warning,
) -> Runtime:
    """:func:`open_runtime`, with every TensorRT engine checked against ONNX Runtime first.

    An engine that fails its check is never used: with ``auto`` the fold runs on ONNX Runtime
    instead and ``log_line`` says so loudly; asked for explicitly, it is an error."""
    runtime = open_runtime(kind, fold_dir, cache_dir)
    if kind != "tensorrt":
        return runtime
    try:
        gap = check_tensorrt(runtime, fold_dir)
    except RuntimeUnavailableError as exc:
        if not auto:
            raise
        log_line(f"TENSORRT NOT USED for {fold_dir}: {exc}; using onnx for this fold")
        return open_runtime("onnx", fold_dir, cache_dir)
    log.info("tensorrt engine of %s matches ONNX Runtime within %.2g", fold_dir, gap)
    return runtime


def open_runtime(kind: str, fold_dir: Path, cache_dir: Path) -> Runtime:
    """A concrete runtime (not ``auto``) for one fold; ``cache_dir`` holds TensorRT engines."""
    fold_dir = Path(fold_dir)
    if kind == "keras":
        # Imported here: the ONNX and TensorRT paths (e.g. a Kaggle kernel) need no TensorFlow.
        import keras

        from hmsbrain.models.runtime import KerasRuntime

        return KerasRuntime(keras.saving.load_model(fold_dir / KERAS_FILE))
    if kind == "onnx":
        return OnnxRuntime(fold_dir)
    if kind == "tensorrt":
        from hmsbrain.inference.tensorrt_runtime import TensorRTRuntime

        return TensorRTRuntime(fold_dir / ONNX_FILE, Path(cache_dir) / "engines")
    raise RuntimeUnavailableError(f"unknown runtime {kind!r}; valid: {list(RUNTIMES[1:])}")
