"""Run every check on one recipe and dataset, print one line each, write the report.

Checks run cheapest first (the raw files, labels and split need no preprocessing; the model
checks need the input cache and a compiled model), so the lines that need no model arrive in
seconds. A check that cannot run because preprocessing fails is a FAIL line naming the error,
not a crash: the checks before it have usually said why.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import keras

from hmsbrain.config import Config
from hmsbrain.data.base import DataError
from hmsbrain.diagnose import data, inputs, labels, learning, split
from hmsbrain.diagnose.context import Context, build_context
from hmsbrain.diagnose.report import FAIL, REPORT_FILE, Check, write_report

CheckFn = Callable[[Context], Check | None]
CHECKS: tuple[CheckFn, ...] = (
    data.check_sample_rate,
    data.check_amplitude,
    data.check_flat_channels,
    data.check_missing_values,
    data.check_clipping,
    data.check_line_noise,
    labels.check_class_balance,
    labels.check_prior_score,
    split.check_groups,
    split.check_shared_signal,
    split.check_fold_labels,
    inputs.check_targets,
    inputs.check_raw_input,
    inputs.check_image_input,
)
LEARNING_CHECKS: tuple[CheckFn, ...] = (
    learning.check_initial_loss,
    learning.check_gradients,
    learning.check_dead_relu,
    learning.check_input_reach,
    learning.check_overfit_batch,
    learning.check_learning_rate,
    learning.check_shuffled_labels,
)


def _title(fn: CheckFn) -> str:
    return fn.__name__.removeprefix("check_").replace("_", " ")


def run_checks(ctx: Context, echo: Callable[[str], None] = print) -> list[Check]:
    """Every check that applies to ``ctx`` (image checks need an image input, learning checks
    a trained network), each line echoed as it is found."""
    found = []
    checks = CHECKS + (LEARNING_CHECKS if ctx.trainable else ())
    if not ctx.trainable:
        echo(
            f"note: the {ctx.cfg.model.backbone} baseline is fitted, not trained: no learning "
            "checks"
        )
    for fn in checks:
        try:
            result = fn(ctx)
        except (DataError, ValueError) as exc:  # preprocessing refused the data or the recipe
            result = Check(_title(fn), FAIL, f"could not run: {exc}", "fix this error first")
        if result is not None:
            echo(result.line())
            found.append(result)
    return found


def diagnose(cfg: Config, echo: Callable[[str], None] = print) -> list[Check]:
    """Diagnose ``cfg`` on fold 0; writes ``<run>/diagnose/report.md`` and returns the checks."""
    started = time.time()
    # float32 on every device: the gradient checks read exact zeros and tiny norms, which
    # float16 would blur (a GPU run of the same recipe trains in mixed precision).
    keras.mixed_precision.set_global_policy("float32")
    ctx = build_context(cfg)
    d = ctx.data
    header = [
        f"- data: {d.root} ({len(d.rows)} rows, {d.rows[d.id_column].nunique()} units, "
        f"{len(d.classes)} classes: {', '.join(d.classes)})",
        f"- model: {cfg.model.backbone}, inputs {', '.join(ctx.names)}; train.lr {cfg.train.lr:g}",
        f"- fold {ctx.fold} validates ({len(ctx.val_rows)} rows); folds from {ctx.folds_path}",
    ]
    for line in header:
        echo(line.removeprefix("- "))
    checks = run_checks(ctx, echo)
    header.append(f"- {time.time() - started:.0f} s")
    path = write_report(checks, ctx.out_dir / REPORT_FILE, header)
    echo(f"report: {path} ({time.time() - started:.0f} s)")
    return checks
