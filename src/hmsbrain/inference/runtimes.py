"""Inference runtimes behind one interface: Keras, ONNX Runtime and TensorRT.

A runtime serves one fold model: ``input_names`` and ``predict(inputs) -> probs (N, 6)``.
``auto`` tries them fastest first (TensorRT, then ONNX Runtime, then Keras) and takes the first
whose module imports and whose every fold opens; it says in one line which it took and why it
passed over the faster ones. ONNX and TensorRT read the fold's ``model.onnx`` written by
``export.py``; Keras reads ``model.keras``. An accelerated path (a TensorRT engine, ONNX
Runtime's CUDA provider) is used only after its output matched ONNX Runtime on the CPU on the
fold's packaged parity windows.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import zipfile
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
# A TensorRT engine runs in FP16; its probabilities must match ONNX Runtime's (float32, CPU) on
# the fold's packaged parity windows within this, or it is not used.
TENSORRT_PROBS_ATOL = 1e-2
# The CUDA provider computes in float32 too: only the order of its sums (cuDNN's algorithms)
# differs from the CPU's, so its tolerance is tighter.
CUDA_PROBS_ATOL = 1e-3
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

log = logging.getLogger(__name__)


class RuntimeUnavailableError(RuntimeError):
    """The requested runtime cannot run here; the message says why in one line."""


def onnx_providers() -> list[str]:
    """CUDA first where this onnxruntime build has it, CPU always."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if CUDA in available and hasattr(ort, "preload_dlls"):
        # onnxruntime-gpu finds CUDA and cuDNN in the nvidia-* pip packages (Kaggle's torch
        # brings them) only when they are loaded first; without them the session silently
        # runs on the CPU.
        ort.preload_dlls()
    return [p for p in (CUDA, CPU) if p in available]


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

    def __init__(
        self, fold_dir: Path, threads: int = 0, providers: Sequence[str] | None = None
    ) -> None:
        self.session = onnx_session(fold_dir / ONNX_FILE, providers, threads)
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
        if importlib.util.find_spec("keras") is None:
            return "keras is not installed"
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


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).partition(chr(10))[0]}"


def open_fold_runtimes(
    kind: str,
    fold_dirs: Sequence[Path],
    cache_dirs: Sequence[Path],
    log: Callable[[str], None] = print,
    log_line: Callable[[str], None] = log.warning,
) -> tuple[str, list[Runtime]]:
    """The runtime of every fold in ``fold_dirs``, opened (``cache_dirs``: each fold's, for
    TensorRT engines): the one asked for, or with ``auto`` the fastest whose module imports and
    whose every fold opens, named in one ``log`` line with why the faster ones were passed over.

    Finding a module is not enough: a Keras may be installed that cannot read the models, or an
    onnxruntime whose libraries do not load. Whatever stops a fold from opening rules its runtime
    out. An explicit runtime that cannot run raises RuntimeUnavailableError, never a fallback,
    so a benchmark or a submission never silently runs on something else than was asked for;
    so does ``auto`` when no runtime can run."""
    if kind not in RUNTIMES:
        raise RuntimeUnavailableError(f"unknown runtime {kind!r}; valid: {list(RUNTIMES)}")
    auto = kind == "auto"
    skipped = []
    for name in FASTEST_FIRST if auto else (kind,):
        reason = next(filter(None, (unavailable_reason(name, d) for d in fold_dirs)), None)
        runtimes: list[Runtime] = []
        for fold, cache in zip(fold_dirs, cache_dirs, strict=True):
            if reason is not None:
                break
            try:
                runtimes.append(open_fold_runtime(name, fold, cache, auto, log_line))
            except RuntimeUnavailableError as exc:  # one line naming the file already
                reason = str(exc)
            except Exception as exc:  # any failure to open rules the runtime out, see above
                reason = f"{fold} does not open: {_first_line(exc)}"
        if reason is None:
            if auto:
                passed = "; ".join(skipped)
                log(f"runtime auto: using {name}" + (f" ({passed})" if passed else ""))
            return name, runtimes
        skipped.append(f"{name}: {reason}")
    raise RuntimeUnavailableError(f"runtime {kind}: " + "; ".join(skipped))


def check_parity_windows(candidate: Runtime, fold_dir: Path, atol: float, what: str) -> float:
    """Largest probability difference between ``candidate`` (``what``, e.g. "the TensorRT
    engine") and ONNX Runtime on the CPU (float32) on the fold's parity windows (``parity.npz``,
    written by export.py and packaged with the model); raises RuntimeUnavailableError when it
    exceeds ``atol`` or cannot be measured."""
    path = Path(fold_dir) / PARITY_INPUTS
    if not path.is_file():
        raise RuntimeUnavailableError(
            f"{what}: {path} not found, so it cannot be checked before use "
            f"(re-run `python src/export.py {Path(fold_dir).parent}`)"
        )
    inputs = load_parity_inputs(path)
    reference = onnx_session(Path(fold_dir) / ONNX_FILE, providers=[CPU])
    names = [i.name for i in reference.get_inputs()]
    expected = reference.run(["probs"], {k: inputs[k] for k in names})[0]
    got = np.asarray(candidate.predict(inputs))
    gap = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not gap <= atol:  # also catches NaN
        raise RuntimeUnavailableError(
            f"{what} of {fold_dir} differs from ONNX Runtime (CPU) by {gap:.3g} in probability "
            f"on {len(expected)} parity windows (tolerance {atol:g})"
        )
    return gap


def open_fold_runtime(
    kind: str,
    fold_dir: Path,
    cache_dir: Path,
    auto: bool = False,
    log_line: Callable[[str], None] = log.warning,
) -> Runtime:
    """:func:`open_runtime`, with every accelerated path checked against ONNX Runtime on the CPU
    on the fold's parity windows first.

    A TensorRT engine that fails its check is never used: with ``auto`` the fold runs on ONNX
    Runtime instead and ``log_line`` says so loudly; asked for explicitly, it is an error. An
    ONNX Runtime session on the CUDA provider that fails its check, or whose CUDA provider did
    not start, runs the fold on the CPU provider instead, as loudly: that is still the runtime
    asked for."""
    runtime = open_runtime(kind, fold_dir, cache_dir)
    if isinstance(runtime, OnnxRuntime):
        return _cuda_checked(runtime, fold_dir, log_line)
    if kind != "tensorrt":
        return runtime
    try:
        gap = check_parity_windows(runtime, fold_dir, TENSORRT_PROBS_ATOL, "the TensorRT engine")
    except RuntimeUnavailableError as exc:
        if not auto:
            raise
        log_line(f"TENSORRT NOT USED for {fold_dir}: {exc}; using onnx for this fold")
        return _cuda_checked(OnnxRuntime(fold_dir), fold_dir, log_line)
    log.info("tensorrt engine of %s matches ONNX Runtime within %.2g", fold_dir, gap)
    return runtime


def _cuda_checked(
    runtime: OnnxRuntime, fold_dir: Path, log_line: Callable[[str], None]
) -> OnnxRuntime:
    """``runtime`` if it runs on the CPU, or on a CUDA provider that passed its parity check;
    otherwise the fold on the CPU provider, said in one ``log_line``."""
    if CUDA not in onnx_providers():
        return runtime  # a CPU build: nothing else was tried
    if runtime.providers[0] != CUDA:
        log_line(
            f"CUDA NOT USED for {fold_dir}: onnxruntime has the CUDA provider but the session "
            "could not start it (onnxruntime's error above says why); using the CPU provider"
        )
        return runtime
    try:
        gap = check_parity_windows(runtime, fold_dir, CUDA_PROBS_ATOL, "the CUDA provider")
    except RuntimeUnavailableError as exc:
        log_line(f"CUDA NOT USED for {fold_dir}: {exc}; using the CPU provider for this fold")
        return OnnxRuntime(fold_dir, providers=[CPU])
    log.info("the CUDA provider on %s matches ONNX Runtime (CPU) within %.2g", fold_dir, gap)
    return runtime


def saved_keras_version(path: Path) -> str | None:
    """The Keras version that saved ``path``: a ``.keras`` archive records it in its
    ``metadata.json``. None when the file records none (or is no such archive)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return str(json.loads(archive.read("metadata.json"))["keras_version"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def keras_version_gap(saved: str | None, installed: str) -> str | None:
    """One line when the installed Keras may not read a model that Keras ``saved`` wrote: a
    newer Keras reads older files, an older release (major.minor) is not guaranteed to (it may
    lack a layer or an argument); None when it should."""
    from packaging.version import Version  # a dependency of Keras itself

    if saved is None:
        return f"it records no Keras version; Keras {installed} may not read it"
    if Version(installed).release[:2] < Version(saved).release[:2]:
        return f"saved by Keras {saved}; Keras {installed} here is older and may not read it"
    return None


def open_runtime(kind: str, fold_dir: Path, cache_dir: Path) -> Runtime:
    """A concrete runtime (not ``auto``) for one fold; ``cache_dir`` holds TensorRT engines."""
    fold_dir = Path(fold_dir)
    if kind == "keras":
        # Imported here: the ONNX and TensorRT paths (e.g. a Kaggle kernel) need no TensorFlow.
        import keras

        from hmsbrain.models.runtime import KerasRuntime

        path = fold_dir / KERAS_FILE
        saved = saved_keras_version(path)
        gap = keras_version_gap(saved, keras.__version__)
        if gap is not None:
            log.warning("%s: %s", path, gap)
        try:
            model = keras.saving.load_model(path)
        except Exception as exc:  # whatever Keras raises on a file it cannot read
            raise RuntimeUnavailableError(
                f"{path}: Keras {keras.__version__} cannot load it (saved by Keras "
                f"{saved or 'unknown'}): {_first_line(exc)}"
            ) from exc
        return KerasRuntime(model)
    if kind == "onnx":
        return OnnxRuntime(fold_dir)
    if kind == "tensorrt":
        from hmsbrain.inference.tensorrt_runtime import TensorRTRuntime

        return TensorRTRuntime(fold_dir / ONNX_FILE, Path(cache_dir) / "engines")
    raise RuntimeUnavailableError(f"unknown runtime {kind!r}; valid: {list(RUNTIMES[1:])}")
