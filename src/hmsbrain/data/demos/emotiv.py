"""Embedded demo: a 14-channel consumer headset (Emotiv EPOC layout) in the recordings layout.

What is written (``layout: recordings``):

* ``<subject>_session<k>.edf`` (``s01_session1.edf`` ...): one continuous EDF file per
  subject-session (12 recordings of 10 subjects, two came back for a second session; 36-50 markers
  and about 2-2.7 minutes each), 14 signals named
  AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4 at 128 Hz, physical dimension ``uV``, physical
  range +-4000 uV on 16-bit digital values (0.12 uV resolution), 1 s data records, a fixed
  start date and time (so the bytes depend on the seed only), no annotations;
* ``events.csv``: ``file,onset,label,subject``, one row per marker, ``onset`` in seconds from the
  start of ``file`` (an exact multiple of 1/128 s), ``label`` one of rest/blink/jaw (about
  40/32/28 %), ``subject`` the subject id (``s01`` ...), rows in file and time order;
* ``dataset.yaml``: layout, classes and the epoch window (-0.1 s to 0.4 s around each marker, no
  baseline correction).

Signal model (microvolts), and why:

* background: 1/f^beta noise (beta per subject) mixed from a common, a per-hemisphere and a
  per-electrode source, so neighbouring electrodes correlate as through volume conduction; a
  posterior alpha rhythm at the subject's own frequency; slow electrode drifts (saline sensors);
  its amplitude varies per subject and drifts slowly within a recording, so the power of a window
  says little about what happened in it;
* blink marker: a monophasic positive deflection over the eyes (AF3/AF4 strongest, F3/F4 and
  F7/F8 less), 0.2-0.4 s long, 100-300 uV, starting 20-100 ms after the marker;
* jaw marker: a burst of broadband muscle activity (20-60 Hz) over the temporalis (T7/T8
  strongest, FC5/FC6 and F7/F8 less) starting with the marker, and the slow potential a clench
  brings with it as the headset moves on the skin: a negative deflection at the same electrodes
  peaking 0.15-0.25 s after the marker;
* rest marker: background only, but nine in ten rest windows hold a distractor with the spectrum
  of a marked event and none of its time course: a glance down and back (the blink's field and
  size with the opposite sign), a spontaneous blink cut by the window edge, a lateral saccade
  (opposite polarity at F7 and F8, a step, not a transient), or a swallow/tension burst (muscle
  activity with a slow potential of random timing and sign); a quarter of the blink and jaw
  windows hold one too.

So log band power sees "a lot of slow frontal power" or "a lot of temporal high-frequency power"
in rest windows as often as in the marked ones and separates the classes only in part, while the
shape and timing of the deflections, which a convolutional network on the raw signal (or even a
linear model on the downsampled signal) can read, separate them well. The markers are 2.2-4 s
apart and spontaneous blinks, saccades and muscle bursts fill the gaps, as in a real session.

Generation is deterministic: each recording draws from its own generator seeded by
(seed, subject, session).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft
import scipy.signal
import yaml

from hmsbrain.data.demos.noise import pink_noise

GENERATOR_VERSION = 2

SAMPLE_RATE = 128
CHANNELS = ("AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4")
CLASSES = ("rest", "blink", "jaw")
CLASS_PRIOR = (0.40, 0.32, 0.28)  # rest a little more common, as in a cued session
TMIN, TMAX = -0.1, 0.4
PHYSICAL_RANGE = 4000.0  # uV either side of zero
N_SUBJECTS = 10
N_SESSIONS = 12  # two subjects came back for a second session

_IDX = {c: i for i, c in enumerate(CHANNELS)}
_SIDE = np.array([-1, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1, 1], dtype=np.float64)


def _field(**weights: float) -> np.ndarray:
    """Per-electrode gains of a source; electrodes not named get a small volume-conducted share."""
    w = np.full(len(CHANNELS), 0.03)
    for name, gain in weights.items():
        w[_IDX[name]] = gain
    return w


# Vertical eye field (blinks, glances down): strongest just above the eyes.
_EYE = _field(AF3=1.0, AF4=1.0, F3=0.6, F4=0.6, F7=0.5, F8=0.5, FC5=0.2, FC6=0.2, T7=0.08, T8=0.08)
# Horizontal eye field (saccades): the cornea-retina dipole turns, F7 and F8 swing oppositely.
_HEOG = _field(
    F7=1.0, F8=-1.0, AF3=0.35, AF4=-0.35, F3=0.25, F4=-0.25, FC5=0.3, FC6=-0.3, T7=0.12, T8=-0.12
)
# Temporalis muscle and the electrodes the clench moves.
_JAW = _field(T7=1.0, T8=1.0, FC5=0.7, FC6=0.7, F7=0.5, F8=0.5, P7=0.3, P8=0.3)
_POSTERIOR = _field(O1=1.0, O2=1.0, P7=0.7, P8=0.7, T7=0.2, T8=0.2)


@dataclass(frozen=True)
class _Subject:
    name: str
    amplitude: float  # background scale, uV
    beta: float  # 1/f exponent of the background
    alpha_hz: float
    alpha_gain: float
    blink_uv: float  # typical blink size
    emg_uv: float  # typical clench EMG size (rms)
    sessions: int


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """Unit-variance noise limited to lo..hi Hz (muscle activity is broadband above ~20 Hz)."""
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec = scipy.fft.rfft(rng.standard_normal(n)) * ((f >= lo) & (f <= hi))
    x = scipy.fft.irfft(spec, n=n)
    return x / x.std()


def _slow(rng: np.random.Generator, n: int, cutoff_hz: float) -> np.ndarray:
    """Unit-variance noise below ``cutoff_hz``: slow envelopes and electrode drifts."""
    sos = scipy.signal.butter(2, cutoff_hz, fs=SAMPLE_RATE, output="sos")
    x = scipy.signal.sosfiltfilt(sos, rng.standard_normal(n + 4 * SAMPLE_RATE))[2 * SAMPLE_RATE :]
    x = x[:n]
    return x / x.std()


def _blink_shape(duration_s: float) -> np.ndarray:
    """A blink: a fast rise (the lid closing) and a slower return, unit peak."""
    t = np.arange(int(duration_s * SAMPLE_RATE)) / (duration_s * SAMPLE_RATE)
    return np.sin(np.pi * t**0.7) ** 2


def _add(out: np.ndarray, field: np.ndarray, wave: np.ndarray, start: int) -> None:
    """Add ``field x wave`` to the recording from sample ``start`` on, cut at both ends."""
    lo, hi = max(start, 0), min(start + len(wave), out.shape[1])
    if hi > lo:
        out[:, lo:hi] += field[:, None] * wave[None, lo - start : hi - start]


def _emg_burst(rng: np.random.Generator, rms_uv: float, seconds: float) -> np.ndarray:
    """A muscle burst: 20-60 Hz noise under a smooth on/off envelope."""
    n = int(seconds * SAMPLE_RATE)
    ramp = min(int(0.05 * SAMPLE_RATE), n // 2)
    envelope = np.ones(n)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
    envelope[n - ramp :] = np.linspace(1.0, 0.0, ramp)
    return rms_uv * envelope * _band_noise(rng, n, 20.0, 60.0)


def _slow_potential(peak_s: float, width_s: float, n: int) -> np.ndarray:
    """A smooth monophasic deflection of unit peak at ``peak_s`` seconds."""
    t = np.arange(n) / SAMPLE_RATE
    return np.exp(-0.5 * ((t - peak_s) / width_s) ** 2)


def _saccade_step(n: int) -> np.ndarray:
    """A saccade seen through the horizontal eye field: a fast step that relaxes over ~1 s (the
    slow amplifier high-pass), unit height."""
    k = np.arange(n)
    return np.exp(-k / SAMPLE_RATE) / (1.0 + np.exp(-(k - 4) / 1.5))


def _lateral(rng: np.random.Generator) -> np.ndarray:
    """The muscle field of a one-sided or uneven contraction."""
    balance = rng.uniform(0.2, 1.0)
    gains = (
        np.where(_SIDE < 0, 1.0, balance)
        if rng.random() < 0.5
        else np.where(_SIDE > 0, 1.0, balance)
    )
    return _JAW * gains


def _distractor(rng: np.random.Generator, out: np.ndarray, marker: int, subject: _Subject) -> None:
    """One artefact overlapping the window around ``marker`` but not locked to it."""
    kind = rng.choice(["edge_blink", "saccade", "look_down", "tension"], p=[0.15, 0.15, 0.3, 0.4])
    fs = SAMPLE_RATE
    if kind == "edge_blink":
        # A blink that began before the window or begins at its end: the window sees its tail or
        # its rise, the same slow frontal power as a marked blink but not its time course.
        duration = rng.uniform(0.2, 0.4)
        start = (
            rng.uniform(-0.1 - 0.8 * duration, -0.1 - 0.2 * duration)
            if rng.random() < 0.5
            else rng.uniform(0.18, 0.32)
        )
        amp = subject.blink_uv * rng.uniform(0.6, 1.4)
        _add(out, _EYE, amp * _blink_shape(duration), marker + int(start * fs))
    elif kind == "saccade":
        # A look to either side that starts in the window: slow power at F7/F8 and AF3/AF4.
        amp = rng.choice([-1.0, 1.0]) * rng.uniform(60, 160)
        _add(
            out, _HEOG, amp * _saccade_step(int(1.5 * fs)), marker + int(rng.uniform(0, 0.25) * fs)
        )
    elif kind == "look_down":
        # A glance down and back: the vertical eye field of a blink with the opposite sign (the
        # cornea turns away from the frontal electrodes), so the same power at the same sites.
        duration = rng.uniform(0.25, 0.45)
        amp = subject.blink_uv * rng.uniform(0.5, 1.2)
        _add(out, _EYE, -amp * _blink_shape(duration), marker + int(rng.uniform(-0.05, 0.15) * fs))
    else:
        # Swallowing or tensing: muscle activity and a slow potential of its own timing and sign.
        seconds = rng.uniform(0.3, 1.0)
        start = marker + int(rng.uniform(-0.5, 0.3) * fs)
        _add(
            out,
            _lateral(rng),
            _emg_burst(rng, subject.emg_uv * rng.uniform(0.5, 1.5), seconds),
            start,
        )
        slow = _slow_potential(rng.uniform(0.1, 0.5), rng.uniform(0.05, 0.12), int(0.8 * fs))
        _add(out, _JAW, rng.choice([-1.0, 1.0]) * rng.uniform(10, 35) * slow, start)


def _event(
    rng: np.random.Generator, out: np.ndarray, marker: int, label: str, subject: _Subject
) -> None:
    """The marked event (if any) and the distractors of its window."""
    fs = SAMPLE_RATE
    if label == "blink":
        duration = rng.uniform(0.2, 0.4)
        amp = float(np.clip(subject.blink_uv * rng.uniform(0.6, 1.4), 100, 300))
        start = marker + int(rng.uniform(0.02, 0.10) * fs)
        _add(out, _EYE, amp * _blink_shape(duration), start)
    elif label == "jaw":
        start = marker + int(rng.uniform(0.0, 0.05) * fs)
        emg = _emg_burst(rng, subject.emg_uv * rng.uniform(0.5, 1.5), rng.uniform(0.6, 1.5))
        _add(out, _JAW * rng.uniform(0.7, 1.0, len(CHANNELS)), emg, start)
        slow = _slow_potential(rng.uniform(0.15, 0.25), rng.uniform(0.06, 0.1), int(0.8 * fs))
        _add(out, _JAW, -rng.uniform(20, 50) * slow, start)
    # Rest windows usually hold a distractor; marked windows sometimes do too.
    if rng.random() < (0.9 if label == "rest" else 0.25):
        _distractor(rng, out, marker, subject)


def _spontaneous(
    rng: np.random.Generator, out: np.ndarray, markers: np.ndarray, subject: _Subject
) -> None:
    """Blinks, saccades and muscle bursts in the gaps between the marked windows."""
    n = out.shape[1]
    fs = SAMPLE_RATE
    busy = np.zeros(n, dtype=bool)
    for m in markers:
        busy[max(m - fs // 2, 0) : m + int(0.7 * fs)] = True
    minutes = n / fs / 60
    for kind, per_min in (("blink", 12.0), ("saccade", 6.0), ("emg", 2.0)):
        for start in rng.integers(0, n, rng.poisson(per_min * minutes)):
            if busy[start : start + fs // 2].any():
                continue
            if kind == "blink":
                amp = subject.blink_uv * rng.uniform(0.6, 1.4)
                _add(out, _EYE, amp * _blink_shape(rng.uniform(0.2, 0.4)), start)
            elif kind == "saccade":
                amp = rng.choice([-1.0, 1.0]) * rng.uniform(60, 160)
                _add(out, _HEOG, amp * _saccade_step(int(1.5 * fs)), start)
            else:
                emg = _emg_burst(rng, subject.emg_uv * rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.5))
                _add(out, _lateral(rng), emg, start)


def _session(
    rng: np.random.Generator, subject: _Subject
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One continuous recording ``(14, samples)`` in uV, its marker samples and labels."""
    fs = SAMPLE_RATE
    gaps = rng.uniform(2.2, 4.0, int(rng.integers(36, 51)))
    markers = (np.round((3.0 + np.cumsum(gaps)) * fs)).astype(int)
    labels = [str(c) for c in rng.choice(CLASSES, len(markers), p=CLASS_PRIOR)]
    n = int(np.ceil(markers[-1] / fs + 3.0)) * fs  # whole seconds: whole EDF data records

    # Volume conduction: a source seen everywhere, one per hemisphere, one per electrode.
    common = pink_noise(rng, (1, n), subject.beta, SAMPLE_RATE, 0.5)
    hemi = pink_noise(rng, (2, n), subject.beta, SAMPLE_RATE, 0.5)
    local = pink_noise(rng, (len(CHANNELS), n), subject.beta, SAMPLE_RATE, 0.5)
    background = 0.5 * common + 0.5 * np.where(_SIDE[:, None] < 0, hemi[0], hemi[1]) + 0.6 * local
    t = np.arange(n) / fs
    wobble = 0.3 * np.cumsum(rng.standard_normal(n)) / fs  # alpha drifts in frequency a little
    alpha = np.sin(2 * np.pi * subject.alpha_hz * t + wobble) * np.exp(0.6 * _slow(rng, n, 0.3))
    background += subject.alpha_gain * _POSTERIOR[:, None] * alpha / 2.0
    # Slow changes of the background level (arousal, contact quality) over seconds.
    envelope = np.exp(0.3 * _slow(rng, n, 0.2))
    out = subject.amplitude * envelope[None, :] * background
    out += rng.uniform(8, 25, (len(CHANNELS), 1)) * np.stack(
        [_slow(rng, n, 0.15) for _ in CHANNELS]
    )  # electrode drifts

    _spontaneous(rng, out, markers, subject)
    for marker, label in zip(markers, labels, strict=True):
        _event(rng, out, marker, label, subject)
    return out, markers, labels


def _write_edf(path: Path, data: np.ndarray, subject: str) -> None:
    # Imported here: the data registry imports every demo's module, and the Kaggle notebook
    # (whose image lacks edfio) must not need it.
    import edfio

    signals = [
        edfio.EdfSignal(
            np.clip(row, -PHYSICAL_RANGE, PHYSICAL_RANGE),
            SAMPLE_RATE,
            label=name,
            physical_dimension="uV",
            physical_range=(-PHYSICAL_RANGE, PHYSICAL_RANGE),
        )
        for name, row in zip(CHANNELS, data, strict=True)
    ]
    edf = edfio.Edf(
        signals,
        patient=edfio.Patient(code=subject),
        recording=edfio.Recording(startdate=date(2020, 1, 1), equipment_code="EPOC"),
        starttime=time(12, 0, 0),
        data_record_duration=1.0,
    )
    edf.write(path)


def generate(root: Path, seed: int) -> None:
    """Write the demo recordings, ``events.csv`` and ``dataset.yaml`` into ``root``."""
    root = Path(root)
    master = np.random.default_rng(seed)
    returning = set(master.choice(N_SUBJECTS, N_SESSIONS - N_SUBJECTS, replace=False).tolist())
    subjects = [
        _Subject(
            name=f"s{k + 1:02d}",
            amplitude=float(master.lognormal(np.log(12.0), 0.25)),
            beta=float(master.uniform(1.0, 1.6)),
            alpha_hz=float(master.uniform(8.0, 12.0)),
            alpha_gain=float(master.uniform(0.3, 1.2)),
            blink_uv=float(master.uniform(130, 240)),
            emg_uv=float(master.uniform(12, 30)),
            sessions=2 if k in returning else 1,
        )
        for k in range(N_SUBJECTS)
    ]
    rows = []
    for k, subject in enumerate(subjects):
        for session in range(subject.sessions):
            rng = np.random.default_rng([seed, k, session])
            data, markers, labels = _session(rng, subject)
            name = f"{subject.name}_session{session + 1}.edf"
            _write_edf(root / name, data, subject.name)
            rows += [
                {"file": name, "onset": m / SAMPLE_RATE, "label": lab, "subject": subject.name}
                for m, lab in zip(markers, labels, strict=True)
            ]
    pd.DataFrame(rows).to_csv(root / "events.csv", index=False)
    meta = {
        "layout": "recordings",
        "classes": list(CLASSES),
        "tmin": TMIN,
        "tmax": TMAX,
        "baseline": None,
    }
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
