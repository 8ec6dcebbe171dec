"""TensorRT inference for the exported ONNX fold models (Kaggle GPU notebooks).

The engine is built from the ``model.onnx`` that :mod:`hmsbrain.inference.export` writes (inputs
``image`` and/or ``raw`` with a dynamic batch, outputs ``logits`` and ``probs``), with the
official TensorRT 10 Python API. Building takes from seconds to minutes, so two things are
cached on disk:

- the serialised engine, under a key covering everything that makes an engine invalid or
  different (the ONNX bytes, the TensorRT version, the GPU model, FP16, the batch limit);
- TensorRT's timing cache, which makes rebuilding for another ONNX file on the same GPU fast.

Device memory and the CUDA stream come from torch rather than from ``cuda-python`` or PyCUDA:
torch is preinstalled on Kaggle GPU notebooks (neither of the others is, and the competition's
notebooks run offline), and its caching allocator makes per-batch buffers cheap.

TensorRT and torch are imported only inside functions, so this module imports on a CPU-only
machine and :func:`unavailable_reason` can say in one line why TensorRT is not usable there.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hmsbrain.atomic import write_bytes

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

PROBS = "probs"
TIMING_CACHE = "timing.cache"


class TensorRTUnavailableError(RuntimeError):
    """TensorRT (or a CUDA GPU) is not usable here; the message says why in one line."""


def unavailable_reason() -> str | None:
    """None when TensorRT and a CUDA GPU are usable; otherwise one line saying why not
    (tensorrt not installed / only the type stubs are installed / torch missing / no CUDA GPU)."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: e.g. libnvinfer built for another CUDA
        if isinstance(exc, ModuleNotFoundError) and exc.name == "tensorrt":
            return "tensorrt is not installed"
        first_line = str(exc).partition("\n")[0]
        return f"tensorrt is installed but cannot be imported: {type(exc).__name__}: {first_line}"
    # tensorrt-stubs ships a tensorrt/ folder holding only __init__.pyi, which Python imports as
    # an empty namespace package: the import succeeds but there is no TensorRT behind it.
    if not hasattr(trt, "Builder"):
        return "only the type stubs are installed (tensorrt-stubs), not TensorRT itself"
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError:
        return "torch is not installed (it provides the GPU buffers and CUDA stream)"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch"
    return None


@functools.cache
def _logger() -> trt.ILogger:
    """The one logger for every builder and runtime: TensorRT keeps the first logger it is
    given process-wide and warns when later objects are handed a different one."""
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


def _engine_key(
    onnx_bytes: bytes, trt_version: str, gpu_name: str, fp16: bool, max_batch: int
) -> str:
    """Short hash of everything an engine depends on. An engine holds kernels picked by timing
    them on the GPU it was built on, and TensorRT rejects engines from other versions; Kaggle
    hands out P100s and T4s, and a cache directory saved as a dataset outlives the session, so
    the GPU model and the TensorRT version are part of the key."""
    digest = hashlib.sha256(onnx_bytes)
    digest.update(f"|{trt_version}|{gpu_name}|fp16={fp16}|max_batch={max_batch}".encode())
    return digest.hexdigest()[:16]


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    """``dims`` as a tuple. (Dims iterates at run time, but its stub declares only __getitem__
    and __len__, so type checkers reject ``tuple(dims)``.)"""
    return tuple(dims[i] for i in range(len(dims)))


def _build_engine(
    onnx_path: Path, onnx_bytes: bytes, cache_dir: Path, max_batch: int, fp16: bool
) -> bytes:
    """Parse ``onnx_bytes`` and build a serialised engine taking batches of 1 to ``max_batch``."""
    import tensorrt as trt

    builder = trt.Builder(_logger())
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, _logger())
    # ``path`` lets the parser find weights stored outside the ONNX file, if there are any.
    if not parser.parse(onnx_bytes, str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")

    config = builder.create_builder_config()
    # The export is float32; FP16 kernels are TensorRT's choice per layer under this flag, and
    # the network inputs and outputs stay float32. (TensorRT 10.12 deprecates the flag in favour
    # of strongly typed networks, which would need a float16 export.)
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)

    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = _dims(tensor.shape)
        if shape[0] != -1 or -1 in shape[1:]:
            raise RuntimeError(
                f"{onnx_path}: input {tensor.name!r} has shape {shape}; expected a dynamic batch "
                "dimension (-1) and static other dimensions"
            )
        # Inputs are fed in chunks of max_batch, so that is the shape to tune kernels for.
        # (set_shape is typed to take Dims; TensorRT would also convert a tuple itself.)
        batch_max = trt.Dims([max_batch, *shape[1:]])
        profile.set_shape(tensor.name, trt.Dims([1, *shape[1:]]), batch_max, batch_max)
    config.add_optimization_profile(profile)

    # Timing results are per GPU and TensorRT version; with ignore_mismatch=False a cache from
    # elsewhere is rejected, and the build then starts from an empty one.
    timing_path = cache_dir / TIMING_CACHE
    timing_cache = config.create_timing_cache(
        timing_path.read_bytes() if timing_path.exists() else b""
    )
    if not config.set_timing_cache(timing_cache, ignore_mismatch=False):
        log.warning("%s does not match this GPU or TensorRT version; starting anew", timing_path)
        timing_cache = config.create_timing_cache(b"")
        config.set_timing_cache(timing_cache, ignore_mismatch=False)

    log.info(
        "building a TensorRT engine from %s (fp16=%s, max batch %d)", onnx_path, fp16, max_batch
    )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f"TensorRT failed to build an engine from {onnx_path}; its log above says why"
        )
    write_bytes(timing_path, bytes(timing_cache.serialize()))
    return bytes(serialized)


class TensorRTRuntime:
    """Runs one exported ONNX model with TensorRT; ``predict`` returns the ``probs`` output."""

    name = "tensorrt"

    def __init__(
        self, onnx_path: Path, cache_dir: Path, max_batch: int = 64, fp16: bool = True
    ) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise TensorRTUnavailableError(reason)
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        import tensorrt as trt
        import torch  # type: ignore[import-not-found]

        onnx_path, cache_dir = Path(onnx_path), Path(cache_dir)
        onnx_bytes = onnx_path.read_bytes()
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = _engine_key(
            onnx_bytes, trt.__version__, torch.cuda.get_device_name(), fp16, max_batch
        )
        self.engine_path = cache_dir / f"{onnx_path.stem}-{key}.engine"
        self.max_batch = max_batch

        # Kept alive with the engine: TensorRT requires a runtime to outlive its engines.
        self._runtime = trt.Runtime(_logger())
        engine = None
        if self.engine_path.exists():
            engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if engine is None:  # truncated or otherwise corrupt; TensorRT logged the details
                log.warning("cached engine %s is unusable; rebuilding it", self.engine_path)
        if engine is None:
            serialized = _build_engine(onnx_path, onnx_bytes, cache_dir, max_batch, fp16)
            write_bytes(self.engine_path, serialized)
            engine = self._runtime.deserialize_cuda_engine(serialized)
            if engine is None:
                raise RuntimeError(f"TensorRT could not load the engine it built from {onnx_path}")
        self._engine = engine
        self._context = engine.create_execution_context()

        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = tuple(
            n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT
        )
        self._outputs = tuple(
            n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT
        )
        if PROBS not in self._outputs:
            raise RuntimeError(f"{onnx_path}: no {PROBS!r} output (outputs: {list(self._outputs)})")
        # Buffers are allocated as float32 below; another dtype would be read as garbage.
        not_float = [n for n in names if engine.get_tensor_dtype(n) != trt.DataType.FLOAT]
        if not_float:
            raise RuntimeError(f"{onnx_path}: tensors {not_float} are not float32")

    @property
    def input_names(self) -> tuple[str, ...]:
        """The engine's inputs, a subset of ``("image", "raw")`` in the ONNX file's order."""
        return self._inputs

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """float32 ``probs`` (N, 6) for ``inputs`` keyed by input name; extra keys are ignored.
        Batches larger than ``max_batch`` (the engine's limit) are run in chunks."""
        missing = [n for n in self._inputs if n not in inputs]
        if missing:
            raise KeyError(f"missing inputs {missing}; this engine takes {list(self._inputs)}")
        # Writeable too: torch.from_numpy warns about read-only arrays (such as memory maps).
        arrays = {n: np.require(inputs[n], np.float32, ["C", "W"]) for n in self._inputs}
        sizes = {n: len(a) for n, a in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"inputs have different batch sizes: {sizes}")
        n_rows = next(iter(sizes.values()))
        chunks = [
            self._run({n: a[start : start + self.max_batch] for n, a in arrays.items()})
            for start in range(0, n_rows, self.max_batch)
        ]
        if not chunks:
            return np.zeros((0, self._engine.get_tensor_shape(PROBS)[1]), np.float32)
        return np.concatenate(chunks)

    def _run(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import torch  # type: ignore[import-not-found]

        # All work goes on torch's current stream: the host-to-device copies are queued there,
        # so TensorRT (enqueued on the same stream) sees the inputs without an extra sync.
        stream = torch.cuda.current_stream()
        # Keep every device tensor referenced until the stream is synchronised: torch's caching
        # allocator would otherwise hand their memory to someone else while TensorRT uses it.
        buffers: dict[str, torch.Tensor] = {}
        for name, array in batch.items():
            buffers[name] = torch.from_numpy(array).cuda()
            if not self._context.set_input_shape(name, array.shape):
                shape = _dims(self._engine.get_tensor_shape(name))
                raise ValueError(
                    f"input {name!r} has shape {array.shape}; the engine takes {shape} "
                    f"(-1: batch of 1 to {self.max_batch})"
                )
        for name in self._outputs:
            shape = _dims(self._context.get_tensor_shape(name))
            buffers[name] = torch.empty(shape, dtype=torch.float32, device="cuda")
        for name, tensor in buffers.items():
            self._context.set_tensor_address(name, tensor.data_ptr())
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT failed to run the engine; its log above says why")
        stream.synchronize()
        return buffers[PROBS].cpu().numpy()
