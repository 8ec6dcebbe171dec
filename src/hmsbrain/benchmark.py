"""Speed and scale benchmarks (not tests): ``python src/benchmark.py WHICH``.

- ``preprocess``: the starter kernels' librosa loop against the batched mel spectrogram;
- ``inference``: every runtime (Keras, ONNX Runtime, TensorRT) on the same inputs;
- ``spectrogram``: the image built by the CPU input pipeline against the same image computed
  inside the model graph;
- ``input``: the input pipeline's windows/s against the model's training step, full recipe;
- ``scale``: the recording store of the real dataset's size, at fractions, extrapolated;
- ``eegnet``: EEGNet's spatial filters as the model's einsum against the paper's depthwise
  convolution, at 64 electrodes;
- ``reference``: the plain pipelines of ``reference_pipelines.py`` on a trained portfolio's epochs
  and folds, beside its members and blend (a comparison of scores, not of speed);
- ``gpu``: the GPU check, one short run on one GPU (Keras on JAX): the full recipes' training
  steps, GPU memory, hours per fold, the input pipeline, ONNX Runtime on CUDA and TensorRT,
  written to one JSON file (``--dry-run``: the same on the CPU at a tiny size).

Each benchmark times its alternatives in one process on the same inputs, in turns, and reports
medians and ranges over repeats, because absolute timings on shared machines are noisy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hmsbrain.config import HMS_DEMO_RECIPE, HMS_FULL_RECIPE, HMS_RECIPE, load_config, recipe_path

DEMO_CONFIG = recipe_path(HMS_DEMO_RECIPE)
FULL_CONFIG = recipe_path(HMS_FULL_RECIPE)
# The recipe each benchmark times unless --config names another: inference the CPU demo hybrid
# (what the demo runs use), spectrogram and input the full recipe, the rest the HMS settings.
DEFAULTS = {"inference": DEMO_CONFIG, "spectrogram": FULL_CONFIG, "input": FULL_CONFIG}
WHICH = ("preprocess", "inference", "spectrogram", "input", "scale", "eegnet", "reference", "gpu")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="benchmark.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("which", choices=WHICH, help="what to benchmark")
    parser.add_argument("--config", type=Path, default=None, help="YAML config file")
    parser.add_argument(
        "--windows", type=int, default=32, help="windows per timing (eegnet: per step)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timings per method, in turns (5 by default, reported as median and range)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads of each runtime / the input pipeline (default: the CPUs)",
    )
    parser.add_argument(
        "--run",
        type=Path,
        default=None,
        help="inference: time fold 0 of this trained run (default: a fresh "
        "model of --config, the CPU demo hybrid); reference: the trained portfolio",
    )
    parser.add_argument(
        "--pipelines",
        type=Path,
        default=None,
        help="reference: reference_pipelines.py (default: ../shared/tools/ beside the repository)",
    )
    parser.add_argument("--eegs", type=int, default=64, help="inference: test EEGs per timing")
    parser.add_argument("--batch-size", type=int, default=16, help="inference: batch size")
    parser.add_argument(
        "--fractions",
        default="0.025,0.05,0.1",
        help="scale: fractions of the full dataset to build",
    )
    parser.add_argument(
        "--fraction",
        type=float,
        default=0.025,
        help="input: the full-scale fraction whose store feeds the pipeline",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("data/fullscale"),
        help="scale/input: where the full-scale datasets and stores go",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("gpu_check.json"), help="gpu: the JSON file of figures"
    )
    parser.add_argument(
        "--steps", type=int, default=30, help="gpu: timed training steps per recipe"
    )
    parser.add_argument(
        "--onnx",
        type=Path,
        default=None,
        help="gpu: an exported model.onnx for ONNX Runtime (CUDA against CPU) and TensorRT",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="gpu: run every section on the CPU at a tiny size (the check of the check)",
    )
    parser.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    # Intermixed: overrides may follow options (argparse otherwise binds them to nothing).
    args = parser.parse_intermixed_args(argv)
    if args.which == "reference":
        from hmsbrain.bench.reference import bench_reference

        if args.run is None:
            parser.error("reference needs --run, a trained portfolio (train.py --fold all)")
        bench_reference(args.run, args.pipelines)
        return
    if args.which == "gpu":
        if args.config or args.overrides:
            parser.error("gpu times the shipped full recipes; it takes no --config or overrides")
        if args.steps < 1:
            parser.error(f"--steps must be at least 1, got {args.steps}")
        from hmsbrain.bench.gpu_check import gpu_check

        gpu_check(args.out, args.steps, args.onnx, args.dry_run, args.threads)
        return
    repeats = args.repeats or 5
    if repeats < 5:
        parser.error(f"{args.which} needs --repeats of at least 5 to say how noisy it is")
    cfg = load_config(
        args.config or DEFAULTS.get(args.which, recipe_path(HMS_RECIPE)), args.overrides
    )
    if args.which == "preprocess":
        from hmsbrain.bench.preprocess import bench_preprocess

        bench_preprocess(cfg, args.windows, repeats)
    elif args.which == "inference":
        from hmsbrain.bench.inference import bench_inference

        bench_inference(cfg, args.run, args.eegs, args.batch_size, repeats, args.threads)
    elif args.which == "spectrogram":
        from hmsbrain.bench.spectrogram import bench_spectrogram

        bench_spectrogram(cfg, args.windows, repeats)
    elif args.which == "input":
        from hmsbrain.bench.pipeline import bench_input

        bench_input(
            cfg, args.root, args.fraction, batches=2, steps=1, repeats=repeats, workers=args.threads
        )
    elif args.which == "eegnet":
        from hmsbrain.bench.eegnet import bench_eegnet

        bench_eegnet((args.windows, 512, 64), repeats)
    else:
        from hmsbrain.bench.scale import bench_scale

        fractions = [float(f) for f in args.fractions.split(",")]
        bench_scale(fractions, args.root, cfg.data.store_dtype, args.threads or 2)
