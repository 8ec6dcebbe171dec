"""The GPU check: what one fold of the full recipes costs on one GPU, in one short run.

``python src/benchmark.py gpu --out gpu_check.json`` (``bench/gpu_check.sh`` on the lent
machine). It runs Keras on JAX, because the lent machines have JAX and PyTorch but no
TensorFlow: nothing on this path imports TensorFlow (a test blocks it). For each full recipe
(``configs/hms/wavenet.yaml``, then ``configs/hms/effnetv2.yaml``) it times, on synthetic HMS
data of the real size (the demo generator's 50 s EEGs at 200 Hz and 10-minute spectrograms,
so every input has the recipe's real shape):

- the training step, for a fixed number of steps after a warm-up that compiles it: steps/s,
  windows/s and the GPU's peak memory;
- the input pipeline alone (windows cut from the recording store, shifted, filtered, turned
  into the image and the raw branch, augmented, by one thread per CPU): windows/s, against the
  model's;
- hours per fold, extrapolated to the real training set: a fold trains on 4/5 of its 17,001
  EEGs in stage 1 and of its 5,903 EEGs with a row of 10 or more votes in stage 2, each drawn
  ``train.samples_per_eeg`` times an epoch, at the slower of the model and the pipeline (they
  overlap in training). Validation is not counted.

Then ONNX Runtime's CUDA provider against its CPU provider (parity and throughput), and
TensorRT, on an ONNX model passed with ``--onnx``: exporting one needs TensorFlow (tf2onnx),
which the lent machines lack, so the model is exported beforehand where TensorFlow is installed
(``python src/export.py``). Each section that cannot run says why in one line (``skipped:``)
and in the JSON. Without a GPU the check says so in one line and does nothing else;
``--dry-run`` runs every section on the CPU at a tiny size instead (a test runs it).
"""

from __future__ import annotations

import importlib.util
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hmsbrain.atomic import write_json
from hmsbrain.config import Config, load_config, recipe_path

# The real training set, counted from train_labels.parquet (a test checks them where CI has it):
# its EEGs, and those with a labelled window of at least data.min_votes[1] = 10 votes (stage 2).
REAL_EEGS = 17_001
REAL_STAGE2_EEGS = 5_903
RECIPES = ("hms/wavenet.yaml", "hms/effnetv2.yaml")
# The dry run: the same recipes and code paths at a size two CPU cores get through in seconds.
DRY_RUN_OVERRIDES = [
    "preprocess.n_mels=16",
    "preprocess.n_frames=32",
    "model.effnetv2.size=B0",
    "model.wavenet.filters=8",
    "train.batch_size=2",
]
DRY_RUN_STEPS = 2
ONNX_CALLS = 20  # batches per ONNX Runtime / TensorRT timing
EXPORT_HINT = (
    "export one where TensorFlow is installed (python src/export.py RUN, then pass "
    "--onnx RUN/fold0/model.onnx)"
)


def gpu_devices() -> tuple[list[Any], str]:
    """JAX's GPUs, and what JAX sees instead where it has none."""
    import jax

    devices = jax.devices()
    gpus = [d for d in devices if d.platform == "gpu"]
    return gpus, ", ".join(sorted({d.platform for d in devices}))


def peak_memory(device: Any) -> int | None:
    """The device's peak bytes in use so far (None where JAX keeps no statistics: the CPU)."""
    stats = device.memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def demo_data(root: Path, dry_run: bool) -> Path:
    """Synthetic HMS data whose windows have the real size; few EEGs, since the check times
    batches, not epochs (the recording store is cut at batch time, whatever the set's size)."""
    from hmsbrain.hms.demo import DemoSize, ensure_demo

    size = DemoSize(n_patients=3 if dry_run else 12, mean_eegs_per_patient=2.0, n_test=0)
    return ensure_demo(root / "demo", seed=0, size=size)


def fold_hours(cfg: Config, windows_per_s: float) -> float:
    """Hours of one fold's training steps at ``windows_per_s``, at the real set's size."""
    share = (cfg.folds.n_folds - 1) / cfg.folds.n_folds
    steps = 0
    for eegs, epochs in (
        (REAL_EEGS, cfg.train.stage1_epochs),
        (REAL_STAGE2_EEGS, cfg.train.stage2_epochs),
    ):
        draws = math.ceil(eegs * share) * cfg.train.samples_per_eeg
        steps += epochs * math.ceil(draws / cfg.train.batch_size)
    return steps * cfg.train.batch_size / windows_per_s / 3600


def time_recipe(
    recipe: str, data_dir: Path, cache: Path, overrides: list[str], steps: int, workers: int
) -> dict[str, Any]:
    """One recipe's training step and input pipeline, on the same batch size and data."""
    from hmsbrain.core.inputs import model_inputs
    from hmsbrain.data.cache import StreamInputs
    from hmsbrain.data.sources import open_dataset
    from hmsbrain.training.batches import EpochBatches, StageData
    from hmsbrain.training.setup import build_network, raw_sample_rate

    cfg = load_config(recipe_path(recipe), overrides)
    cfg.data.data_dir, cfg.data.cache_dir = str(data_dir), str(cache)
    cfg.model.weights = "none"  # the step costs the same with any weights, and runs offline
    size = cfg.train.batch_size
    # Enough batches in the epoch for the warm-up and the timed pipeline batches.
    cfg.train.min_steps_per_epoch = 2 + steps
    data = open_dataset(cfg, "train")
    names = model_inputs(cfg.model, cfg.preprocess)
    inputs = StreamInputs(data, names)
    stage = StageData.from_rows(data.rows, data)
    epoch = EpochBatches(
        stage,
        inputs,
        names,
        cfg.train,
        [0, 0, 0],
        data.montage,
        workers,
        raw_rate=raw_sample_rate(cfg),
    )
    model = build_network(cfg, data, inputs, None)  # as training builds and compiles it
    batch = epoch[0]
    for _ in range(2):  # compile, and the first step's allocations, outside the timing
        model.train_on_batch(*batch)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*batch)  # returns the loss as numbers: waits for the device
    step_s = (time.perf_counter() - start) / steps
    with ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        list(pool.map(epoch.__getitem__, range(1, 1 + steps)))
        pipeline = steps * size / (time.perf_counter() - start)
    model_rate = size / step_s
    return {
        "recipe": recipe,
        "parameters": model.count_params(),
        "inputs": {n: list(a.shape[1:]) for n, a in zip(names, batch[0], strict=True)},
        "batch_size": size,
        "steps": steps,
        "steps_per_s": 1 / step_s,
        "model_windows_per_s": model_rate,
        "pipeline_windows_per_s": pipeline,
        "pipeline_threads": workers,
        "pipeline_over_model": pipeline / model_rate,
        "model_hours_per_fold": fold_hours(cfg, model_rate),
        "hours_per_fold": fold_hours(cfg, min(model_rate, pipeline)),
    }


def onnx_inputs(session: Any, batch: int) -> dict[str, np.ndarray]:
    """Random inputs of the model's shapes, its free (batch) dimension set to ``batch``."""
    rng = np.random.default_rng(0)
    feed = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) else batch for d in arg.shape]
        feed[arg.name] = rng.standard_normal(shape, dtype=np.float32)
    return feed


def rate(predict: Any, feed: dict[str, np.ndarray], batch: int) -> float:
    """Windows/s of ``predict`` over :data:`ONNX_CALLS` batches, after one warm-up call."""
    predict(feed)
    start = time.perf_counter()
    for _ in range(ONNX_CALLS):
        predict(feed)
    return ONNX_CALLS * batch / (time.perf_counter() - start)


def check_onnx(onnx: Path | None, batch: int, cache: Path) -> dict[str, Any]:
    """ONNX Runtime on CUDA against its CPU provider, and TensorRT, on ``onnx``; a section that
    cannot run holds ``skipped`` and why."""
    if onnx is None:
        reason = f"no ONNX model: {EXPORT_HINT}"
        return {"onnxruntime": {"skipped": reason}, "tensorrt": {"skipped": reason}}
    if importlib.util.find_spec("onnxruntime") is None:
        reason = "onnxruntime is not installed (pip install onnxruntime-gpu)"
        return {"onnxruntime": {"skipped": reason}, "tensorrt": {"skipped": reason}}
    import onnxruntime as ort

    cpu = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    feed = onnx_inputs(cpu, batch)
    reference = cpu.run(None, feed)[0]
    result: dict[str, Any] = {
        "onnxruntime": {"cpu_windows_per_s": rate(lambda f: cpu.run(None, f), feed, batch)}
    }
    cuda = None
    if "CUDAExecutionProvider" in ort.get_available_providers():
        cuda = ort.InferenceSession(
            str(onnx), providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
        )
    if cuda is None or cuda.get_providers()[0] != "CUDAExecutionProvider":
        # ONNX Runtime falls back to the CPU when the CUDA provider's libraries do not load.
        result["onnxruntime"]["skipped"] = (
            f"onnxruntime {ort.__version__} has no working CUDA provider (providers: "
            f"{', '.join(ort.get_available_providers())}; pip install onnxruntime-gpu)"
        )
    else:
        out = cuda.run(None, feed)[0]
        result["onnxruntime"] |= {
            "cuda_windows_per_s": rate(lambda f: cuda.run(None, f), feed, batch),
            "cuda_max_abs_diff": float(np.abs(out - reference).max()),
        }
    from hmsbrain.inference.tensorrt_runtime import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        result["tensorrt"] = {"skipped": reason}
        return result
    from hmsbrain.inference.tensorrt_runtime import TensorRTRuntime

    engine = TensorRTRuntime(onnx, cache, batch)
    out = engine.predict(feed)
    result["tensorrt"] = {
        "windows_per_s": rate(engine.predict, feed, batch),
        "max_abs_diff": float(np.abs(out - reference).max()),
    }
    return result


def gpu_check(
    out: Path, steps: int, onnx: Path | None, dry_run: bool, workers: int = 0
) -> dict[str, Any] | None:
    """Every section of the check, printed and written to ``out``; None (after one line) where
    there is no GPU and no ``dry_run``."""
    backend = os.environ.setdefault("KERAS_BACKEND", "jax")
    if backend != "jax":
        raise SystemExit(f"the GPU check runs Keras on JAX; KERAS_BACKEND is {backend!r}: unset it")
    if onnx is not None and not onnx.is_file():
        raise SystemExit(f"--onnx {onnx}: no such file; {EXPORT_HINT}")
    if not out.parent.is_dir():  # before minutes of timing, not after
        raise SystemExit(f"--out {out}: no folder {out.parent}")
    gpus, seen = gpu_devices()
    if not gpus and not dry_run:
        print(f"no GPU: JAX sees only {seen}; nothing measured (--dry-run runs it on the CPU)")
        return None
    import jax
    import keras

    from hmsbrain.core.predict import cpu_count

    device = gpus[0] if gpus else jax.devices()[0]
    workers = workers or cpu_count()
    overrides = DRY_RUN_OVERRIDES if dry_run else []
    steps = DRY_RUN_STEPS if dry_run else steps
    report: dict[str, Any] = {
        "device": str(getattr(device, "device_kind", device.platform)),
        "dry_run": dry_run,
        "jax": jax.__version__,
        "keras": f"{keras.__version__} on {keras.backend.backend()}",
        "real_eegs": REAL_EEGS,
        "real_stage2_eegs": REAL_STAGE2_EEGS,
        "recipes": [],
    }
    dry = " DRY RUN, on the CPU at tiny sizes" if dry_run else ""
    print(f"device: {report['device']} (JAX {jax.__version__}, Keras {report['keras']}){dry}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data_dir = demo_data(root, dry_run)
        # Wavenet first: JAX keeps one peak per process, so the larger model's peak comes last
        # and is its own.
        for recipe in RECIPES:
            figures = time_recipe(recipe, data_dir, root / "cache", overrides, steps, workers)
            figures["peak_gpu_bytes"] = peak_memory(device)
            report["recipes"].append(figures)
            print_recipe(figures)
            write_json(out, report)  # after each section: a run stopped later keeps these
        batch = report["recipes"][-1]["batch_size"]
        report |= check_onnx(onnx, batch, root / "engines")
    print_runtimes(report)
    write_json(out, report)
    print(f"written: {out}")
    return report


def print_recipe(f: dict[str, Any]) -> None:
    memory = "n/a" if f["peak_gpu_bytes"] is None else f"{f['peak_gpu_bytes'] / 2**30:.2f} GiB"
    shapes = ", ".join(f"{n} {tuple(s)}" for n, s in f["inputs"].items())
    print(
        f"{f['recipe']}: {f['parameters']:,} parameters, inputs {shapes}, batch {f['batch_size']}"
    )
    print(
        f"  training step: {f['steps_per_s']:.2f} steps/s ({f['model_windows_per_s']:.1f} "
        f"windows/s) over {f['steps']} steps, peak GPU memory {memory}"
    )
    verdict = "keeps up" if f["pipeline_over_model"] >= 1 else "STARVES THE MODEL"
    print(
        f"  input pipeline: {f['pipeline_windows_per_s']:.1f} windows/s on "
        f"{f['pipeline_threads']} threads, {f['pipeline_over_model']:.2f}x the model ({verdict})"
    )
    print(
        f"  hours per fold at {REAL_EEGS:,} EEGs: {f['hours_per_fold']:.2f} "
        f"(model alone {f['model_hours_per_fold']:.2f}; training steps only, no validation)"
    )


def print_runtimes(report: dict[str, Any]) -> None:
    ort_figures, trt = report["onnxruntime"], report["tensorrt"]
    if "cpu_windows_per_s" in ort_figures:
        print(f"onnxruntime CPU provider: {ort_figures['cpu_windows_per_s']:.1f} windows/s")
    if "cuda_windows_per_s" in ort_figures:
        print(
            f"onnxruntime CUDA provider: {ort_figures['cuda_windows_per_s']:.1f} windows/s, "
            f"{ort_figures['cuda_windows_per_s'] / ort_figures['cpu_windows_per_s']:.1f}x the CPU, "
            f"max |diff| {ort_figures['cuda_max_abs_diff']:.2e}"
        )
    if "skipped" in ort_figures:
        print(f"onnxruntime CUDA: skipped: {ort_figures['skipped']}")
    if "skipped" in trt:
        print(f"tensorrt: skipped: {trt['skipped']}")
    else:
        print(
            f"tensorrt: {trt['windows_per_s']:.1f} windows/s, max |diff| against the ONNX "
            f"CPU provider {trt['max_abs_diff']:.2e} (fp16)"
        )
