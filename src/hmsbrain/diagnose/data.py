"""Checks of the raw signals, as the files hold them, on a bounded sample of windows: sampling
rate against the recipe, amplitude scale, flat channels, missing values, clipping, mains hum."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.signal

from hmsbrain.diagnose.context import Context, channel_stds
from hmsbrain.diagnose.report import FAIL, PASS, WARN, Check, new_figure, save_figure

VOLTS_STD_UV = 0.1  # below: volts (or millivolts) read as microvolts; scalp EEG is 5-100 uV
SMALL_STD_UV = 1.0
LARGE_STD_UV = 1000.0  # above: not scalp EEG in microvolts (raw ADC counts, nanovolts?)
FLAT_FRACTION = 1e-3  # a channel this far below the median channel std carries nothing
DEAD_SHARE = 0.5  # flat in this share of windows: a dead channel
FLAT_SHARE = 0.05  # flat in this share of windows: a channel that often drops out
NAN_WARN_SHARE = 0.01
NAN_FAIL_SHARE = 0.5
CLIP_SAMPLES = 0.01  # share of a window's samples at its extreme that marks it clipped
CLIP_MIN_SAMPLES = 8  # a smooth peak of quantised data can repeat a few samples
CLIP_WARN_SHARE = 0.01
CLIP_FAIL_SHARE = 0.2
MAINS_HZ = (50.0, 60.0)
MAINS_RATIO = 2.0  # mains power over its neighbours' above this: hum is present


def _names(channels: tuple[str, ...], index: np.ndarray, limit: int = 8) -> str:
    named = [channels[i] for i in index]
    return ", ".join(named[:limit]) + (
        f" and {len(named) - limit} more" if len(named) > limit else ""
    )


def _used_channels(ctx: Context) -> np.ndarray:
    """Whether each raw channel reaches the model through the montage."""
    montage = ctx.data.montage
    used = np.zeros(len(ctx.sample.channels), bool)
    if montage.average:
        used[:] = True
    used[montage.anodes] = True
    if montage.cathodes is not None:
        used[montage.cathodes] = True
    return used


def check_sample_rate(ctx: Context) -> Check:
    """The recipe's rate and band-pass against the recording's native rate."""
    name = "sampling rate"
    p = ctx.cfg.preprocess
    native, rate, raw_rate = ctx.sample.sfreq, p.sample_rate, ctx.raw_sample_rate
    measured = (
        f"native {native:g} Hz, recipe {rate:g} Hz (raw branch {raw_rate:g} Hz), band-pass "
        f"{p.bandpass_low:g}-{p.bandpass_high:g} Hz"
    )
    if p.bandpass_high >= rate / 2:
        return Check(
            name,
            FAIL,
            f"{measured}: the upper edge is at or above the recipe's "
            f"Nyquist rate {rate / 2:g} Hz, so preprocessing refuses it",
            f"set preprocess.bandpass_high below {rate / 2:g}",
        )
    if p.bandpass_high > native / 2:
        return Check(
            name,
            FAIL,
            f"{measured}: the band above {native / 2:g} Hz (the native "
            "Nyquist rate) is not in the recording; upsampling cannot add it",
            f"set preprocess.bandpass_high <= {0.9 * native / 2:g} and "
            f"preprocess.sample_rate <= {native:g}",
        )
    if p.bandpass_high > raw_rate / 2:
        return Check(
            name,
            WARN,
            f"{measured}: the raw branch's {raw_rate / 2:g} Hz Nyquist rate "
            "cuts the band-pass short (decimation removes the rest)",
            "lower preprocess.raw_downsample or preprocess.bandpass_high",
        )
    if rate > native:
        return Check(
            name,
            WARN,
            f"{measured}: upsampled, which adds no information",
            f"set preprocess.sample_rate={native:g} (same content, less compute)",
        )
    return Check(name, PASS, f"{measured}: inside every Nyquist rate")


def check_amplitude(ctx: Context) -> Check:
    """The signals' size in microvolts: volts read as microvolts are a millionth of EEG."""
    name = "amplitude scale"
    stds = channel_stds(ctx.sample.signals)
    per_channel = np.nanmedian(stds, axis=0)
    median = float(np.nanmedian(per_channel))
    measured = (
        f"median channel std {median:.3g} uV (channels {np.nanmin(per_channel):.3g}-"
        f"{np.nanmax(per_channel):.3g}) over {len(stds)} windows"
    )
    if not np.isfinite(median) or median < VOLTS_STD_UV:
        return Check(
            name,
            FAIL,
            f"{measured}; scalp EEG is 5-100 uV, so these look like volts read as microvolts",
            "set units: V in dataset.yaml (the readers convert to microvolts)",
        )
    if median < SMALL_STD_UV:
        return Check(
            name,
            WARN,
            f"{measured}: smaller than scalp EEG",
            "check the units (dataset.yaml units: uV or V)",
        )
    if median > LARGE_STD_UV:
        return Check(
            name,
            WARN,
            f"{measured}: larger than scalp EEG (raw ADC counts?)",
            "convert the values to microvolts or volts and set units",
        )
    return Check(name, PASS, f"{measured}: scalp EEG in microvolts")


def check_flat_channels(ctx: Context) -> Check:
    """Channels with (almost) no signal: a dead electrode is noise the model must learn to
    ignore, or a constant that standardisation divides by ~0."""
    name = "flat channels"
    stds = channel_stds(ctx.sample.signals)
    reference = float(np.nanmedian(stds))
    flat = ~(stds > FLAT_FRACTION * reference)  # NaN (no value at all) counts as flat
    share = flat.mean(axis=0)
    channels, used = ctx.sample.channels, _used_channels(ctx)
    dead = np.flatnonzero((share >= DEAD_SHARE) & used)
    often = np.flatnonzero((share >= FLAT_SHARE) & (share < DEAD_SHARE) & used)
    unused = np.flatnonzero((share >= DEAD_SHARE) & ~used)
    measured = (
        f"{len(stds)} windows x {len(channels)} channels, {flat.mean():.1%} of channel-windows "
        f"flat (std below {FLAT_FRACTION:g} x the median {reference:.3g} uV)"
    )
    if len(unused):
        measured += f"; flat but not in the montage: {_names(channels, unused)}"
    if len(dead):
        return Check(
            name,
            FAIL,
            f"{measured}; dead in >= {DEAD_SHARE:.0%} of windows: {_names(channels, dead)}",
            "fix or drop these channels (or pick a preprocess.montage without them)",
        )
    if len(often):
        return Check(
            name,
            WARN,
            f"{measured}; flat in {FLAT_SHARE:.0%}-{DEAD_SHARE:.0%} of "
            f"windows: {_names(channels, often)}",
            "check those electrodes; windows where they drop out teach noise",
        )
    return Check(name, PASS, measured)


def check_missing_values(ctx: Context) -> Check:
    """NaN and infinite samples: the generic readers refuse them, HMS windows are filled by
    interpolation, which is harmless for short gaps and a straight line for long ones."""
    name = "missing values"
    signals = ctx.sample.signals
    nan, inf = np.isnan(signals), np.isinf(signals)
    share = float((nan | inf).mean())
    windows = float((nan | inf).any(axis=(1, 2)).mean())
    measured = (
        f"{nan.mean():.2%} NaN and {int(inf.sum())} infinite samples, in {windows:.1%} of "
        f"{len(signals)} windows"
    )
    if share > NAN_FAIL_SHARE:
        return Check(
            name,
            FAIL,
            f"{measured}: most of the signal is interpolated",
            "drop the windows with long gaps",
        )
    if share > NAN_WARN_SHARE:
        return Check(
            name,
            WARN,
            f"{measured}: interpolated before the model sees them",
            "long gaps become straight lines; consider dropping those windows",
        )
    return Check(name, PASS, measured)


def check_clipping(ctx: Context) -> Check:
    """Windows whose channel sits at its own extreme for many samples: an amplifier or
    converter at full scale, where the true signal is lost."""
    name = "clipping"
    signals = ctx.sample.signals
    samples = signals.shape[-1]
    with warnings.catch_warnings():  # an all-NaN channel: no extreme, not clipped
        warnings.simplefilter("ignore", RuntimeWarning)
        top = np.nanmax(signals, axis=-1, keepdims=True)
        bottom = np.nanmin(signals, axis=-1, keepdims=True)
    at_extreme = ((signals == top) | (signals == bottom)).sum(axis=-1)
    varies = (top > bottom)[..., 0]
    clipped = varies & (at_extreme >= max(CLIP_MIN_SAMPLES, CLIP_SAMPLES * samples))
    share = float(clipped.mean())
    per_channel = clipped.mean(axis=0)
    worst = np.argsort(per_channel)[::-1][: int((per_channel > 0).sum())]
    measured = (
        f"{share:.2%} of channel-windows have >= {CLIP_SAMPLES:.0%} of samples at their extreme"
    )
    if len(worst):
        measured += f" (most: {_names(ctx.sample.channels, worst, 4)})"
    if share > CLIP_FAIL_SHARE:
        return Check(
            name,
            FAIL,
            measured,
            "the recording saturates: lower the amplifier gain or drop clipped windows",
        )
    if share > CLIP_WARN_SHARE:
        return Check(name, WARN, measured, "drop or down-weight clipped windows")
    return Check(name, PASS, measured)


def check_line_noise(ctx: Context) -> Check:
    """Mains hum (50 or 60 Hz) against neighbouring frequencies; it only matters when the
    recipe's band-pass keeps it, since a model can learn a session's hum instead of the brain."""
    name = "line noise"
    sample, p = ctx.sample, ctx.cfg.preprocess
    fs = sample.sfreq
    with warnings.catch_warnings():  # an all-NaN channel: zeros, no power
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(sample.signals, axis=-1, keepdims=True)
    signals = np.nan_to_num(sample.signals - means)
    freqs, power = scipy.signal.welch(signals, fs, nperseg=min(signals.shape[-1], int(2 * fs)))
    spectrum = power.mean(axis=(0, 1))
    found, kept = [], []
    for hz in MAINS_HZ:
        if hz + 6 >= fs / 2:
            continue
        peak = spectrum[np.abs(freqs - hz) <= 1].max()
        side = spectrum[(np.abs(freqs - hz) >= 2) & (np.abs(freqs - hz) <= 6)]
        ratio = float(peak / max(np.median(side), 1e-30))
        if ratio > MAINS_RATIO:
            found.append(f"{hz:g} Hz at {ratio:.1f}x its neighbours")
            if p.bandpass_low < hz < p.bandpass_high:
                kept.append(hz)
    fig, ax = new_figure()
    ax.semilogy(freqs, spectrum, lw=1)
    ax.axvspan(p.bandpass_low, p.bandpass_high, color="green", alpha=0.1, label="band-pass")
    for hz in MAINS_HZ:
        ax.axvline(hz, color="grey", ls=":", lw=1)
    ax.set_xlabel("Hz")
    ax.set_ylabel("power (uV^2/Hz)")
    ax.set_title("mean spectrum of the sampled windows")
    ax.legend()
    plot = save_figure(fig, ctx.out_dir / "spectrum.png")
    band = f"band-pass {p.bandpass_low:g}-{p.bandpass_high:g} Hz"
    if not found:
        return Check(
            name, PASS, f"no mains peak (50/60 Hz) above {MAINS_RATIO:g}x its neighbours", plot=plot
        )
    if kept:
        return Check(
            name,
            WARN,
            f"{'; '.join(found)}, inside the {band}",
            f"set preprocess.bandpass_high below {min(kept) - 5:g}",
            plot,
        )
    return Check(name, PASS, f"{'; '.join(found)}, removed by the {band}", plot=plot)
