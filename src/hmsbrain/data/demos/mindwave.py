"""Embedded demo: a single-channel consumer headset (NeuroSky MindWave) in the folders layout.

What is written (``layout: folders``):

* ``<class>/<subject>_<nnnn>.txt``: one 1 s epoch per file, 512 lines, one value per line in
  microvolts with two decimals, no header; ``<subject>`` is ``s01`` ... and ``<nnnn>`` numbers
  the subject's epochs of that class from 0000;
* ``dataset.yaml``: layout, sample rate (512), the one channel (FP1), units, the 19 class names
  (``digit_0`` ... ``digit_9``, ``letter_a`` ... ``letter_h``, ``blank``) and the pattern that
  takes the subject out of a file name (``^(s\\d+)_``).

Signal model (microvolts), and why:

* each epoch follows a stimulus at its start (as in the MindBigData recordings this imitates:
  digits shown to a subject wearing a MindWave); every class but ``blank`` evokes a wave packet
  with its own combination of dominant frequency (3, 6 or 10 Hz: one per band of a band-power
  model), latency (0.2, 0.4 or 0.6 s) and polarity, so six classes share each spectrum and
  differ only in when the packet comes and which way it swings; ``blank`` (no stimulus) has none;
* the packet is 20-32 uV at its peak depending on the subject, its size varies per trial, its
  latency is jittered per trial by ~25 ms and shifted per subject by ~20 ms;
* background: 1/f^beta activity at the subject's level (12-25 uV), scaled per epoch (power that
  says nothing about the class); a frontopolar electrode also sees blinks (in a quarter of the
  epochs, random timing, 80-250 uV), forehead muscle bursts and mains hum, in every class alike;
* class sizes decay geometrically from ``digit_0`` to ``blank`` (the largest ~5x the smallest).

So band power can tell at best which of the three frequency groups (or ``blank``) an epoch
belongs to, while the time course (latency and polarity) that a convolutional network, or a linear
model of the downsampled epoch, can read separates the classes within a group.

Generation is deterministic: each subject draws from its own generator seeded by (seed, subject).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from hmsbrain.data.demos.noise import pink_noise

GENERATOR_VERSION = 2

SAMPLE_RATE = 512
N_SAMPLES = 512  # 1 s epochs
CHANNEL = "FP1"
N_SUBJECTS = 8
CLASSES = (
    *(f"digit_{d}" for d in range(10)),
    *(f"letter_{c}" for c in "abcdefgh"),
    "blank",
)

LARGEST_CLASS = 160
SMALLEST_CLASS = 32
GROUP_PATTERN = r"^(s\d+)_"

_FREQS_HZ = (3.0, 6.0, 10.0)
_LATENCIES_S = (0.2, 0.4, 0.6)
# The evoked packet of each class but blank: (frequency, latency, polarity). Neighbouring classes
# get different frequencies, so class size says nothing about the spectrum.
_PACKETS = [(f, lat, pol) for lat in _LATENCIES_S for pol in (1.0, -1.0) for f in _FREQS_HZ]
_TIME = np.arange(N_SAMPLES) / SAMPLE_RATE


def _packet(freq: float, latency: np.ndarray) -> np.ndarray:
    """Wave packets ``(len(latency), samples)`` of unit peak: a cosine under a Gaussian envelope
    about 1.5 cycles wide, so the packet's spectrum centres on ``freq``."""
    width = 0.75 / freq
    dt = _TIME[None, :] - latency[:, None]
    return np.cos(2 * np.pi * freq * dt) * np.exp(-0.5 * (dt / width) ** 2)


def _class_sizes() -> np.ndarray:
    """Epochs per class, decaying geometrically from LARGEST_CLASS to SMALLEST_CLASS."""
    k = np.arange(len(CLASSES))
    ratio = (SMALLEST_CLASS / LARGEST_CLASS) ** (1 / (len(CLASSES) - 1))
    return np.round(LARGEST_CLASS * ratio**k).astype(int)


def _subject(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Epochs ``(len(labels), samples)`` in uV of one subject, ``labels`` indexing CLASSES."""
    n = len(labels)
    level = rng.uniform(12.0, 25.0)
    x = (
        pink_noise(rng, (n, N_SAMPLES), rng.uniform(1.0, 1.6), SAMPLE_RATE)
        * level
        * rng.lognormal(0, 0.3, (n, 1))
    )

    evoked_uv = rng.uniform(20.0, 32.0)
    shift = rng.normal(0.0, 0.02)  # the subject's own latency offset, seconds
    size = evoked_uv * rng.lognormal(0.0, 0.3, n)
    latency_jitter = rng.normal(0.0, 0.025, n)
    for i, label in enumerate(labels):
        if label < len(_PACKETS):
            freq, latency, polarity = _PACKETS[label]
            wave = _packet(freq, np.array([latency + shift + latency_jitter[i]]))[0]
            x[i] += polarity * size[i] * wave

    for i in np.flatnonzero(rng.random(n) < 0.25):  # blinks
        centre, width = rng.uniform(-0.1, 1.1), rng.uniform(0.06, 0.1)
        x[i] += rng.uniform(80, 250) * np.exp(-0.5 * ((_TIME - centre) / width) ** 2)
    for i in np.flatnonzero(rng.random(n) < 0.1):  # frowning: forehead muscle
        envelope = np.exp(-0.5 * ((_TIME - rng.uniform(0, 1)) / rng.uniform(0.1, 0.3)) ** 2)
        x[i] += (
            rng.uniform(10, 30) * envelope * pink_noise(rng, (1, N_SAMPLES), -0.5, SAMPLE_RATE)[0]
        )
    mains = np.sin(2 * np.pi * 50.0 * _TIME[None, :] + rng.uniform(0, 2 * np.pi, (n, 1)))
    return x + rng.uniform(1.0, 5.0) * mains


def generate(root: Path, seed: int) -> None:
    """Write one folder of epoch files per class and ``dataset.yaml`` into ``root``."""
    root = Path(root)
    master = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), _class_sizes())
    owner = master.integers(0, N_SUBJECTS, len(labels))  # which subject each epoch comes from
    for name in CLASSES:
        (root / name).mkdir()
    for k in range(N_SUBJECTS):
        own = labels[owner == k]
        epochs = _subject(np.random.default_rng([seed, k]), own)
        counters = dict.fromkeys(range(len(CLASSES)), 0)
        for label, epoch in zip(own, epochs, strict=True):
            path = root / CLASSES[label] / f"s{k + 1:02d}_{counters[label]:04d}.txt"
            path.write_text("".join(f"{v:.2f}\n" for v in epoch))
            counters[label] += 1
    meta = {
        "layout": "folders",
        "sample_rate": SAMPLE_RATE,
        "channels": [CHANNEL],
        "units": "uV",
        "classes": list(CLASSES),
        "group_pattern": GROUP_PATTERN,
    }
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
