"""Speed benchmarks (not tests): ``python src/benchmark.py preprocess|inference``.

Each benchmark times the alternatives in one process on the same inputs and reports ratios,
because absolute timings on shared machines are noisy.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import librosa
import numpy as np

from hmsbrain.config import Config, load_config
from hmsbrain.data.sources import open_dataset, resolve_data_dir
from hmsbrain.dsp.mel import hop_length, mel_power
from hmsbrain.dsp.parallel import map_batch
from hmsbrain.hms.constants import CHAIN_NAMES, PAIRS_PER_CHAIN, SAMPLE_RATE
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.preprocess import clean_montage, eeg_tiles

MEL_RTOL = 1e-4
DEMO_CONFIG = (
    Path(__file__).resolve().parents[2] / "configs" / "demo_cpu.yaml"
)  # the acceptance tolerance on the mel power spectrum


def starter_mel_power(montage: np.ndarray, cfg: Config) -> np.ndarray:
    """The public starter kernels' way: one ``librosa.feature.melspectrogram`` call per signal."""
    p = cfg.preprocess
    hop = hop_length(montage.shape[-1], p)
    out = np.empty((*montage.shape[:-1], p.n_mels, p.n_frames), dtype=np.float32)
    for index in np.ndindex(montage.shape[:-1]):
        out[index] = librosa.feature.melspectrogram(
            y=montage[index], sr=SAMPLE_RATE, n_fft=p.n_fft, hop_length=hop,
            win_length=p.win_length, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax,
        )[:, : p.n_frames]  # fmt: skip
    return out


def starter_tiles(eeg: np.ndarray, cfg: Config) -> np.ndarray:
    """Starter-style tiles: the per-signal librosa loop, then ``power_to_db`` per signal."""
    p = cfg.preprocess
    power = starter_mel_power(clean_montage(eeg, p), cfg)
    db = np.empty_like(power)
    for index in np.ndindex(power.shape[:-3]):
        ref = power[index].max()  # the window's peak, as the project's tiles use
        for ch in range(power.shape[-3]):
            db[index][ch] = librosa.power_to_db(power[index][ch], ref=ref, top_db=None)
    db = np.maximum(db, -p.top_db)
    shape = (*db.shape[:-3], len(CHAIN_NAMES), PAIRS_PER_CHAIN, *db.shape[-2:])
    half = p.top_db / 2.0
    return (db.reshape(shape).mean(axis=-3) + half) / half


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference relative to each spectrogram's peak power."""
    peak = reference.max(axis=(-2, -1), keepdims=True)
    return float((np.abs(ours - reference) / peak).max())


def _rate(fn: Callable[[], object], n_windows: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n_windows / best


def load_windows(cfg: Config, n_windows: int) -> np.ndarray:
    """``n_windows`` raw EEG windows of the configured dataset (cycled if it has fewer)."""
    data = HMSData(resolve_data_dir(cfg), "train")
    rows = np.arange(n_windows) % len(data)
    return np.stack([data.eeg_window(i) for i in rows])


def bench_preprocess(cfg: Config, n_windows: int, repeats: int) -> float:
    eeg = load_windows(cfg, n_windows)
    montage = clean_montage(eeg, cfg.preprocess)
    starter_mel_power(montage[:1, :1], cfg)  # compile librosa's numba kernels outside the timing
    error = relative_error(mel_power(montage, cfg.preprocess), starter_mel_power(montage, cfg))
    tile_gap = float(np.abs(eeg_tiles(eeg, cfg.preprocess) - starter_tiles(eeg, cfg)).max())
    starter = _rate(lambda: starter_tiles(eeg, cfg), n_windows, repeats)
    ours = _rate(lambda: map_batch(lambda x: eeg_tiles(x, cfg.preprocess), eeg), n_windows, repeats)
    print(f"windows: {n_windows} x {eeg.shape[1]} samples x {eeg.shape[2]} channels")
    print(f"mel power max relative error vs librosa: {error:.2e} (tolerance {MEL_RTOL:.0e})")
    print(f"image tiles max abs difference vs starter loop: {tile_gap:.2e}")
    print(f"{'method':<34}{'windows/s':>12}")
    print(f"{'starter loop (librosa per signal)':<34}{starter:>12.1f}")
    print(f"{'hmsbrain (batched)':<34}{ours:>12.1f}")
    if error > MEL_RTOL:
        raise SystemExit(f"mel spectrogram differs from librosa by {error:.2e} > {MEL_RTOL:.0e}")
    speedup = ours / starter
    print(f"speedup: {speedup:.1f}x")
    return speedup


@dataclass
class Timing:
    """One runtime's figures, one value per repeat: ms for one EEG alone (median of several
    calls) and EEGs/s over every row in batches."""

    latency_ms: list[float] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)


def _time_once(
    predict: Callable[[dict[str, np.ndarray]], object], one: dict[str, np.ndarray],
    batches: list[dict[str, np.ndarray]], n: int, timing: Timing,
) -> None:  # fmt: skip
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


def _spread(values: list[float]) -> str:
    """``median [min-max]``: a ratio is only worth what its spread over repeats says."""
    return f"{np.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


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

    from hmsbrain.data.cache import open_cache
    from hmsbrain.inference.export import export_model
    from hmsbrain.inference.runtimes import KerasRuntime, OnnxRuntime, cpu_count, unavailable_reason
    from hmsbrain.models.inputs import cached_inputs
    from hmsbrain.models.registry import build_model
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
            cfg.model, shapes.get("image"), shapes.get("raw"), len(data.classes),
            cfg.preprocess.sample_rate / cfg.preprocess.raw_downsample,
        )  # fmt: skip
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
            if isinstance(rt, OnnxRuntime) else name
            for name, rt in runtimes.items()
        }  # fmt: skip
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
            f"{label:<16}{_spread(t.latency_ms):>22}{_spread(t.rate):>24}"
            f"{_spread(latency_x):>22}{_spread(rate_x):>22}"
        )
    for line in skipped:
        print(f"not measured: {line}")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmark.py", description=__doc__)
    parser.add_argument("which", choices=["preprocess", "inference"], help="what to benchmark")
    parser.add_argument("--config", type=Path, default=None, help="YAML config file")
    parser.add_argument("--windows", type=int, default=32, help="EEG windows per timing")
    parser.add_argument(
        "--repeats", type=int, default=None,
        help="timings per method (preprocess: best of 3 by default; inference: 5, reported as "
        "median and range)",
    )  # fmt: skip
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="inference: threads of each runtime (default: the CPUs available)",
    )
    parser.add_argument("--run", type=Path, default=None,
                        help="inference: time fold 0 of this trained run (default: a fresh "
                        "model of --config, the CPU demo hybrid)")  # fmt: skip
    parser.add_argument("--eegs", type=int, default=64, help="inference: test EEGs per timing")
    parser.add_argument("--batch-size", type=int, default=16, help="inference: batch size")
    parser.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    # Intermixed: overrides may follow options (argparse otherwise binds them to nothing).
    args = parser.parse_intermixed_args(argv)
    # Preprocessing is timed at the full recipe's sizes (schema defaults); inference defaults to
    # the CPU demo hybrid, which the demo runs use.
    default = DEMO_CONFIG if args.which == "inference" else None
    cfg = load_config(args.config or default, args.overrides)
    if args.which == "preprocess":
        bench_preprocess(cfg, args.windows, args.repeats or 3)
    else:
        repeats = args.repeats or 5
        if repeats < 5:
            parser.error("inference needs --repeats of at least 5 to say how noisy its ratio is")
        bench_inference(cfg, args.run, args.eegs, args.batch_size, repeats, args.threads)
