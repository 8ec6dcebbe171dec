"""Inference speed of every runtime (Keras, ONNX Runtime, TensorRT) on the same inputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hmsbrain.config import Config, load_config
from hmsbrain.data.sources import open_dataset


@dataclass
class Timing:
    """One runtime's figures, one value per repeat: ms for one EEG alone (median of several
    calls) and EEGs/s over every row in batches."""

    latency_ms: list[float] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)


def _time_once(
    predict: Callable[[dict[str, np.ndarray]], object],
    one: dict[str, np.ndarray],
    batches: list[dict[str, np.ndarray]],
    n: int,
    timing: Timing,
) -> None:
    singles = []
    for _ in range(10):
        start = time.perf_counter()
        predict(one)
        singles.append(time.perf_counter() - start)
    start = time.perf_counter()
    for b in batches:
        predict(b)
    timing.rate.append(n / (time.perf_counter() - start))
    timing.latency_ms.append(1e3 * float(np.median(singles)))


def spread(values: list[float], digits: int = 2) -> str:
    """``median [min-max]``: a ratio is only worth what its spread over repeats says."""
    return f"{np.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def bench_inference(
    cfg: Config, run: Path | None, n_eegs: int, batch: int, repeats: int, threads: int = 0
) -> dict[str, Timing]:
    """Every available runtime on the same real inputs and the same model (a trained fold of
    ``run``, or a fresh model of ``cfg`` at its full input shapes); ratios against Keras.

    The runtimes take turns inside each repeat, so a slow spell of a shared machine hits all of
    them, and the ratio is formed per repeat; the median and the range over ``repeats`` are
    printed. Both runtimes get the same, explicit thread count (``threads``, default: the CPUs
    this process may use)."""
    import tempfile

    import keras
    import tensorflow as tf

    from hmsbrain.core.inputs import cached_inputs
    from hmsbrain.core.predict import cpu_count
    from hmsbrain.data.cache import open_cache
    from hmsbrain.inference.export import export_model
    from hmsbrain.inference.runtimes import OnnxRuntime, unavailable_reason
    from hmsbrain.models.registry import build_model
    from hmsbrain.models.runtime import KerasRuntime
    from hmsbrain.runs import ONNX_FILE, fold_dirs

    threads = threads or cpu_count()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process: its pools are fixed
        print("note: TensorFlow was already running; its thread counts could not be set")
    if run is not None:
        fold = fold_dirs(run)[0]
        cfg = load_config(fold / "config.yaml")
    data = open_dataset(cfg, "test")
    cache = open_cache(data, cfg, cached_inputs(cfg))
    inputs = cache.batch(np.arange(n_eegs) % len(data))
    if run is not None:
        model = keras.saving.load_model(fold / "model.keras")
    else:
        shapes = {k: v.shape[1:] for k, v in inputs.items()}
        model = build_model(
            cfg.model,
            shapes.get("image"),
            shapes.get("raw"),
            len(data.classes),
            cfg.preprocess.sample_rate / cfg.preprocess.raw_downsample,
        )
    names = tuple(t.name.split(":")[0] for t in model.inputs)
    inputs = {k: inputs[k] for k in names}
    one = {k: v[:1] for k, v in inputs.items()}
    batches = [{k: v[i : i + batch] for k, v in inputs.items()} for i in range(0, n_eegs, batch)]
    results: dict[str, Timing] = {}
    skipped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fold_dir = Path(tmp)
        export_model(model, fold_dir / ONNX_FILE, {k: v[:8] for k, v in inputs.items()})
        runtimes = {"keras": KerasRuntime(model), "onnx": OnnxRuntime(fold_dir, threads=threads)}
        reason = unavailable_reason("tensorrt", fold_dir)
        if reason is None:
            from hmsbrain.inference.tensorrt_runtime import TensorRTRuntime

            runtimes["tensorrt"] = TensorRTRuntime(fold_dir / ONNX_FILE, fold_dir, batch)
        else:
            skipped.append(f"tensorrt: {reason}")
        for runtime in runtimes.values():  # warm-up: graph tracing, memory arenas
            runtime.predict(one)
            runtime.predict(batches[0])
        labels = {
            name: f"onnx ({rt.providers[0].removesuffix('ExecutionProvider')})"
            if isinstance(rt, OnnxRuntime)
            else name
            for name, rt in runtimes.items()
        }
        for _ in range(repeats):
            for name, runtime in runtimes.items():
                _time_once(
                    runtime.predict,
                    one,
                    batches,
                    n_eegs,
                    results.setdefault(labels[name], Timing()),
                )
    shapes = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in inputs.items())
    print(f"model: {model.name} ({model.count_params():,} parameters), inputs {shapes}")
    print(
        f"{n_eegs} test EEGs (one window each, no TTA), batch {batch}, {threads} threads each, "
        f"{repeats} repeats; figures are median [min-max] over the repeats"
    )
    base = results["keras"]
    print(
        f"{'runtime':<16}{'ms/EEG (batch 1)':>22}{'EEGs/s':>24}{'latency x':>22}"
        f"{'throughput x':>22}"
    )
    for label, t in results.items():
        latency_x = [b / v for b, v in zip(base.latency_ms, t.latency_ms, strict=True)]
        rate_x = [v / b for b, v in zip(base.rate, t.rate, strict=True)]
        print(
            f"{label:<16}{spread(t.latency_ms):>22}{spread(t.rate):>24}"
            f"{spread(latency_x):>22}{spread(rate_x):>22}"
        )
    for line in skipped:
        print(f"not measured: {line}")
    return results
