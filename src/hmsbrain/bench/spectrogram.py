"""Spectrogram image throughput: the CPU input pipeline against the same image in the model graph.

Both paths turn the same clean montage batch, HMS-shaped (the double banana's 16 channels in 4
chains, one 50 s window at the recipe's rate), into the recipe's image: (a) what the input
pipeline does, ``group_tiles`` on every core through ``map_batch`` then ``build_image``;
(b) :func:`hmsbrain.models.spectrogram.mel_image` run by Keras on batches, on whatever device
TensorFlow picks (a GPU when there is one, where it takes the spectral work off the CPU).
They take turns inside each repeat, so a slow spell of a shared machine hits both.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from hmsbrain.config import Config
from hmsbrain.dsp.image import build_image
from hmsbrain.dsp.mel import group_tiles
from hmsbrain.dsp.parallel import map_batch
from hmsbrain.hms.constants import EEG_WINDOW_SECONDS
from hmsbrain.hms.preprocess import HMS_MONTAGE


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _summary(values: list[float]) -> dict[str, float]:
    """Median and range over the repeats: a rate is only worth what its spread says."""
    return {"median": float(np.median(values)), "min": min(values), "max": max(values)}


def _text(s: dict[str, float], digits: int = 1) -> str:
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def bench_spectrogram(cfg: Config, n_windows: int, repeats: int) -> dict[str, object]:
    """Windows per second of both paths on the same random montage batch, and their largest
    absolute image difference; printed, and returned as ``{"cpu": {median, min, max},
    "graph": {...}, "graph_over_cpu": {...}, "max_abs_diff", "windows", "montage", "image",
    "batch", "graph_device"}``. Graph batches are ``train.val_batch_size`` windows."""
    import keras
    import tensorflow as tf

    from hmsbrain.models.spectrogram import mel_image

    p = cfg.preprocess
    groups = HMS_MONTAGE.groups
    n_samples = round(EEG_WINDOW_SECONDS * p.sample_rate)
    shape = (n_windows, len(HMS_MONTAGE.names), n_samples)
    rng = np.random.default_rng(cfg.train.seed)
    # Clipped noise at EEG amplitudes: the cost of either path does not depend on the values.
    montage = np.clip(40.0 * rng.standard_normal(shape), -p.clip_uv, p.clip_uv).astype(np.float32)

    def cpu() -> np.ndarray:
        return build_image(map_batch(lambda m: group_tiles(m, groups, p), montage))

    inputs = keras.Input(shape[1:], name="montage")
    model = keras.Model(inputs, mel_image(inputs, p, groups, p.sample_rate))
    batch = cfg.train.val_batch_size

    def graph() -> np.ndarray:
        # predict_on_batch returns host arrays, so device work is finished when it returns.
        parts = [model.predict_on_batch(montage[i : i + batch]) for i in range(0, n_windows, batch)]
        return np.concatenate(parts)

    expected, image = cpu(), graph()  # also the warm-up: graph tracing, thread pools, arenas
    gap = float(np.abs(image - expected).max())
    rates: dict[str, list[float]] = {"cpu": [], "graph": []}
    for _ in range(repeats):
        rates["cpu"].append(n_windows / _seconds(cpu))
        rates["graph"].append(n_windows / _seconds(graph))
    ratio = [g / c for g, c in zip(rates["graph"], rates["cpu"], strict=True)]
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    result: dict[str, object] = {
        "windows": n_windows,
        "montage": list(shape[1:]),
        "image": list(image.shape[1:]),
        "batch": batch,
        "graph_device": device,
        "max_abs_diff": gap,
        "cpu": _summary(rates["cpu"]),
        "graph": _summary(rates["graph"]),
        "graph_over_cpu": _summary(ratio),
    }
    print(
        f"{n_windows} windows of {shape[1]} x {shape[2]} -> image {tuple(image.shape[1:])}, "
        f"{repeats} repeats; windows/s as median [min-max]"
    )
    print(f"image max abs difference, graph vs CPU: {gap:.2e}")
    print(f"{'path':<40}{'windows/s':>24}")
    print(f"{'CPU pipeline (map_batch, all cores)':<40}{_text(result['cpu']):>24}")
    print(f"{f'graph (Keras on {device}, batch {batch})':<40}{_text(result['graph']):>24}")
    print(f"graph / CPU throughput: {_text(result['graph_over_cpu'], 2)}x")
    return result
