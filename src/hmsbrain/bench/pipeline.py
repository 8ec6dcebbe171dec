"""Does the input pipeline keep up with the model? Windows per second each delivers, measured
at the full recipe, on the same machine, in one process.

The pipeline is what training runs: windows cut from the recording store of the full-scale
synthetic data, moved by a random shift, filtered, turned into the 512 x 512 image and the raw
branch, augmented, by ``train.workers`` threads. The model is a training step of the full
recipe (EfficientNetV2-B2 + WaveNet, weights from scratch) on a prepared batch. The two take
turns inside each repeat; medians and ranges are printed.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hmsbrain.bench.inference import spread
from hmsbrain.config import Config
from hmsbrain.core.inputs import model_inputs
from hmsbrain.data.cache import StreamInputs
from hmsbrain.data.sources import open_dataset
from hmsbrain.hms.fullscale import DEFAULT_LABELS, ensure_fullscale


def bench_input(
    cfg: Config,
    root: Path,
    fraction: float,
    batches: int,
    steps: int,
    repeats: int,
    workers: int,
    labels: Path = DEFAULT_LABELS,
) -> dict[str, list[float]]:
    """Windows/s of the input pipeline and of the model's training step, per repeat."""

    from hmsbrain.core.predict import cpu_count
    from hmsbrain.training.batches import EpochBatches, StageData
    from hmsbrain.training.setup import build_network

    data_dir, counts = ensure_fullscale(root / f"fraction-{fraction:g}", fraction, 0, labels)
    cfg.data.data_dir, cfg.data.storage = str(data_dir), "recordings"
    cfg.data.cache_dir = str(root / f"store-{fraction:g}")
    cfg.model.weights = "none"  # the step costs the same with any weights, and runs offline
    workers = workers or cpu_count()
    data = open_dataset(cfg, "train")
    names = model_inputs(cfg.model, cfg.preprocess)
    inputs = StreamInputs(data, names)
    stage = StageData.from_rows(data.rows, data)
    epoch = EpochBatches(stage, inputs, names, cfg.train, [0, 0, 0], data.montage, workers)
    batch = epoch[0]
    shapes = {n: a.shape[1:] for n, a in zip(names, batch[0], strict=True)}
    model = build_network(cfg, data, inputs, None)  # as training builds and compiles it
    model.train_on_batch(*batch)  # build and trace outside the timing
    size = cfg.train.batch_size
    rates: dict[str, list[float]] = {"pipeline": [], "model": []}
    with ThreadPoolExecutor(workers) as pool:
        for r in range(repeats):
            start = time.perf_counter()
            list(pool.map(epoch.__getitem__, range(1 + r * batches, 1 + (r + 1) * batches)))
            rates["pipeline"].append(batches * size / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(*batch)
            rates["model"].append(steps * size / (time.perf_counter() - start))
    ratio = [p / m for p, m in zip(rates["pipeline"], rates["model"], strict=True)]
    print(
        f"data: {data_dir} ({counts['eegs']} EEGs, {counts['windows']} windows), recording "
        f"store ({cfg.data.store_dtype}), shift +-{cfg.train.shift_seconds:g} s"
    )
    print(
        f"full recipe: inputs {', '.join(f'{n} {s}' for n, s in shapes.items())}, batch "
        f"{size}, {workers} pipeline threads, {repeats} repeats (median [min-max])"
    )
    print(f"input pipeline: {spread(rates['pipeline'], 1)} windows/s")
    print(
        f"model training step ({model.count_params():,} parameters): "
        f"{spread(rates['model'], 1)} windows/s"
    )
    print(
        f"pipeline / model: {spread(ratio, 1)}x "
        f"({'keeps up' if min(ratio) >= 1 else 'STARVES THE MODEL'})"
    )
    return rates
