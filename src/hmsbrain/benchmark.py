"""Speed benchmarks (not tests): ``python src/benchmark.py preprocess|inference``.

Each benchmark times the alternatives in one process on the same inputs and reports ratios,
because absolute timings on shared machines are noisy.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np

from hmsbrain.config import Config, load_config
from hmsbrain.constants import CHAIN_NAMES, PAIRS_PER_CHAIN, SAMPLE_RATE
from hmsbrain.dataio import HMSData
from hmsbrain.inputs import resolve_data_dir
from hmsbrain.preprocess import clean_montage, eeg_tiles, hop_length, map_batch, mel_power

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


def _latency_and_rate(
    predict: Callable[[dict[str, np.ndarray]], object], inputs: dict[str, np.ndarray],
    batch: int, repeats: int,
) -> tuple[float, float]:  # fmt: skip
    """Median milliseconds for one EEG alone, and the best EEGs/s over all rows in ``batch``es."""
    one = {k: v[:1] for k, v in inputs.items()}
    predict(one)  # warm-up: graph tracing, memory arenas
    n = len(next(iter(inputs.values())))
    batches = [{k: v[i : i + batch] for k, v in inputs.items()} for i in range(0, n, batch)]
    predict(batches[0])
    singles = []
    for _ in range(max(10, repeats * 5)):
        start = time.perf_counter()
        predict(one)
        singles.append(time.perf_counter() - start)
    rate = _rate(lambda: [predict(b) for b in batches], n, repeats)
    return 1e3 * float(np.median(singles)), rate


def bench_inference(
    cfg: Config, run: Path | None, n_eegs: int, batch: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """Every available runtime on the same real inputs and the same model (a trained fold of
    ``run``, or a fresh model of ``cfg`` at its full input shapes); ratios against Keras."""
    import tempfile

    import keras

    from hmsbrain.cache import open_cache
    from hmsbrain.export import ONNX_FILE, export_model
    from hmsbrain.inference import fold_dirs
    from hmsbrain.models import build_model
    from hmsbrain.runtimes import KerasRuntime, OnnxRuntime, unavailable_reason

    if run is not None:
        fold = fold_dirs(run)[0]
        cfg = load_config(fold / "config.yaml")
    data = HMSData(resolve_data_dir(cfg), "test")
    cache = open_cache(data, cfg)
    inputs = cache.batch(np.arange(n_eegs) % len(data))
    if run is not None:
        model = keras.saving.load_model(fold / "model.keras")
    else:
        model = build_model(cfg.model, inputs["image"].shape[1:], inputs["raw"].shape[1:])
    names = tuple(t.name.split(":")[0] for t in model.inputs)
    inputs = {k: inputs[k] for k in names}
    results: dict[str, tuple[float, float]] = {}
    skipped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fold_dir = Path(tmp)
        export_model(model, fold_dir / ONNX_FILE, {k: v[:8] for k, v in inputs.items()})
        runtimes = {"keras": lambda: KerasRuntime(model), "onnx": lambda: OnnxRuntime(fold_dir)}
        reason = unavailable_reason("tensorrt", fold_dir)
        if reason is None:
            from hmsbrain.tensorrt_runtime import TensorRTRuntime

            runtimes["tensorrt"] = lambda: TensorRTRuntime(fold_dir / ONNX_FILE, fold_dir, batch)
        else:
            skipped.append(f"tensorrt: {reason}")
        for name, make in runtimes.items():
            runtime = make()
            label = name
            if name == "onnx":
                label = f"onnx ({runtime.providers[0].removesuffix('ExecutionProvider')})"
            results[label] = _latency_and_rate(runtime.predict, inputs, batch, repeats)
    shapes = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in inputs.items())
    print(f"model: {model.name} ({model.count_params():,} parameters), inputs {shapes}")
    print(f"{n_eegs} test EEGs (one window each, no TTA), batch {batch}, best of {repeats}")
    base_latency, base_rate = results["keras"]
    print(f"{'runtime':<16}{'ms/EEG (batch 1)':>18}{'EEGs/s':>10}{'latency x':>11}{'speed x':>9}")
    for label, (latency, rate) in results.items():
        print(f"{label:<16}{latency:>18.1f}{rate:>10.1f}{base_latency / latency:>11.2f}"
              f"{rate / base_rate:>9.2f}")  # fmt: skip
    for line in skipped:
        print(f"not measured: {line}")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmark.py", description=__doc__)
    parser.add_argument("which", choices=["preprocess", "inference"], help="what to benchmark")
    parser.add_argument("--config", type=Path, default=None, help="YAML config file")
    parser.add_argument("--windows", type=int, default=32, help="EEG windows per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per method (best kept)")
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
        bench_preprocess(cfg, args.windows, args.repeats)
    else:
        bench_inference(cfg, args.run, args.eegs, args.batch_size, args.repeats)
