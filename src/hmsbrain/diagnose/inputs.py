"""Checks of what the model sees: the raw input per channel after preprocessing and the model's
own standardisation layer, the spectrogram image's range, and the targets' sums.

A network initialised for unit-variance inputs that is fed microvolts (std 10-50) starts with
saturated units and huge logits; Adam then spends its steps undoing the scale, or diverges."""

from __future__ import annotations

import numpy as np

from hmsbrain.core.inputs import IMAGE_INPUT, RAW_INPUT
from hmsbrain.diagnose.context import Context
from hmsbrain.diagnose.report import FAIL, PASS, WARN, Check

HUGE_STD = 5.0  # median channel std of a model input beyond which the input is unscaled
TINY_STD = 0.05
WARN_STD = (0.1, 3.0)  # per-channel std outside this: a channel on another scale
OFFSET = 3.0  # |mean| / std beyond this: an offset the first layer must learn away
IMAGE_LIMIT = 1e3
IMAGE_WARN = 10.0
SUM_TOLERANCE = 1e-3


def check_raw_input(ctx: Context) -> Check | None:
    """Per-channel mean and std of the raw input after the model's standardisation layer."""
    if RAW_INPUT not in ctx.names:
        return None
    name = "raw input scale"
    raw = ctx.cache.batch(ctx.sample.positions)[RAW_INPUT].astype(np.float64)
    stats = ctx.raw_stats
    if stats is not None:  # the model's Normalization layer, with the training folds' statistics
        raw = (raw - stats[0]) / np.sqrt(stats[1])
    mean, std = raw.mean(axis=(0, 1)), raw.std(axis=(0, 1))
    median = float(np.median(std))
    p = ctx.cfg.preprocess
    setting = (
        "standardised by the training folds"
        if stats is not None
        else (f"preprocess.standardize=false, scale_uv={p.scale_uv:g}")
    )
    measured = (
        f"{len(std)} channels ({setting}): std median {median:.3g} (range {std.min():.3g}-"
        f"{std.max():.3g}), |mean| up to {np.abs(mean).max():.3g}"
    )
    if not np.isfinite(raw).all():
        return Check(name, FAIL, f"{measured}; non-finite values", "find the NaN source")
    if median > HUGE_STD or median < TINY_STD:
        if stats is None:
            advice = (
                "microvolts fed without scaling: set preprocess.standardize=true (or "
                f"preprocess.scale_uv={p.scale_uv * median:.3g})"
            )
        else:
            advice = "the standardisation statistics do not fit these inputs; report a bug"
        return Check(name, FAIL, measured, advice)
    offset = np.abs(mean) / np.maximum(std, 1e-12)
    odd = np.flatnonzero((std < WARN_STD[0]) | (std > WARN_STD[1]) | (offset > OFFSET))
    if len(odd):
        return Check(
            name,
            WARN,
            f"{measured}; channels off unit scale: {odd[:8].tolist()}",
            "set preprocess.standardize=true to put every channel on one scale",
        )
    return Check(name, PASS, f"{measured}: near 0 and 1")


def check_image_input(ctx: Context) -> Check | None:
    """The spectrogram image's range, as the backbone reads it."""
    if IMAGE_INPUT not in ctx.names:
        return None
    name = "image input range"
    image = ctx.cache.batch(ctx.sample.positions)[IMAGE_INPUT].astype(np.float64)
    measured = (
        f"{image.shape[1]}x{image.shape[2]} images: range {image.min():.3g} to "
        f"{image.max():.3g}, mean {image.mean():.3g}, std {image.std():.3g}"
    )
    if not np.isfinite(image).all():
        return Check(name, FAIL, f"{measured}; non-finite values", "find the NaN source")
    if image.std() == 0 or np.abs(image).max() > IMAGE_LIMIT:
        return Check(
            name,
            FAIL,
            measured,
            "the image is constant or unscaled; check the "
            "spectrogram settings (preprocess.top_db, n_fft, fmax)",
        )
    if np.abs(image).max() > IMAGE_WARN:
        return Check(name, WARN, measured, "images beyond +/-10 saturate a backbone's stem")
    return Check(name, PASS, measured)


def check_targets(ctx: Context) -> Check:
    """The training and validation targets are distributions: finite, >= 0, summing to 1."""
    name = "targets"
    with np.errstate(invalid="ignore", divide="ignore"):  # a unit without votes: found below
        frame = ctx.data.unit_targets(ctx.rows)
    targets = frame.to_numpy(np.float64)
    sums = targets.sum(axis=1)
    bad = ~np.isfinite(targets).all(axis=1) | (targets < 0).any(axis=1)
    bad |= np.abs(sums - 1) > SUM_TOLERANCE
    measured = (
        f"{len(targets)} unit targets over {targets.shape[1]} classes: sums "
        f"{np.nanmin(sums):.4f}-{np.nanmax(sums):.4f}, {int(bad.sum())} invalid"
    )
    if bad.any():
        return Check(
            name,
            FAIL,
            f"{measured} (units {frame.index[bad][:5].tolist()})",
            "every target must be a distribution: give each unit at least one vote and no "
            "negative ones",
        )
    return Check(name, PASS, measured)
