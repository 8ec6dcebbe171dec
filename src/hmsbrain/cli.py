"""Command-line entry points; the scripts in ``src/`` only call these."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from hmsbrain.config import (
    CONFIGS_DIR,
    GENERIC_RECIPE,
    HMS_DEMO_RECIPE,
    Config,
    ConfigError,
    describe,
    load_config,
    recipe_path,
)
from hmsbrain.data.base import DataError
from hmsbrain.runs import baseline_figures
from hmsbrain.training.cluster import (
    ADDRESSES,
    CHILD,
    PROCESS_ID,
    PROCESSES,
    ClusterError,
    cluster_from_env,
    supervise,
)
from hmsbrain.training.folds import FoldError

# TensorFlow's C++ INFO lines (CPU features, one graph-optimiser session per export) bury the
# project's own output; TF_CPP_MIN_LOG_LEVEL=0 brings them back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONFIGS = CONFIGS_DIR
DEFAULT_CONFIG = recipe_path(HMS_DEMO_RECIPE)  # HMS data (the demo included)
GENERIC_CONFIG = recipe_path(GENERIC_RECIPE)  # every other layout
# Errors that are the user's input, not a bug: one line, no stack trace, exit code 2.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError, FoldError, FileNotFoundError)


def _fail(exc: Exception | str) -> None:
    print(f"error: {exc}", file=sys.stderr)
    if isinstance(exc, ClusterError):
        # sys.exit would run JAX's exit handler, which waits (the cluster's timeout) for
        # processes that are gone, then aborts with a stack trace.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)
    sys.exit(2)


def _supervise_cluster(args: argparse.Namespace) -> None:
    """With several processes, the flags name the cluster (as Keras' variables do), and this
    process supervises its training child: one line, not a C++ abort, when the cluster fails
    (hmsbrain.training.cluster)."""
    for flag, name in (
        ("coordinator", ADDRESSES),
        ("num_processes", PROCESSES),
        ("process_id", PROCESS_ID),
    ):
        if getattr(args, flag, None) is not None:  # diagnose.py reads Keras' variables alone
            os.environ[name] = str(getattr(args, flag))
    if os.environ.get(CHILD):
        return
    try:
        cluster = cluster_from_env()
    except ClusterError as exc:
        _fail(exc)
    if cluster is not None:
        sys.exit(supervise(cluster, [sys.executable, *sys.argv]))


def _with_flags(args: argparse.Namespace, keys: dict[str, str]) -> list[str]:
    """The positional key=value overrides, then each flag given, as its config key (last, so
    a flag wins over the same key among the overrides)."""
    flags = [f"{key}={getattr(args, name)}" for name, key in keys.items() if getattr(args, name)]
    return [*args.overrides, *flags]


def train_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train one fold (or all folds) of one backbone.",
        epilog="config keys (section.key=value):\n  " + "\n  ".join(describe()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fold", default="0", help="fold index, or 'all' (default 0)")
    parser.add_argument(
        "--backbone",
        default=None,
        help="effnetv2, resnet50v2, mobilenetv3, densenet201 (image, + WaveNet), or wavenet, "
        "eegnet, shallow, bandpower (raw signals) (default: the config's)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML recipe (default: configs/{HMS_DEMO_RECIPE} for HMS data, "
        f"configs/{GENERIC_RECIPE} for any other layout, as --data-dir or data.data_dir says)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data folder (the Kaggle HMS layout or any layout of 'Your own EEG data'), or "
        "demo:hms, demo:emotiv, demo:trials64, demo:mindwave (default: demo:hms)",
    )
    parser.add_argument("--run-name", default=None, help="run folder (default: backbone name)")
    parser.add_argument(
        "--strategy",
        default=None,
        choices=["none", "mirrored", "data_parallel"],
        help="several devices: mirrored (one host, its GPUs) or data_parallel (KERAS_BACKEND=jax, "
        "one or several hosts); default: the config's train.strategy",
    )
    parser.add_argument(
        "--coordinator",
        default=None,
        help="several processes: process 0's host:port (sets KERAS_DISTRIBUTION_JOB_ADDRESSES; "
        "README 'Several hosts')",
    )
    parser.add_argument(
        "--num-processes", default=None, help="sets KERAS_DISTRIBUTION_NUM_PROCESSES"
    )
    parser.add_argument("--process-id", default=None, help="sets KERAS_DISTRIBUTION_PROCESS_ID")
    parser.add_argument(
        "--pseudo-from",
        default=None,
        help="second round: relabel the low-vote training EEGs from this finished run's OOF "
        "(train.pseudo_from; the mix is train.pseudo_mix)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing run")
    parser.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _supervise_cluster(args)

    overrides = _with_flags(
        args,
        {
            "backbone": "model.backbone",
            "data_dir": "data.data_dir",
            "run_name": "train.run_name",
            "strategy": "train.strategy",
            "pseudo_from": "train.pseudo_from",
        },
    )
    # Imported before the try: its except clause names these classes.
    from hmsbrain.inference.ensemble import EnsembleError
    from hmsbrain.inference.report import write_run_report
    from hmsbrain.models.imagenet import WeightsError
    from hmsbrain.runs import fold_dirs, run_root
    from hmsbrain.training.devices import is_writer, lost_peer
    from hmsbrain.training.loop import train_folds
    from hmsbrain.training.outputs import RunConfigError, RunExistsError
    from hmsbrain.training.portfolio import uses_portfolio

    report = None
    try:
        cfg = command_config(args.config, overrides)
        if args.fold == "all":
            folds = range(cfg.folds.n_folds)
        elif args.fold.isdigit():
            folds = [int(args.fold)]
        else:
            raise ConfigError(f"--fold must be an integer or 'all', got {args.fold!r}")
        if uses_portfolio(cfg, args.overrides, args.backbone is not None):
            _train_portfolio(cfg, list(folds), args.resume, args.overwrite)
            return
        summaries = train_folds(cfg, folds, resume=args.resume, overwrite=args.overwrite)
        run = run_root(cfg)
        if (
            is_writer(cfg) and len(fold_dirs(run)) == cfg.folds.n_folds
        ):  # every fold done: the run's CV report
            report = write_run_report(run)
            print(f"report: {run / 'report.md'}")
    except (
        *USER_ERRORS,
        WeightsError,
        RunExistsError,
        RunConfigError,
        EnsembleError,
        ClusterError,
    ) as exc:
        _fail(exc)
    except Exception as exc:
        failure = lost_peer(exc)
        if failure is None:  # a bug: its traceback
            raise
        _fail(failure)
    if len(summaries) > 1:
        print(cv_table(summaries))
    if report is not None:
        print(overall_line(report))


def _train_portfolio(cfg: Config, folds: list[int], resume: bool, overwrite: bool) -> None:
    """Every member of the portfolio on ``folds``; with every fold trained, the blend and its
    report (the one table, printed too)."""
    from hmsbrain.inference.portfolio import blend_portfolio
    from hmsbrain.training.portfolio import portfolio_root, train_portfolio

    train_portfolio(cfg, folds, resume, overwrite)
    root = portfolio_root(cfg)
    if len(folds) < cfg.folds.n_folds:
        print(f"{root}: {len(folds)} of {cfg.folds.n_folds} folds trained; --fold all blends them")
        return
    result = blend_portfolio(root)
    print(result.report.read_text())
    print(f"report: {result.report}")


def default_recipe(overrides: list[str]) -> Path:
    """The CPU recipe for the data the overrides name (the ``--data-dir`` flag is one of them):
    the HMS demo recipe for HMS data, or the generic EEG one. ``data.data_dir`` and
    ``data.layout`` are read from the overrides before any recipe is, so an override
    ``data.data_dir=demo:emotiv`` chooses as ``--data-dir demo:emotiv`` does."""
    from hmsbrain.data.sources import is_hms_data

    data = load_config(overrides=overrides).data
    return DEFAULT_CONFIG if is_hms_data(data.data_dir, data.layout) else GENERIC_CONFIG


def command_config(config: Path | None, overrides: list[str]) -> Config:
    """The config of a command: ``--config`` (else the recipe the data calls for), then the
    overrides."""
    return load_config(config or default_recipe(overrides), overrides)


def cv_table(summaries: list[dict]) -> str:
    """Per fold: the CV, the class prior and each baseline on the same units, the CV on the
    selection subset (``train.select_min_votes``), and which rows trained, by what rule."""
    hard = summaries[0].get("hard", False)
    lines = []
    for s in summaries:
        baselines = s.get("baselines", {})
        text = f"fold {s['fold']}: CV {s['cv_kl']:.4f} (class prior {s['class_prior_kl']:.4f}"
        text += "".join(f", {b}" for b in baseline_figures(baselines, "kl", ".4f")) + ")"
        if hard:
            text += f"  balanced accuracy {s['metrics']['balanced_accuracy']:.3f}"
            if baselines:
                text += f" ({', '.join(baseline_figures(baselines, 'balanced_accuracy', '.3f'))})"
        if "cv_kl_selected" in s and s.get("select_min_votes", 0) > 0:
            text += f"  >= {s['select_min_votes']} votes: CV {s['cv_kl_selected']:.4f}"
        lines.append(text)
        if "training" in s:  # summaries written before issue 20 do not say
            lines.append(f"  trained on {s['training']['rule']}")
    return "\n".join(lines)


def overall_line(report: dict) -> str:
    """The run's CV over every fold's OOF, beside each baseline and chance."""
    model, baselines = report["model"], report.get("baselines", {})
    text = f"all folds: KL {model['kl']:.4f} (class prior {report['class_prior']['kl']:.4f}"
    text += "".join(f", {b}" for b in baseline_figures(baselines, "kl", ".4f")) + ")"
    if report["hard"]:
        text += f"; balanced accuracy {model['balanced_accuracy']:.3f}"
        if baselines:
            text += f" ({', '.join(baseline_figures(baselines, 'balanced_accuracy', '.3f'))})"
        text += f", chance {model['chance_balanced_accuracy']:.3f}"
    return text


def predict_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Predict a data folder's split with every fold model of one or more runs; "
        "writes <run>/<split>.parquet (the OOF schema, fold = -1 for the fold average). "
        "Hemisphere-swap TTA follows each run's train.tta, as its OOF did.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, e.g. outputs/effnetv2")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="Kaggle-layout folder (default: the data each run was trained on)",
    )
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument(
        "--fallback",
        action="store_true",
        help="an EEG that cannot be read gets the run's class prior and a warning naming it, "
        "instead of stopping, and so does every EEG of a run no runtime can run (the Kaggle "
        "notebook always does this); default: stop with the error",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=["auto", "tensorrt", "onnx", "keras"],
        help="auto (default) takes the fastest that imports and opens every fold: tensorrt, "
        "then onnx (needs export.py), then keras, and says which",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from hmsbrain.core.fallback import FallbackSummary
    from hmsbrain.core.predictions import PredictionError
    from hmsbrain.inference.ensemble import EnsembleError
    from hmsbrain.inference.predict import RunPrediction, predict_run
    from hmsbrain.inference.runtimes import RuntimeUnavailableError
    from hmsbrain.runs import is_portfolio

    results: dict[str, RunPrediction] = {}
    # Bad input is a one-line error; any other exception is a bug and stops the run with its
    # traceback, --fallback or not.
    try:
        for run in args.runs:
            if is_portfolio(run):
                _predict_portfolio(run, args)
                continue
            result = results[str(run)] = predict_run(
                run,
                args.data_dir,
                args.split,
                batch_size=args.batch_size,
                runtime=args.runtime,
                fallback=args.fallback,
            )
            tta = "on" if result.meta["tta"] else "off"
            print(
                f"{run}: {len(result.frame)} EEGs (TTA {tta}, the run's train.tta) -> "
                f"{run / (args.split + '.parquet')}"
            )
            if result.no_runtime is not None:
                print(f"{run}: every EEG got the class prior (--fallback): no runtime could run")
            if result.fallback:
                print(
                    f"{run}: {len(result.fallback)} EEGs got the class prior (--fallback): "
                    f"{sorted(result.fallback)[:10]}"
                )
    except (*USER_ERRORS, RuntimeUnavailableError, PredictionError, EnsembleError) as exc:
        _fail(exc)
    if args.fallback:
        units = {unit for r in results.values() for unit in r.frame.iloc[:, 0]}
        fallback = {k: v for r in results.values() for k, v in r.fallback.items()}
        left_out = {n: r.no_runtime for n, r in results.items() if r.no_runtime is not None}
        print(FallbackSummary(len(units), fallback, left_out).line())


def _predict_portfolio(root: Path, args: argparse.Namespace) -> None:
    """Every weighted member of a portfolio on the data, blended."""
    from hmsbrain.inference.portfolio import predict_portfolio

    result = predict_portfolio(
        root, args.data_dir, args.split, args.batch_size, args.runtime, args.fallback
    )
    members = ", ".join(sorted(result.members)) or "the class prior alone"
    print(f"{root}: {len(result.frame)} units, blend of {members} -> {result.path}")


def export_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="export.py",
        description="Export every fold model of one or more runs to ONNX (<fold>/model.onnx), "
        "each checked against Keras on real preprocessed inputs; a failed check fails the export.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, e.g. outputs/effnetv2")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data for the parity check (default: the data each run was trained on)",
    )
    args = parser.parse_args(argv)
    from hmsbrain.inference.export import ExportError, export_fold
    from hmsbrain.runs import CLASSICAL_FILE, fold_dirs, portfolio_members

    try:
        for run in [m for r in args.runs for m in portfolio_members(r)]:
            folds = fold_dirs(run)
            if (folds[0] / CLASSICAL_FILE).is_file():
                print(f"{run}: a classical member, predicted in Python (scikit-learn, pyRiemann)")
                continue
            for fold in folds:
                report = export_fold(fold, args.data_dir)
                parity = report["parity"]
                print(
                    f"{fold / 'model.onnx'}: inputs {report['inputs']}, logits relative error "
                    f"{parity['logits_rel_err']:.1e} (tolerance {parity['rtol']:.0e})"
                )
    except (*USER_ERRORS, ExportError) as exc:
        _fail(exc)


def package_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="package.py",
        description="Build the Kaggle model dataset and kernel folders for an ensemble "
        "(exporting any fold not yet in ONNX) and print the kaggle commands that upload them.",
    )
    parser.add_argument(
        "report", type=Path, help="ensemble.py's report, e.g. submissions/demo.json"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("dist"))
    parser.add_argument(
        "--kaggle-user",
        default=os.environ.get("KAGGLE_USERNAME"),
        help="Kaggle user owning the dataset and kernel (default: $KAGGLE_USERNAME)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="Kaggle-layout data: its train windows check any export, and its test split is "
        "the package's dry run (default: the data the first run was trained on)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing package")
    parser.add_argument(
        "--max-fallback",
        type=float,
        # argparse passes a string default through type=float, so a bad value is a usage error
        default=os.environ.get("HMS_MAX_FALLBACK", "0.5"),
        help="the dry run fails when more than this share of the test EEGs get the class prior "
        "(default: $HMS_MAX_FALLBACK, else 0.5); it always fails on an unexpected error",
    )
    from hmsbrain.hms.wheels import (
        BUILDS,
        KAGGLE_PLATFORMS,
        KAGGLE_PYTHONS,
        WHEELS_DIR,
        WheelError,
        WheelTarget,
        installed_onnxruntime,
    )

    wheels = parser.add_argument_group(
        "wheels",
        "ONNX Runtime for the offline notebook (Kaggle's image has none), in <dataset>/wheels",
    )
    wheels.add_argument(
        "--no-wheels",
        action="store_true",
        help="bundle no wheels: the notebook then needs an onnxruntime in its image, or a Keras "
        "that reads the models, else every run gets the class prior",
    )
    wheels.add_argument(
        "--wheels-from",
        type=Path,
        default=None,
        help="take the wheels from this folder (offline) instead of downloading them",
    )
    wheels.add_argument(
        "--wheel-builds",
        nargs="+",
        choices=list(BUILDS),
        default=list(BUILDS),
        help="cpu: onnxruntime; gpu: onnxruntime-gpu, the CUDA 12 build (default: both)",
    )
    wheels.add_argument(
        "--onnxruntime-version",
        default=None,
        help="default: the onnxruntime installed here, which checked the exports",
    )
    wheels.add_argument(
        "--python-version",
        nargs="+",
        default=list(KAGGLE_PYTHONS),
        help=f"target CPython versions (default: {' '.join(KAGGLE_PYTHONS)}, Kaggle's images)",
    )
    wheels.add_argument(
        "--platform",
        nargs="+",
        default=list(KAGGLE_PLATFORMS),
        help="target pip platform tags (default: manylinux x86_64 up to glibc 2.35, Kaggle's)",
    )
    args = parser.parse_args(argv)
    from hmsbrain.hms.kaggle import (
        DryRunError,
        PackageError,
        build_package,
        folder_megabytes,
        upload_commands,
    )
    from hmsbrain.inference.export import ExportError

    try:
        if not args.kaggle_user:
            raise PackageError("no Kaggle user: pass --kaggle-user or set KAGGLE_USERNAME")
        target = None
        if args.no_wheels:
            print(
                "warning: --no-wheels: the dataset bundles no onnxruntime, and Kaggle's image has "
                "none; the offline notebook will need one installed, or a Keras as recent as the "
                "one that saved the models, else every run gets the class prior",
                file=sys.stderr,
            )
        else:
            version = args.onnxruntime_version or installed_onnxruntime()
            if version is None:
                raise PackageError("no onnxruntime installed here: pass --onnxruntime-version")
            target = WheelTarget(
                version,
                tuple(args.wheel_builds),
                tuple(args.python_version),
                tuple(args.platform),
                args.wheels_from,
            )
        dataset, kernel = build_package(
            args.report,
            args.out_dir,
            args.kaggle_user,
            args.data_dir,
            args.overwrite,
            target,
            args.max_fallback,
        )
    except (*USER_ERRORS, ExportError, PackageError, WheelError, FileExistsError) as exc:
        _fail(exc)
    except DryRunError as exc:  # its summary and any traceback are logged above
        _fail(f"{exc}; no package was written")
    print("dry run of the notebook on the test split: passed")
    size, wheels_size = (folder_megabytes(f) for f in (dataset, dataset / WHEELS_DIR))
    print(f"model dataset: {dataset} ({size:.0f} MB, of which wheels {wheels_size:.0f} MB)")
    print(f"kernel: {kernel}\nupload with:")
    for command in upload_commands(dataset, kernel):
        print(f"  {command}")


def ensemble_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="ensemble.py",
        description="Blend runs from their oof.parquet and test.parquet files, report CV (nested, "
        "out of sample, beside the in-sample figure), and write a validated "
        "submissions/<name>.csv with a JSON report beside it.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, e.g. outputs/effnetv2")
    parser.add_argument("--name", default="submission", help="submission file stem")
    parser.add_argument("--out-dir", type=Path, default=Path("submissions"))
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder whose test.csv and "
        "sample_submission.csv the submission must match (default: the one "
        "the runs predicted)",
    )
    parser.add_argument(
        "--with-baselines",
        action="store_true",
        help="blend each run's baselines (train.baseline: band power, tangent space) as members "
        "too; they have out-of-fold predictions only, so the blend is scored by nested CV and "
        "no submission is written",
    )
    parser.add_argument(
        "--method",
        default="auto",
        choices=["auto", "linear", "log", "logit-bias"],
        help="auto (default): the better of linear (weighted mean of probabilities) and log "
        "(weighted geometric mean), both with non-negative weights summing to one; logit-bias: "
        "softmax of non-negative weights on the log-probabilities plus a per-class bias",
    )
    args = parser.parse_args(argv)
    from hmsbrain.atomic import atomic_path
    from hmsbrain.core.predictions import PredictionError
    from hmsbrain.data.sources import is_hms_layout
    from hmsbrain.hms.constants import SAMPLE_SUBMISSION_CSV, TEST_CSV
    from hmsbrain.hms.submission import SubmissionError, write_submission
    from hmsbrain.inference.ensemble import (
        EnsembleError,
        ensemble,
        load_run,
        truth_of_run,
        write_report,
    )

    try:
        runs = [load_run(r) for r in args.runs]
        result = ensemble(runs, truth_of_run(args.runs[0]), args.with_baselines, args.method)
        for note in result.notes:
            print(f"note: {note}")
        print(result.table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        ten = "; cv_10plus: >= 10 votes" if "cv_10plus" in result.table else ""
        print(
            "cv: KL (log loss for hard labels) on all OOF units; cv_selected: units with >= "
            f"{result.select_min_votes} votes (train.select_min_votes; the blend is fitted on "
            f"these){ten}"
        )
        print(
            f"blend CV {result.cv:.4f} nested (out of sample: fitted on the other folds) | "
            f"{result.cv_in_sample:.4f} in-sample (fitted on the units it is scored on; "
            f"optimistic) | best single run {result.best_single:.4f} | {result.method} blend, "
            f"TTA {'on' if result.tta else 'off'}"
        )
        if result.bias is not None:
            bias = zip(runs[0].classes, result.bias, strict=True)
            print("logit-bias per-class bias: " + ", ".join(f"{c} {b:+.3f}" for c, b in bias))
        if result.submission is None:
            return
        data_dir = args.data_dir or runs[0].test_info.get("data_dir")
        if data_dir is None:
            raise FileNotFoundError("no --data-dir given and the runs' test.parquet names none")
        if any(r.test_info.get("data_dir") != runs[0].test_info.get("data_dir") for r in runs):
            raise SubmissionError("the runs' test.parquet files were predicted on different data")
        path = args.out_dir / f"{args.name}.csv"
        report = path.with_suffix(".json")
        # The old report goes first: a crash before the new one is written leaves no report,
        # never one describing another submission (package.py ships what the report names).
        report.unlink(missing_ok=True)
        if is_hms_layout(Path(data_dir)):
            write_submission(
                result.submission,
                path,
                Path(data_dir) / TEST_CSV,
                Path(data_dir) / SAMPLE_SUBMISSION_CSV,
            )
        else:  # another dataset's blended test predictions: no competition format to match
            with atomic_path(path) as tmp:
                result.submission.to_csv(tmp, index=False)
        write_report(result, report, [str(r) for r in args.runs], path)
        print(f"wrote {path} ({len(result.submission)} rows) and {report}")
    except (*USER_ERRORS, SubmissionError, EnsembleError, PredictionError) as exc:
        _fail(exc)


def diagnose_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="diagnose.py",
        description="Find why a model does not learn before a long run is spent: checks of the "
        "data, labels, split, model input and learning (on fold 0, a small budget), one PASS, "
        "WARN or FAIL line each, and <run>/diagnose/report.md with its plots. Exit code 0 "
        "even with FAILs (it is a report); 2 for errors in the arguments or data.",
        epilog="config keys (section.key=value):\n  " + "\n  ".join(describe()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backbone", default=None, help="as train.py (default: the config's)")
    parser.add_argument("--config", type=Path, default=None, help="YAML recipe, as train.py")
    parser.add_argument("--data-dir", default=None, help="as train.py (default: demo:hms)")
    parser.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _supervise_cluster(args)

    overrides = _with_flags(args, {"backbone": "model.backbone", "data_dir": "data.data_dir"})
    from hmsbrain.diagnose.runner import diagnose
    from hmsbrain.models.imagenet import WeightsError

    try:
        diagnose(command_config(args.config, overrides))
    except (*USER_ERRORS, WeightsError) as exc:
        _fail(exc)
