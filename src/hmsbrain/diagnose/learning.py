"""Checks that run the model, built and compiled exactly as ``train_fold`` does, on a small
budget: the loss before training, whether one small batch can be memorised, a shuffled-label
control, a learning-rate range test, and at the first step the gradient per layer, dead ReLU
units and input rows that cannot reach the output."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import ops

from hmsbrain.core.metrics import classification_metrics, kl_divergence
from hmsbrain.core.predict import average_by_unit, predict_rows
from hmsbrain.diagnose.context import SMALL_BATCH, Context
from hmsbrain.diagnose.report import FAIL, PASS, WARN, Check, new_figure, save_figure
from hmsbrain.models.runtime import KerasRuntime
from hmsbrain.training.batches import StageData

INITIAL_ROWS = 64  # examples the initial loss is averaged over
INITIAL_WARN, INITIAL_FAIL = 1.5, 3.0  # initial loss over the uniform prediction's
OVERFIT_STEPS = 100  # per rate
# Moderate rates for Adam, the slower first: it suffices for most models and cannot diverge; a
# heavily regularised small model (EEGNet: dropout, max-norm head) needs the faster one. The
# recipe's own rate is the range test's business.
OVERFIT_RATES = (1e-3, 1e-2)
OVERFIT_GOAL = 0.1  # the memorised batch's loss must fall below this...
OVERFIT_FRACTION = 0.1  # ...and below this share of its start
SHUFFLED_STEPS = 60
LEAK_SIGMAS = 3.0  # a shuffled-label score this many null standard errors above chance
LR_RANGE = (1e-4, 10.0)  # from too small to move anything to far beyond any sane rate
LR_STEPS = 100  # 20 a decade
LR_HELD_ROWS = 32  # validation units whose loss the range test follows
LR_SMOOTHING = 0.8  # running average of that loss that stops the test once it diverged
LR_WINDOW = 5  # steps of the centred average the minimum and the divergence are read from
LR_WARM = 10  # first steps of the test, whose loss is the untrained model's
LR_MARGIN = 0.05  # the loss above that by this share: the rate makes the model worse
LR_EDGE = 1.25  # the divergence is read to within a step or two of the grid (12% each)
LR_STOP = 3.0  # the loss this many times its start: diverged, the test stops
LR_NON_FINITE = 1e6  # what a NaN or infinite loss counts as
GRAD_VANISH, GRAD_EXPLODE = 1e-7, 1e3
DEAD_WARN, DEAD_FAIL = 0.1, 0.5  # share of ReLU units dead for the whole batch
SKIP_FAIL = 0.1  # share of a tensor's time rows that never reach the logits


def _forward(model: keras.Model, x: tuple[np.ndarray, ...], training: bool) -> tf.Tensor:
    return model(list(x), training=training)


def _mean_loss(ctx: Context, targets: np.ndarray, probs: object) -> float:
    return float(ops.mean(ctx.loss(ops.convert_to_tensor(targets), probs)))


def _small_batch(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """The few training units the overfit test memorises and the gradient probes read."""
    return ctx.unit_batch(ctx.stage, min(SMALL_BATCH, ctx.cfg.train.batch_size), ctx.seed + 1)


def check_initial_loss(ctx: Context) -> Check:
    """The untrained model's loss against a uniform prediction's (ln K for hard labels), in
    training mode: batch norm then uses the batch's statistics, as the first steps do (in
    inference mode an untrained batch norm is the identity, which is no fault of the model)."""
    name = "initial loss"
    model = ctx.fresh_model(ctx.cfg.train.lr)
    rows, targets = ctx.unit_batch(ctx.stage, INITIAL_ROWS, ctx.seed)
    probs = np.concatenate(
        [
            np.asarray(_forward(model, ctx.inputs(rows[s : s + SMALL_BATCH]), training=True))
            for s in range(0, len(rows), SMALL_BATCH)
        ]
    )
    loss = _mean_loss(ctx, targets, probs)
    uniform = _mean_loss(ctx, targets, np.full_like(probs, 1 / len(ctx.data.classes)))
    k = len(ctx.data.classes)
    reference = f"ln {k} = {uniform:.3f}" if ctx.data.hard else f"{uniform:.3f}"
    measured = (
        f"{loss:.3f} on {len(rows)} training examples before any step (training mode, as the "
        f"first step sees it) vs {reference} for a uniform prediction"
    )
    ratio = loss / max(uniform, 1e-6)
    if not np.isfinite(loss) or ratio > INITIAL_FAIL:
        return Check(
            name,
            FAIL,
            measured,
            "the untrained model is confidently wrong: bad "
            "input scaling (see raw input scale) or initialisation",
        )
    if ratio > INITIAL_WARN:
        return Check(name, WARN, measured, "check the input scaling")
    return Check(name, PASS, measured)


def _memorise(ctx: Context, rate: float, x: tuple[np.ndarray, ...], y: np.ndarray) -> list[float]:
    """Training losses of up to :data:`OVERFIT_STEPS` steps on one batch, from a fresh model,
    stopping once the batch is memorised."""
    model = ctx.fresh_model(rate)
    weights = np.ones(len(y), np.float32)
    losses: list[float] = []
    for step in range(OVERFIT_STEPS):
        losses.append(float(model.train_on_batch(x, y, sample_weight=weights)))
        if step >= 10 and np.mean(losses[-5:]) < _overfit_goal(losses):
            break
    return losses


def _overfit_goal(losses: list[float]) -> float:
    return min(OVERFIT_GOAL, OVERFIT_FRACTION * losses[0])


def check_overfit_batch(ctx: Context) -> Check:
    """Memorise one small batch: any working model, loss and optimizer can."""
    name = "overfit one batch"
    rows, targets = _small_batch(ctx)
    x = ctx.inputs(rows)
    broken = (
        f"the model cannot memorise {len(rows)} examples: the model, loss or optimizer is "
        "broken, or the input carries nothing"
    )
    curves: dict[float, list[float]] = {}
    for rate in OVERFIT_RATES:
        try:
            curves[rate] = losses = _memorise(ctx, rate, x, targets)
        except ValueError as exc:  # Keras refuses a step when no weight gets a gradient
            return Check(name, FAIL, f"training fails: {exc}", broken)
        final, goal = float(np.mean(losses[-5:])), _overfit_goal(losses)
        if final < goal:
            break
    fig, ax = new_figure()
    for tried, curve in curves.items():
        ax.semilogy(np.arange(1, len(curve) + 1), curve, label=f"rate {tried:g}")
    ax.axhline(goal, color="grey", ls="--", label="goal")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(f"{len(rows)} training examples, over and over")
    ax.legend()
    plot = save_figure(fig, ctx.out_dir / "overfit.png")
    measured = (
        f"{len(rows)} examples, {len(losses)} steps at rate {rate:g}: loss {losses[0]:.3f} -> "
        f"{final:.3f} (goal below {goal:.3f})"
    )
    if not final < goal:  # NaN included
        return Check(name, FAIL, f"{measured}, nor at a lower rate", broken, plot)
    return Check(name, PASS, measured, plot=plot)


def _shuffled_targets(ctx: Context) -> pd.DataFrame:
    """Every unit's target moved to another unit at random. Units that share signal (the split
    check's hashes) move together, as one trial: they share their real target too, so a leak
    through copies keeps working under the shuffle and shows as a score above chance."""
    targets = ctx.data.unit_targets(ctx.rows)
    content = ctx.content
    cluster = pd.Series(targets.index.astype(str), index=targets.index)
    linked = pd.Series(content.clusters(), index=content.units)
    cluster.loc[linked.index] = "linked-" + linked.astype(str).to_numpy()
    keys = cluster.unique()
    donor_key = dict(zip(keys, np.random.default_rng(ctx.seed).permutation(keys), strict=True))
    first_unit = pd.Series(cluster.index, index=cluster.to_numpy()).groupby(level=0).first()
    donors = first_unit.loc[cluster.map(donor_key).to_numpy()].to_numpy()
    return pd.DataFrame(
        targets.loc[donors].to_numpy(), index=targets.index, columns=targets.columns
    )


def _null_band(targets: np.ndarray) -> float:
    """Upper bound on the standard error of balanced accuracy when predictions ignore the
    targets: each class's recall is a proportion over its n_k units, of variance <= 1/(4 n_k)."""
    counts = targets.sum(axis=0)
    counts = counts[counts > 0]
    return float(np.sqrt(np.sum(0.25 / counts)) / len(counts))


def check_shuffled_labels(ctx: Context) -> Check:
    """Train on shuffled targets; the validation fold scored against its shuffled targets must
    stay at chance (hard labels) or no better than the training prior (soft labels)."""
    name = "shuffled-label control"
    shuffled = _shuffled_targets(ctx)
    stage = StageData(
        ctx.stage.unit_ids,
        ctx.stage.row_groups,
        shuffled.loc[ctx.stage.unit_ids].to_numpy(np.float32),
        votes=ctx.stage.votes,
    )
    model = ctx.fresh_model(ctx.cfg.train.lr)
    batches = ctx.training_batches(stage, ctx.seed + 2)
    for _ in range(SHUFFLED_STEPS):
        x, y, w = next(batches)
        model.train_on_batch(x, y, sample_weight=w)
    val_index = ctx.val_rows.index.to_numpy()
    mirror = ctx.data.montage if ctx.cfg.train.tta else None
    probs = predict_rows(
        KerasRuntime(model), ctx.cache, val_index, ctx.cfg.train.val_batch_size, mirror
    )
    classes = ctx.data.classes
    oof = average_by_unit(
        ctx.rows.loc[val_index, ctx.data.id_column].to_numpy(), probs, classes, ctx.data.id_column
    )
    target = shuffled.loc[oof[ctx.data.id_column]].to_numpy()
    pred = oof[list(classes)].to_numpy()
    trained = f"{SHUFFLED_STEPS} steps on fold {ctx.fold}'s training units with shuffled targets"
    advice = (
        "labels leak: units or near-duplicates cross the split (see groups across folds, "
        "duplicate windows), or the targets reach the inputs"
    )
    if ctx.data.hard:
        score = classification_metrics(target, pred, classes)["balanced_accuracy"]
        chance = 1 / len(classes)
        limit = chance + LEAK_SIGMAS * _null_band(target)
        measured = (
            f"{trained}: validation balanced accuracy {score:.3f} against the shuffled targets "
            f"(chance {chance:.3f}, leak above {limit:.3f})"
        )
        return Check(name, FAIL, measured, advice) if score > limit else Check(name, PASS, measured)
    prior = stage.targets.mean(axis=0)
    gain = kl_divergence(target, np.broadcast_to(prior, target.shape)) - kl_divergence(target, pred)
    margin = LEAK_SIGMAS * gain.std() / np.sqrt(len(gain))
    measured = (
        f"{trained}: validation KL {kl_divergence(target, pred).mean():.4f} against the shuffled "
        f"targets vs {kl_divergence(target, np.broadcast_to(prior, target.shape)).mean():.4f} "
        "for the training prior"
    )
    if gain.mean() > max(margin, 0.01):
        return Check(name, FAIL, measured, advice)
    return Check(name, PASS, measured)


def _smoothed(losses: list[float]) -> np.ndarray:
    """Exponential moving average, bias-corrected so the first values are not pulled to 0."""
    average, out = 0.0, []
    for i, loss in enumerate(losses):
        average = LR_SMOOTHING * average + (1 - LR_SMOOTHING) * loss
        out.append(average / (1 - LR_SMOOTHING ** (i + 1)))
    return np.array(out)


def check_learning_rate(ctx: Context) -> Check:
    """Learning-rate range test: from a fresh model the rate rises exponentially each step,
    and after every step the loss of a fixed set of validation units is measured in inference
    mode (Smith's range test judges held-out accuracy). It falls, bottoms out and climbs back
    above its start: the rate where it does is too high to train at, even where the training
    loss still looks fine (batch norm's running statistics cannot follow the weights). A tenth
    of the rate at the minimum is a safe peak rate."""
    name = "learning rate"
    model = ctx.fresh_model(LR_RANGE[0])
    batches = ctx.training_batches(ctx.stage, ctx.seed + 3)
    held_rows, held_targets = ctx.unit_batch(ctx.val_stage, LR_HELD_ROWS, ctx.seed + 4)
    held_x = ctx.inputs(held_rows)
    rates = np.geomspace(*LR_RANGE, LR_STEPS)
    train_losses: list[float] = []
    held: list[float] = []
    for rate in rates:
        model.optimizer.learning_rate = float(rate)
        x, y, w = next(batches)
        train_losses.append(float(model.train_on_batch(x, y, sample_weight=w)))
        loss = _mean_loss(ctx, held_targets, model.predict_on_batch(held_x))
        held.append(loss if np.isfinite(loss) else LR_NON_FINITE)
        if len(held) > LR_WARM and _smoothed(held)[-1] > LR_STOP * np.median(held[:LR_WARM]):
            break  # diverged for good: the steps left would only cost time
    # Centred smoothing for the verdict: the running average above lags the rate by a few
    # steps, which would place the minimum and the divergence at rates too high.
    tried = rates[: len(held)]
    smooth = pd.Series(held).rolling(LR_WINDOW, center=True, min_periods=1).mean().to_numpy()
    # The reference: the loss over the first steps, at rates too small to move the weights
    # (batch norm's running statistics settle there).
    start = float(np.median(smooth[:LR_WARM]))
    worse = np.flatnonzero(smooth[LR_WARM:] > (1 + LR_MARGIN) * start) + LR_WARM
    end = int(worse[0]) if len(worse) else len(smooth)
    best = int(np.argmin(smooth[:end]))
    diverge = float(tried[end]) if len(worse) else None
    suggest = float(tried[best]) / 10
    lr = ctx.cfg.train.lr

    fig, ax = new_figure()
    ax.semilogx(tried, train_losses, color="grey", alpha=0.3, label="training batch")
    ax.semilogx(tried, held, color="C0", alpha=0.3)
    ax.semilogx(tried, smooth, color="C0", label="validation units (smoothed)")
    ax.axvline(lr, color="red", label=f"train.lr {lr:g}")
    ax.axvline(suggest, color="green", ls="--", label=f"suggested {suggest:.2g}")
    if diverge is not None:
        ax.axvline(diverge, color="black", ls=":", label=f"diverges {diverge:.2g}")
    ax.set_ylim(0, 2.5 * start)
    ax.set_xlabel("learning rate (one step each)")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    plot = save_figure(fig, ctx.out_dir / "lr_range.png")

    where = (
        f"{LR_MARGIN:.0%} above its start from {diverge:.2g}"
        if diverge is not None
        else f"never {LR_MARGIN:.0%} above its start up to {tried[-1]:.2g}"
    )
    measured = (
        f"{len(held)} steps from {LR_RANGE[0]:g}, validation loss (inference mode) lowest at "
        f"{tried[best]:.2g}, {where}; train.lr {lr:g}"
    )
    advice = f"set train.lr={suggest:.2g} (a tenth of the rate at the loss minimum)"
    if diverge is not None and lr > LR_EDGE * diverge:
        return Check(name, FAIL, f"{measured} is past the divergence", advice, plot)
    if diverge is not None and lr * LR_EDGE >= diverge:
        return Check(
            name,
            WARN,
            f"{measured} is at the divergence (a cold start diverges there; "
            "the recipe's warm-up may carry it)",
            advice,
            plot,
        )
    if lr > tried[best]:
        return Check(name, WARN, f"{measured} is past the loss minimum", advice, plot)
    return Check(name, PASS, f"{measured} (suggested {suggest:.2g})", plot=plot)


def _probe_batch(ctx: Context) -> tuple[keras.Model, list[tf.Tensor], np.ndarray]:
    model = ctx.fresh_model(ctx.cfg.train.lr)
    rows, targets = _small_batch(ctx)
    return model, [tf.convert_to_tensor(a) for a in ctx.inputs(rows)], targets


def _weight_group(variable: keras.Variable) -> str:
    """The layer a weight belongs to, from its path (``block/layer/kernel``)."""
    return variable.path.rsplit("/", 1)[0]


def check_gradients(ctx: Context) -> Check:
    """Gradient norm of every layer's weights at the first step (training mode)."""
    name = "gradient norms"
    model, x, targets = _probe_batch(ctx)
    with tf.GradientTape() as tape:
        probs = model(x, training=True)
        loss = ops.mean(ctx.loss(ops.convert_to_tensor(targets), probs))
    grads = tape.gradient(loss, model.trainable_weights)
    squares: dict[str, float] = {}
    for variable, grad in zip(model.trainable_weights, grads, strict=True):
        value = 0.0 if grad is None else float(tf.reduce_sum(tf.square(grad)))
        squares[_weight_group(variable)] = squares.get(_weight_group(variable), 0.0) + value
    norms = pd.Series({k: np.sqrt(v) for k, v in squares.items()})
    vanishing = norms[~(norms >= GRAD_VANISH)].index.tolist()
    exploding = norms[norms > GRAD_EXPLODE].index.tolist()

    fig, ax = new_figure(7, 3.5)
    ax.semilogy(np.arange(len(norms)), np.maximum(norms.to_numpy(), 1e-12), marker="o", ms=3)
    ax.axhline(GRAD_VANISH, color="grey", ls=":")
    ax.axhline(GRAD_EXPLODE, color="grey", ls=":")
    ax.set_xlabel("layer (input to output)")
    ax.set_ylabel("gradient norm")
    if len(norms) <= 30:
        ax.set_xticks(np.arange(len(norms)), norms.index, rotation=90, fontsize=7)
    plot = save_figure(fig, ctx.out_dir / "gradients.png")
    measured = (
        f"{len(norms)} layers, gradient norms {norms.min():.2g} ({norms.idxmin()}) to "
        f"{norms.max():.2g} ({norms.idxmax()}) at the first step"
    )
    if vanishing:
        return Check(
            name,
            FAIL,
            f"{measured}; vanishing (< {GRAD_VANISH:g}): {', '.join(vanishing[:6])}",
            "these layers do not learn: check what feeds them (frozen, disconnected or saturated)",
            plot,
        )
    if exploding:
        return Check(
            name,
            FAIL,
            f"{measured}; exploding (> {GRAD_EXPLODE:g}): {', '.join(exploding[:6])}",
            "scale the inputs (preprocess.standardize) or lower train.lr",
            plot,
        )
    return Check(name, PASS, measured, plot=plot)


def _is_relu(layer: keras.layers.Layer) -> bool:
    relus = (keras.activations.relu, keras.activations.relu6)
    return isinstance(layer, keras.layers.ReLU) or getattr(layer, "activation", None) in relus


def _relu_outputs(model: keras.Model, x: list[tf.Tensor]) -> dict[str, np.ndarray]:
    """Outputs of every ReLU layer of ``model`` and of the models nested in it (the image
    backbones, which read one of the model's inputs directly) in training mode."""
    found: dict[str, np.ndarray] = {}
    parts = [(model, x)]
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            shape = tuple(layer.inputs[0].shape[1:])
            feed = [v for t, v in zip(model.inputs, x, strict=True) if tuple(t.shape[1:]) == shape]
            parts += [(layer, feed[:1])] if feed else []
    for net, inputs in parts:
        relus = [layer for layer in net.layers if _is_relu(layer)]
        if relus:
            probe = keras.Model(net.inputs, [layer.output for layer in relus])
            values = probe(inputs, training=True)
            values = values if isinstance(values, list | tuple) else [values]
            found.update(
                {layer.name: np.asarray(v) for layer, v in zip(relus, values, strict=True)}
            )
    return found


def check_dead_relu(ctx: Context) -> Check:
    """ReLU units whose output is zero for every example and position of a batch: they pass no
    gradient, so they never recover."""
    name = "dead ReLU units"
    model, x, _ = _probe_batch(ctx)
    outputs = _relu_outputs(model, x)
    if not outputs:
        return Check(name, PASS, "the model has no ReLU layers")
    dead = {k: (v.reshape(-1, v.shape[-1]) <= 0).all(axis=0) for k, v in outputs.items()}
    total = sum(d.size for d in dead.values())
    share = sum(int(d.sum()) for d in dead.values()) / total
    worst = sorted(dead, key=lambda k: -dead[k].mean())[:3]
    measured = (
        f"{share:.1%} of {total} ReLU units in {len(dead)} layers dead on a batch at the start"
        f" (most: {', '.join(f'{k} {dead[k].mean():.0%}' for k in worst)})"
    )
    if share >= DEAD_FAIL:
        return Check(
            name, FAIL, measured, "scale the inputs, lower train.lr, or use a leaky activation"
        )
    if share >= DEAD_WARN or max(d.mean() for d in dead.values()) >= DEAD_FAIL:
        return Check(name, WARN, measured, "check the input scale and initialisation")
    return Check(name, PASS, measured)


def _consumers(layers: list[keras.layers.Layer], layer: keras.layers.Layer) -> list[str]:
    """The layers among ``layers`` that read ``layer``'s output."""
    return [
        other.name
        for other in layers
        if any(t is layer.output for t in keras.tree.flatten(other.input))
    ]


def check_input_reach(ctx: Context) -> Check:
    """Rows of the input (and of every layer's output) that cannot change the logits: their
    gradient is exactly zero for a whole batch. A pooling or convolution whose stride exceeds
    its window skips rows; whatever happens in them is invisible to the model."""
    name = "input reach"
    model, x, _ = _probe_batch(ctx)
    # A nested model (an image backbone) is probed as a whole through the layers around it: its
    # ``output`` belongs to its own graph, not to this one.
    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer | keras.Model)
    ]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    logits_at = [layer.name for layer in layers].index("logits")
    weights = tf.constant(
        np.random.default_rng(ctx.seed).standard_normal((1, len(ctx.data.classes))), tf.float32
    )
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = probe(x, training=False)
        projection = tf.reduce_sum(outputs[logits_at] * weights)  # no cancellation by design
    grads = tape.gradient(projection, [*x, *outputs])
    names = [t.name for t in model.inputs] + [layer.name for layer in layers]
    zero_rows: dict[str, float] = {}
    for tensor, grad in zip(names, grads, strict=True):
        if grad is not None and len(grad.shape) >= 3:
            other_axes = [a for a in range(len(grad.shape)) if a != 1]
            per_row = tf.reduce_sum(tf.abs(grad), axis=other_axes)
            zero_rows[tensor] = float(tf.reduce_mean(tf.cast(per_row == 0, tf.float32)))
    dead_channels = []
    if "raw" in ctx.names:
        raw_grad = grads[ctx.names.index("raw")]
        per_channel = tf.reduce_sum(tf.abs(raw_grad), axis=[0, 1]).numpy()
        dead_channels = np.flatnonzero(per_channel == 0).tolist()
    skipped = {k: v for k, v in zero_rows.items() if v > 0}
    measured = f"{len(zero_rows)} tensors probed"
    if not skipped and not dead_channels:
        return Check(name, PASS, f"{measured}: every time row and input channel reaches the logits")
    by_layer = {layer.name: layer for layer in layers}
    culprits = sorted(
        {
            consumer
            for k in skipped
            if k in by_layer
            for consumer in _consumers(layers, by_layer[k])
            if zero_rows.get(consumer, 0) < skipped[k]
        }
    )
    # The largest share, and of equal shares the last tensor: the one the culprit reads.
    order = {k: i for i, k in enumerate(skipped)}
    worst = max(skipped, key=lambda k: (skipped[k], order[k])) if skipped else None
    parts = [measured]
    if worst is not None:
        parts.append(
            f"{skipped[worst]:.0%} of the time rows of {worst} never reach the logits"
            + (f" (skipped by {', '.join(culprits)})" if culprits else "")
        )
    if dead_channels:
        parts.append(f"raw input channels {dead_channels[:8]} cannot change the output")
    measured = "; ".join(parts)
    advice = (
        "a layer skips input rows, e.g. pooling with strides larger than its size (check "
        "model.eegnet.pool1_stride and the strides of "
        f"{', '.join(culprits) or 'the layers after it'})"
    )
    if dead_channels or (worst is not None and skipped[worst] > SKIP_FAIL):
        return Check(name, FAIL, measured, advice)
    return Check(
        name,
        WARN,
        measured,
        "a few edge rows are dropped (valid pooling); harmless "
        "unless the events sit at the window's end",
    )
