"""Embedded demo: a 64-channel lab ERP (oddball) experiment in the arrays layout.

What is written (``layout: arrays``):

* ``X.npy``: float32 ``(1044, 64, 512)``, microvolts, 2 s epochs at 256 Hz starting 0.2 s before
  the stimulus (the stimulus is at sample 51), channels in the order of ``CHANNELS``;
* ``y.npy``: int64 ``(1044,)``, 0 = standard, 1 = target (half of each subject's trials);
* ``groups.npy``: unicode ``(1044,)``, the subject of each trial (``sub-01`` ...), trials of a
  subject contiguous;
* ``dataset.yaml``: layout, sample rate, channel names, units and class names.

Signal model (microvolts), and why:

* background: 1/f^beta activity (flat below 2 Hz) of 24 cortical sources per subject, seen at
  every electrode through a smooth volume-conduction map (so neighbouring electrodes correlate as
  on a real cap), broad slow potentials (skin, reference drift) and independent electrode noise;
  its spectral density at 1-3 Hz, 10-30 uV^2/Hz, is that of real EEG and is what limits
  single-trial ERP detection; the subject's level, electrode gains and a per-trial scale
  (vigilance, movement) make the power of a trial vary for reasons unrelated to its class;
* posterior alpha bursts at the subject's frequency (5-20 uV), blinks (frontopolar, 80-200 uV) in
  a fifth of the trials, one-sided temporal muscle bursts in a few, mains hum: in both classes;
  the median channel has a standard deviation of ~10-15 uV, blinks reach hundreds;
* evoked potentials to every stimulus: occipital P1/N1 and a central P2;
* targets add a P300: a centro-parietal positivity of 8-14 uV peak at Pz (the subject's own size
  and latency, 300-400 ms; the size also varies per trial), its latency jittered per trial by
  ~40 ms, after a small fronto-central N2; standards carry a P300 a seventh as large; targets
  also suppress the alpha rhythm somewhat for a second (event-related desynchronisation).

The class difference is a few microvolts of phase-locked, spatially structured voltage in each
sample, under tens of microvolts of background and artefacts: band power hardly sees it (a little
above chance, from the alpha suppression and the P300's own slow power), while a model of the time
course across electrodes reaches ~65-75 % balanced accuracy across subjects, as single-trial P300
detection does on real data. A smaller P300 (2-5 uV) on this background is beyond any model: even
the ideal matched filter at Pz separates single trials at AUC ~0.6. Raw inputs are tens of
microvolts, so a network learns this only from standardised inputs.

Generation is deterministic: each subject draws from its own generator seeded by (seed, subject).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from hmsbrain.data.demos.noise import pink_noise

GENERATOR_VERSION = 2

SAMPLE_RATE = 256
N_SAMPLES = 512
PRESTIMULUS_S = 0.2
N_TRIALS = 1044
N_SUBJECTS = 10
CLASSES = ("standard", "target")

# Electrode directions on a unit sphere (x right, y nose, z up), from the standard 10-05
# template; only used to make smooth, realistic fields.
POSITIONS: dict[str, tuple[float, float, float]] = {
    "Fp1": (-0.28, 0.96, -0.07),
    "AF7": (-0.54, 0.84, -0.10),
    "AF3": (-0.33, 0.92, 0.21),
    "F1": (-0.28, 0.74, 0.61),
    "F3": (-0.52, 0.73, 0.44),
    "F5": (-0.69, 0.70, 0.18),
    "F7": (-0.76, 0.64, -0.12),
    "FT7": (-0.93, 0.36, -0.13),
    "FC5": (-0.87, 0.40, 0.28),
    "FC3": (-0.66, 0.44, 0.61),
    "FC1": (-0.35, 0.44, 0.82),
    "C1": (-0.37, 0.07, 0.93),
    "C3": (-0.71, 0.06, 0.70),
    "C5": (-0.94, 0.04, 0.34),
    "T7": (-0.99, 0.01, -0.11),
    "TP7": (-0.94, -0.32, -0.08),
    "CP5": (-0.88, -0.33, 0.34),
    "CP3": (-0.66, -0.31, 0.68),
    "CP1": (-0.35, -0.30, 0.89),
    "P1": (-0.28, -0.62, 0.73),
    "P3": (-0.54, -0.63, 0.57),
    "P5": (-0.72, -0.63, 0.30),
    "P7": (-0.79, -0.61, -0.03),
    "P9": (-0.72, -0.56, -0.41),
    "PO7": (-0.56, -0.83, 0.03),
    "PO3": (-0.37, -0.85, 0.38),
    "O1": (-0.29, -0.95, 0.09),
    "Iz": (0.00, -0.98, -0.22),
    "Oz": (0.00, -0.99, 0.15),
    "POz": (0.00, -0.86, 0.51),
    "Pz": (0.00, -0.61, 0.79),
    "CPz": (0.00, -0.29, 0.96),
    "Fpz": (0.00, 1.00, -0.02),
    "Fp2": (0.28, 0.96, -0.07),
    "AF8": (0.54, 0.84, -0.10),
    "AF4": (0.34, 0.91, 0.21),
    "AFz": (0.00, 0.94, 0.34),
    "Fz": (0.00, 0.75, 0.66),
    "F2": (0.30, 0.75, 0.60),
    "F4": (0.53, 0.73, 0.42),
    "F6": (0.70, 0.69, 0.17),
    "F8": (0.76, 0.64, -0.12),
    "FT8": (0.92, 0.37, -0.13),
    "FC6": (0.87, 0.41, 0.27),
    "FC4": (0.67, 0.44, 0.60),
    "FC2": (0.36, 0.45, 0.82),
    "FCz": (0.00, 0.45, 0.89),
    "Cz": (0.00, 0.08, 1.00),
    "C2": (0.39, 0.08, 0.92),
    "C4": (0.72, 0.07, 0.69),
    "C6": (0.94, 0.05, 0.33),
    "T8": (0.99, 0.02, -0.11),
    "TP8": (0.95, -0.32, -0.08),
    "CP6": (0.89, -0.31, 0.33),
    "CP4": (0.68, -0.30, 0.67),
    "CP2": (0.37, -0.29, 0.88),
    "P2": (0.31, -0.61, 0.73),
    "P4": (0.55, -0.61, 0.56),
    "P6": (0.72, -0.63, 0.30),
    "P8": (0.79, -0.61, -0.03),
    "P10": (0.72, -0.56, -0.40),
    "PO8": (0.57, -0.82, 0.03),
    "PO4": (0.37, -0.85, 0.37),
    "O2": (0.30, -0.95, 0.09),
}
CHANNELS = tuple(POSITIONS)
_XYZ = np.array(list(POSITIONS.values()))
_TIME = np.arange(N_SAMPLES) / SAMPLE_RATE - PRESTIMULUS_S


def _topo(centre: tuple[float, float, float], width: float) -> np.ndarray:
    """A smooth field peaking at ``centre`` (a direction), falling off over ``width`` radians."""
    c = np.asarray(centre) / np.linalg.norm(centre)
    angle = np.arccos(np.clip(_XYZ @ c, -1.0, 1.0))
    return np.exp(-0.5 * (angle / width) ** 2)


_P3_FIELD = _topo((0.0, -0.45, 0.89), 0.5)  # between CPz and Pz
_N2_FIELD = _topo((0.0, 0.3, 0.95), 0.45)  # FCz
_P2_FIELD = _topo((0.0, 0.1, 1.0), 0.5)  # Cz
_EYES = _topo((0.0, 1.0, -0.35), 0.45)  # below Fpz: strongest frontopolar
_OCCIPITAL = _topo((0.0, -0.97, 0.2), 0.45)
_N1_FIELD = _topo((-0.7, -0.7, 0.0), 0.4) + _topo((0.7, -0.7, 0.0), 0.4)
_TEMPORAL_L, _TEMPORAL_R = _topo((-1.0, 0.0, -0.1), 0.35), _topo((1.0, 0.0, -0.1), 0.35)


def _field_noise(
    rng: np.random.Generator, n: int, n_src: int, width: float, beta: float, knee_hz: float
) -> np.ndarray:
    """``(n, 64, samples)`` 1/f^beta activity of ``n_src`` random sources through smooth fields,
    scaled so each electrode has about unit variance."""
    directions = rng.standard_normal((n_src, 3))
    directions[:, 2] = np.abs(directions[:, 2])  # sources under the cap, not below the head
    mixing = np.stack([_topo(tuple(d), width) for d in directions], axis=1)  # (64, n_src)
    mixing /= np.sqrt((mixing**2).sum(axis=1, keepdims=True))
    sources = pink_noise(rng, (n, n_src, N_SAMPLES), beta, SAMPLE_RATE, knee_hz, np.float32)
    return np.einsum("cs,nst->nct", mixing, sources, optimize=True)


def _gauss(centre: np.ndarray, width: float) -> np.ndarray:
    """Gaussian waves of unit peak, one per row of ``centre`` (seconds after the stimulus)."""
    return np.exp(-0.5 * ((_TIME[None, :] - centre[:, None]) / width) ** 2)


def _subject(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One subject's trials ``(n, 64, 512)`` in uV and their labels."""
    y = rng.permutation(np.arange(n) < n // 2).astype(np.int64)  # half targets, in random order

    # Background: cortical sources seen through volume conduction, broad slow potentials (skin,
    # reference and sweat drifts reach every electrode alike) and electrode noise.
    # The cortical part's spectral density at 1-3 Hz, ~10-30 uV^2/Hz, is that of real EEG; it is
    # what limits single-trial ERP detection (broadband power adds little to that).
    level = rng.uniform(9.0, 14.0)
    x = _field_noise(rng, n, n_src=24, width=0.5, beta=rng.uniform(1.0, 1.4), knee_hz=2.0) * level
    x += _field_noise(rng, n, n_src=3, width=1.2, beta=2.0, knee_hz=0.5) * (0.3 * level)
    x += pink_noise(rng, (n, len(CHANNELS), N_SAMPLES), 0.5, SAMPLE_RATE, 0.5, np.float32) * (
        0.15 * level
    )
    gains = rng.lognormal(0.0, 0.15, len(CHANNELS))  # electrode contact differences
    trial_scale = rng.lognormal(0.0, 0.25, n)  # vigilance, movement: power unrelated to class
    x *= gains[None, :, None] * trial_scale[:, None, None]

    # Alpha bursts over the occipital cortex, at the subject's frequency, in both classes; a
    # target suppresses them a little for a second (event-related desynchronisation), the one
    # trace of the class that band power can pick up.
    alpha_hz, alpha_uv = rng.uniform(8.5, 11.5), rng.uniform(5.0, 20.0)
    phase = rng.uniform(0, 2 * np.pi, n)
    burst = _gauss(rng.uniform(-0.2, 1.8, n), 0.35) * rng.uniform(0.0, 1.0, (n, 1))
    erd = 1.0 - rng.uniform(0.3, 0.6) * _gauss(np.array([0.7]), 0.4) * y[:, None]
    alpha = np.sin(2 * np.pi * alpha_hz * _TIME[None, :] + phase[:, None]) * burst * erd
    x += alpha_uv * _OCCIPITAL[None, :, None] * alpha[:, None, :]

    # Evoked potentials of every stimulus: P1, N1 (occipital), P2 (central).
    jitter = rng.normal(0.0, 0.01, n)
    x += 3.0 * _OCCIPITAL[None, :, None] * _gauss(0.10 + jitter, 0.02)[:, None, :]
    x -= 4.0 * _N1_FIELD[None, :, None] * _gauss(0.17 + jitter, 0.025)[:, None, :]
    x += 3.0 * _P2_FIELD[None, :, None] * _gauss(0.21 + jitter, 0.03)[:, None, :]

    # The oddball response: P300 (and a small N2 before it) much larger for targets.
    p3_uv, p3_latency = rng.uniform(8.0, 14.0), rng.uniform(0.30, 0.40)
    size = np.where(y == 1, 1.0, 0.15) * rng.lognormal(0.0, 0.3, n)
    p3 = _gauss(p3_latency + rng.normal(0.0, 0.04, n), rng.uniform(0.12, 0.16))
    x += p3_uv * _P3_FIELD[None, :, None] * (size[:, None] * p3)[:, None, :]
    n2 = _gauss(0.25 + jitter, 0.03) * np.where(y == 1, 1.0, 0.3)[:, None]
    x -= 1.5 * _N2_FIELD[None, :, None] * n2[:, None, :]

    # Artefacts, in both classes alike.
    for i in np.flatnonzero(rng.random(n) < 0.2):  # blinks
        blink = _gauss(rng.uniform(-0.2, 1.8, 1), rng.uniform(0.05, 0.08))[0]
        x[i] += rng.uniform(80, 200) * _EYES[:, None] * blink[None, :]
    for i in np.flatnonzero(rng.random(n) < 0.05):  # muscle bursts on one side
        field = _TEMPORAL_L if rng.random() < 0.5 else _TEMPORAL_R
        envelope = _gauss(rng.uniform(0.0, 1.6, 1), rng.uniform(0.1, 0.3))[0]
        emg = pink_noise(rng, (1, N_SAMPLES), -0.5, SAMPLE_RATE, 0.5, np.float32)[0] * envelope
        x[i] += rng.uniform(10, 30) * field[:, None] * emg[None, :]
    mains = np.sin(2 * np.pi * 50.0 * _TIME[None, :] + rng.uniform(0, 2 * np.pi, (n, 1)))
    x += rng.uniform(0.5, 2.0) * mains[:, None, :]
    return x.astype(np.float32), y


def generate(root: Path, seed: int) -> None:
    """Write ``X.npy``, ``y.npy``, ``groups.npy`` and ``dataset.yaml`` into ``root``."""
    root = Path(root)
    master = np.random.default_rng(seed)
    # Trials per subject vary (sessions cut short, rejected blocks) but total N_TRIALS exactly.
    counts = 80 + master.multinomial(N_TRIALS - 80 * N_SUBJECTS, np.full(N_SUBJECTS, 0.1))
    X = np.empty((N_TRIALS, len(CHANNELS), N_SAMPLES), dtype=np.float32)
    y = np.empty(N_TRIALS, dtype=np.int64)
    groups = np.empty(N_TRIALS, dtype="<U6")
    start = 0
    for k, n in enumerate(counts):
        X[start : start + n], y[start : start + n] = _subject(np.random.default_rng([seed, k]), n)
        groups[start : start + n] = f"sub-{k + 1:02d}"
        start += n
    np.save(root / "X.npy", X)
    np.save(root / "y.npy", y)
    np.save(root / "groups.npy", groups)
    meta = {
        "layout": "arrays",
        "sample_rate": SAMPLE_RATE,
        "channels": list(CHANNELS),
        "units": "uV",
        "classes": list(CLASSES),
    }
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
