"""Command-line entry points; the scripts in ``src/`` only call these."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hmsbrain.config import ConfigError, describe, load_config
from hmsbrain.dataio import DataError
from hmsbrain.folds import FoldError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo_cpu.yaml"
# Errors that are the user's input, not a bug: one line, no stack trace, exit code 2.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError, FoldError, FileNotFoundError)


def _fail(exc: Exception) -> None:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)


def train_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train one fold (or all folds) of one backbone.",
        epilog="config keys (section.key=value):\n  " + "\n  ".join(describe()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fold", default="0", help="fold index, or 'all' (default 0)")
    parser.add_argument(
        "--backbone", default=None,
        help="effnetv2, resnet50v2, mobilenetv3, densenet201 or wavenet (default: the config's)",
    )  # fmt: skip
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG,
        help="YAML recipe (default: configs/demo_cpu.yaml, the CPU demo)",
    )  # fmt: skip
    parser.add_argument("--data-dir", default=None, help="Kaggle-layout data folder "
                        "(default: the embedded demo dataset)")  # fmt: skip
    parser.add_argument("--run-name", default=None, help="run folder (default: backbone name)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing run")
    parser.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    overrides = list(args.overrides)
    if args.backbone:
        overrides.append(f"model.backbone={args.backbone}")
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.run_name:
        overrides.append(f"train.run_name={args.run_name}")
    try:
        cfg = load_config(args.config, overrides)
        from hmsbrain.models import WeightsError, backbone_names
        from hmsbrain.training import RunExistsError, train_fold

        if cfg.model.backbone not in backbone_names():
            raise ConfigError(f"unknown backbone {cfg.model.backbone!r}; valid: {backbone_names()}")
        if args.fold == "all":
            folds = range(cfg.folds.n_folds)
        elif args.fold.isdigit():
            folds = [int(args.fold)]
        else:
            raise ConfigError(f"--fold must be an integer or 'all', got {args.fold!r}")
        summaries = [
            train_fold(cfg, k, resume=args.resume, overwrite=args.overwrite) for k in folds
        ]
    except (*USER_ERRORS, WeightsError, RunExistsError) as exc:
        _fail(exc)
    if len(summaries) > 1:
        for s in summaries:
            print(f"fold {s['fold']}: CV {s['cv_kl']:.4f} (class prior {s['class_prior_kl']:.4f})")
