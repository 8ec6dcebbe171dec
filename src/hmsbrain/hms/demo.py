"""The embedded demo dataset: synthetic EEG in the exact Kaggle layout, made from a seed.

A fresh clone has no competition data, so the main job runs on this. It is built to look like
the task and to be learnable the way the real one is:

* each patient has an amplitude, a posterior background rhythm, an artefact rate and a
  condition that their EEGs tend to share;
* each EEG is one recording, long enough for its sub-windows (offsets every 2 s) and centred in a
  10-minute span whose Kaggle-style spectrogram is computed from the same signal;
* each class carries its clinical signature over the background: seizure = evolving rhythmic
  spike-wave discharges; LPD = periodic sharp discharges over one hemisphere; GPD = the same over
  both; LRDA = rhythmic delta over one hemisphere; GRDA = rhythmic delta over both, frontally
  predominant; other = background with blinks, muscle and electrode artefacts;
* a recording mixes its main pattern with a weaker confusable one, and the experts' votes follow
  that mix, so vote distributions are soft in the same places as the real ones; vote totals follow
  the real per-EEG distribution of ``train_labels.parquet`` (embedded below, so no shared data is
  needed), as does the class prior.

Generation is deterministic: every EEG draws from its own generator seeded by (seed, index).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hmsbrain.data.demos.noise import pink_noise
from hmsbrain.hms.constants import (
    CHAIN_NAMES,
    CLASSES,
    EEG_COLUMNS,
    EEG_WINDOW_SECONDS,
    EXPERT_CONSENSUS,
    PAIRS_PER_CHAIN,
    SAMPLE_RATE,
    SPEC_BINS_PER_CHAIN,
    SPEC_FFT_SIZE,
    SPEC_FIRST_BIN,
    SPEC_SECONDS_PER_ROW,
    SPEC_TIME_COLUMN,
    SPEC_WINDOW_ROWS,
    VOTE_COLUMNS,
)
from hmsbrain.hms.preprocess import bipolar_montage

GENERATOR_VERSION = 2
MARKER = "demo.json"

# Measured on train_labels.parquet: share of EEGs by (median) total votes ...
VOTE_TOTALS = {
    1: 0.1807,
    2: 0.1025,
    3: 0.3324,
    4: 0.0275,
    5: 0.0265,
    6: 0.0069,
    7: 0.0005,
    8: 0.0009,
    9: 0.0002,
    10: 0.0066,
    11: 0.0174,
    12: 0.039,
    13: 0.0622,
    14: 0.0352,
    15: 0.0795,
    16: 0.0272,
    17: 0.017,
    18: 0.0176,
    19: 0.0036,
    20: 0.0112,
    21: 0.0028,
    22: 0.0012,
    23: 0.0006,
    24: 0.0002,
    25: 0.0003,
    26: 0.0001,
    27: 0.0001,
    28: 0.0001,
}
# ... and by majority class (seizure, lpd, gpd, lrda, grda, other).
CLASS_PRIOR = np.array([0.159, 0.151, 0.106, 0.055, 0.108, 0.421])
# Which classes experts confuse each class with (the off-diagonal mass of the real vote matrix).
CONFUSABLE = {
    "seizure": ("lpd", "grda", "other", "gpd"),
    "lpd": ("gpd", "seizure", "lrda", "other"),
    "gpd": ("lpd", "grda", "other", "seizure"),
    "lrda": ("grda", "lpd", "other"),
    "grda": ("lrda", "gpd", "other"),
    "other": ("lrda", "grda", "lpd", "gpd", "seizure"),
}

_SIDE = {  # -1 left, 0 midline, +1 right (EKG excluded)
    "Fp1": -1,
    "F3": -1,
    "C3": -1,
    "P3": -1,
    "F7": -1,
    "T3": -1,
    "T5": -1,
    "O1": -1,
    "Fz": 0,
    "Cz": 0,
    "Pz": 0,
    "Fp2": 1,
    "F4": 1,
    "C4": 1,
    "P4": 1,
    "F8": 1,
    "T4": 1,
    "T6": 1,
    "O2": 1,
}
_FRONTAL = {"Fp1", "Fp2", "F3", "F4", "F7", "F8", "Fz"}
_POSTERIOR = {"O1", "O2", "P3", "P4", "T5", "T6", "Pz"}
_TEMPORAL = {"F7", "F8", "T3", "T4", "T5", "T6"}
_SCALP = [c for c in EEG_COLUMNS if c != "EKG"]
_SIDE_ARR = np.array([_SIDE[c] for c in _SCALP], dtype=np.float64)
_IDX = {c: i for i, c in enumerate(_SCALP)}


@dataclass(frozen=True)
class DemoSize:
    """How much data to make. The defaults train the CPU demo recipe in minutes."""

    n_patients: int = 40
    mean_eegs_per_patient: float = 4.0
    max_sub_windows: int = 6
    n_test: int = 20


# --- Signal building blocks ----------------------------------------------------------------------


def _spatial(side: int, spread: float, frontal: float = 0.0, temporal: float = 0.0) -> np.ndarray:
    """Per-electrode weights of a field: one side (-1/+1) or both (0), with optional emphasis."""
    if side == 0:
        w = np.ones(len(_SCALP))
    else:
        w = np.where(side == _SIDE_ARR, 1.0, np.where(_SIDE_ARR == 0, 0.45, spread))
    for name in _SCALP:
        if name in _FRONTAL:
            w[_IDX[name]] *= 1.0 + frontal
        if name in _TEMPORAL:
            w[_IDX[name]] *= 1.0 + temporal
    return w


def _events(rng: np.random.Generator, n: int, period_s: float, jitter: float) -> np.ndarray:
    """Sample indices of a quasi-periodic train of discharges."""
    times = np.cumsum(
        period_s * (1.0 + jitter * rng.standard_normal(int(n / SAMPLE_RATE / period_s) + 2))
    )
    times = times - rng.uniform(0, period_s)
    idx = (times * SAMPLE_RATE).astype(int)
    return idx[(idx >= 0) & (idx < n)]


def _sharp_wave(duration_s: float, triphasic: bool) -> np.ndarray:
    """A sharp (or triphasic) discharge: a fast spike followed by a slower wave."""
    t = np.arange(int(duration_s * SAMPLE_RATE)) / SAMPLE_RATE
    spike = -np.exp(-(((t - 0.05) / 0.025) ** 2))
    slow = 0.6 * np.exp(-(((t - 0.16) / 0.07) ** 2))
    wave = spike + slow
    if triphasic:
        wave = 0.35 * np.exp(-(((t - 0.0) / 0.02) ** 2)) + wave
    return wave / np.abs(wave).max()


def _place(n: int, idx: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    train = np.zeros(n)
    train[idx] = 1.0
    return np.convolve(train, kernel)[:n]


def _pattern(cls: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """The class's signature, ``(19, n)`` with unit peak amplitude scale."""
    t = np.arange(n) / SAMPLE_RATE
    side = int(rng.choice([-1, 1]))
    slow_mod = 1.0 + 0.25 * np.sin(2 * np.pi * t / rng.uniform(20, 60) + rng.uniform(0, 6.3))
    if cls == "seizure":
        # Evolving rhythm: frequency and amplitude drift over tens of seconds, spike-wave shape.
        f_mid, f_dev = rng.uniform(3.0, 6.0), rng.uniform(1.0, 2.5)
        freq = f_mid + f_dev * np.sin(2 * np.pi * t / rng.uniform(25, 60) + rng.uniform(0, 6.3))
        phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
        wave = np.sin(phase) + 0.5 * np.sin(2 * phase + 0.6) + 0.25 * np.sin(3 * phase + 1.1)
        focal = rng.random() < 0.5
        w = _spatial(side if focal else 0, spread=0.5, temporal=0.4)
        return 2.5 * w[:, None] * (wave * slow_mod)[None, :]
    if cls in ("lpd", "gpd"):
        lateral = cls == "lpd"
        period = rng.uniform(0.8, 2.0) if lateral else rng.uniform(0.5, 1.5)
        kernel = _sharp_wave(0.3, triphasic=not lateral)
        train = _place(n, _events(rng, n, period, 0.06), kernel)
        w = _spatial(side if lateral else 0, spread=0.15, frontal=0.0 if lateral else 0.4)
        return 6.0 * w[:, None] * (train * slow_mod)[None, :]
    if cls in ("lrda", "grda"):
        lateral = cls == "lrda"
        freq = rng.uniform(1.0, 2.8)
        phase = 2 * np.pi * freq * t + 0.3 * np.sin(2 * np.pi * t / rng.uniform(5, 15))
        wave = np.sin(phase)
        w = _spatial(
            side if lateral else 0,
            spread=0.15,
            frontal=0.0 if lateral else 0.8,
            temporal=0.5 if lateral else 0.0,
        )
        return 2.5 * w[:, None] * (wave * slow_mod)[None, :]
    return np.zeros((len(_SCALP), n))  # "other": no pattern beyond background and artefacts


def _artefacts(rng: np.random.Generator, n: int, rate_per_min: float) -> np.ndarray:
    """Eye blinks (frontopolar), muscle bursts (temporal, broadband) and electrode pops."""
    out = np.zeros((len(_SCALP), n))
    minutes = n / SAMPLE_RATE / 60.0
    t_blink = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    blink = np.sin(np.pi * t_blink / 0.4) ** 2
    for start in rng.integers(0, n, rng.poisson(rate_per_min * minutes)):
        seg = blink[: n - start] * rng.uniform(80, 200)
        for name, gain in (
            ("Fp1", 1.0),
            ("Fp2", 1.0),
            ("F7", 0.3),
            ("F8", 0.3),
            ("F3", 0.4),
            ("F4", 0.4),
            ("Fz", 0.4),
        ):
            out[_IDX[name], start : start + len(seg)] += gain * seg
    for start in rng.integers(0, n, rng.poisson(0.5 * rate_per_min * minutes)):
        length = int(rng.uniform(0.5, 3.0) * SAMPLE_RATE)
        burst = rng.standard_normal(min(length, n - start)) * rng.uniform(15, 40)
        for name in ("T3", "T4", "F7", "F8") if rng.random() < 0.5 else ("T3", "F7", "T5"):
            out[_IDX[name], start : start + len(burst)] += burst
    for start in rng.integers(0, n, rng.poisson(0.1 * rate_per_min * minutes)):
        ch = int(rng.integers(0, len(_SCALP)))
        decay = np.exp(-np.arange(min(100, n - start)) / 20.0)
        out[ch, start : start + len(decay)] += rng.choice([-1, 1]) * rng.uniform(100, 300) * decay
    return out


@dataclass(frozen=True)
class _Patient:
    patient_id: int
    amplitude: float
    alpha_hz: float
    beta: float
    artefact_rate: float
    condition: int


def _recording(
    rng: np.random.Generator, patient: _Patient, seconds: float, mix: dict[str, float]
) -> np.ndarray:
    """A referential recording ``(samples, 20)`` in microvolts: background + patterns + EKG."""
    n = round(seconds * SAMPLE_RATE)
    common = pink_noise(rng, (1, n), patient.beta, SAMPLE_RATE, 1.0, np.float32)
    hemi = pink_noise(rng, (2, n), patient.beta, SAMPLE_RATE, 1.0, np.float32)
    local = pink_noise(rng, (len(_SCALP), n), patient.beta, SAMPLE_RATE, 1.0, np.float32)
    side_field = np.where(
        _SIDE_ARR[:, None] < 0, hemi[0], np.where(_SIDE_ARR[:, None] > 0, hemi[1], hemi.mean(0))
    )
    background = 0.55 * common + 0.45 * side_field + 0.5 * local
    t = np.arange(n) / SAMPLE_RATE
    alpha = np.sin(
        2 * np.pi * patient.alpha_hz * t + 0.2 * np.cumsum(rng.standard_normal(n)) / SAMPLE_RATE
    )
    posterior = np.array([1.0 if c in _POSTERIOR else 0.2 for c in _SCALP])
    scalp = background + 0.6 * posterior[:, None] * alpha[None, :]
    for cls, weight in mix.items():
        scalp = scalp + weight * _pattern(cls, rng, n)
    scalp = patient.amplitude * scalp + _artefacts(rng, n, patient.artefact_rate)
    scalp += rng.normal(0, 15, (len(_SCALP), 1))  # electrode DC offsets, removed by the band-pass
    beat = rng.uniform(0.6, 1.0)  # seconds per heartbeat
    qrs = _place(
        n, _events(rng, n, beat, 0.03), -np.diff(np.exp(-(((np.arange(24) - 12) / 3.0) ** 2)))
    )
    ekg = rng.uniform(300, 900) * qrs + 10 * rng.standard_normal(n)
    return np.concatenate([scalp, ekg[None, :]]).T.astype(np.float32)


def kaggle_spectrogram(recording: np.ndarray) -> np.ndarray:
    """Kaggle-style spectrogram ``(rows, 400)`` of a recording: one row per 2 s block.

    Each chain's value is the mean over its four bipolar signals of the Hann-windowed amplitude
    spectrum at the Kaggle frequencies (FFT bins 3..102 of 1024 points), scaled to the real files'
    range and rounded to 0.01 as they are.
    """
    block = SPEC_SECONDS_PER_ROW * SAMPLE_RATE
    montage = bipolar_montage(recording)  # (16, samples)
    rows = montage.shape[1] // block
    blocks = montage[:, : rows * block].reshape(16, rows, block) * np.hanning(block)
    amp = np.abs(np.fft.rfft(blocks, n=SPEC_FFT_SIZE, axis=-1))
    amp = amp[..., SPEC_FIRST_BIN : SPEC_FIRST_BIN + SPEC_BINS_PER_CHAIN] / 100.0
    chains = amp.reshape(len(CHAIN_NAMES), PAIRS_PER_CHAIN, rows, SPEC_BINS_PER_CHAIN).mean(1)
    return np.round(chains.transpose(1, 0, 2).reshape(rows, -1), 2).astype(np.float32)


def _write_parquet(
    path: Path, data: np.ndarray, columns: list[str], time: np.ndarray | None = None
) -> None:
    """float32 columns (plus an optional leading ``time``), as in the competition files."""
    arrays = [pa.array(np.ascontiguousarray(data[:, i])) for i in range(data.shape[1])]
    if time is not None:
        arrays, columns = [pa.array(time), *arrays], [SPEC_TIME_COLUMN, *columns]
    pq.write_table(pa.Table.from_arrays(arrays, names=columns), path)


def _spec_columns() -> list[str]:
    freqs = (
        np.arange(SPEC_FIRST_BIN, SPEC_FIRST_BIN + SPEC_BINS_PER_CHAIN)
        * SAMPLE_RATE
        / SPEC_FFT_SIZE
    )
    return [f"{chain}_{f:.2f}" for chain in CHAIN_NAMES for f in freqs]


def _mix(rng: np.random.Generator, main: int) -> tuple[dict[str, float], np.ndarray]:
    """Pattern strengths in the signal and the experts' vote probabilities that follow them."""
    main_cls = CLASSES[main]
    second_cls = str(rng.choice(CONFUSABLE[main_cls]))
    share = float(rng.beta(1.2, 4.0))  # weight of the confusable pattern, mostly small
    probs = np.full(len(CLASSES), 0.01)
    probs[main] += 1.0 - share
    probs[CLASSES.index(second_cls)] += share
    probs /= probs.sum()
    # A weak main pattern reads as "other" to some experts; the signal shows it weaker too.
    mix = {main_cls: (1.0 - share) * rng.uniform(0.8, 1.2), second_cls: share}
    return mix, probs


def _votes(rng: np.random.Generator, probs: np.ndarray, total: int) -> np.ndarray:
    sub_probs = rng.dirichlet(probs * 60.0)  # each sub-window's panel differs a little
    return rng.multinomial(total, sub_probs)


def generate(root: str | Path, seed: int, size: DemoSize = DemoSize()) -> Path:
    """Write the demo dataset into ``root`` (which must not exist yet) and return it."""
    root = Path(root)
    master = np.random.default_rng(seed)
    totals = np.array(list(VOTE_TOTALS)), np.array(list(VOTE_TOTALS.values()))
    patients = [
        _Patient(
            patient_id=int(pid),
            amplitude=float(master.lognormal(np.log(1.0), 0.3)) * 20.0,
            alpha_hz=float(master.uniform(7.5, 11.5)),
            beta=float(master.uniform(0.9, 1.6)),
            artefact_rate=float(master.uniform(1.0, 8.0)),
            condition=int(master.choice(len(CLASSES), p=CLASS_PRIOR)),
        )
        for pid in master.choice(
            np.arange(10_000, 65_000), size.n_patients + size.n_test, replace=False
        )
    ]
    eeg_ids = 10**6 + master.choice(4 * 10**9, 10_000, replace=False)
    spec_ids = 10**5 + master.choice(2 * 10**9, 10_000, replace=False)
    columns = _spec_columns()
    for split in ("train", "test"):
        (root / f"{split}_eegs").mkdir(parents=True)
        (root / f"{split}_spectrograms").mkdir(parents=True)

    train_rows, test_rows, solution = [], [], []
    n_eegs = master.poisson(size.mean_eegs_per_patient - 1, size.n_patients) + 1
    train_patients = zip(patients[: size.n_patients], n_eegs, strict=True)
    plan = [(p, "train") for p, k in train_patients for _ in range(k)]
    plan += [(p, "test") for p in patients[size.n_patients :]]
    for index, (patient, split) in enumerate(plan):
        rng = np.random.default_rng([seed, index])  # per-EEG stream: order-independent
        main = (
            patient.condition
            if rng.random() < 0.6
            else int(rng.choice(len(CLASSES), p=CLASS_PRIOR))
        )
        mix, probs = _mix(rng, main)
        n_sub = int(rng.integers(1, size.max_sub_windows + 1))
        offsets = np.sort(
            rng.choice(np.arange(0, 4 * size.max_sub_windows, 2), n_sub, replace=False)
        )
        if split == "test":  # real test EEGs are exactly one 50 s window, spectrograms 10 min
            offsets = offsets[:1] * 0
        eeg_seconds = EEG_WINDOW_SECONDS + int(offsets.max())
        # The EEG sits at the centre of a 10-minute span; offsets then coincide for both files,
        # as they do in the real train.csv.
        lead = (SPEC_WINDOW_ROWS * SPEC_SECONDS_PER_ROW - EEG_WINDOW_SECONDS) // 2
        span = 2 * lead + eeg_seconds
        recording = _recording(rng, patient, span, mix)
        eeg = recording[lead * SAMPLE_RATE : (lead + eeg_seconds) * SAMPLE_RATE]
        eeg_id, spec_id = int(eeg_ids[index]), int(spec_ids[index])
        _write_parquet(root / f"{split}_eegs" / f"{eeg_id}.parquet", eeg, list(EEG_COLUMNS))
        spec = kaggle_spectrogram(recording)
        time = np.arange(len(spec), dtype=np.int64) * SPEC_SECONDS_PER_ROW + 1  # row centres
        _write_parquet(root / f"{split}_spectrograms" / f"{spec_id}.parquet", spec, columns, time)
        if split == "test":
            test_rows.append(
                {"spectrogram_id": spec_id, "eeg_id": eeg_id, "patient_id": patient.patient_id}
            )
            solution.append({"eeg_id": eeg_id, **dict(zip(VOTE_COLUMNS, probs, strict=False))})
            continue
        total = int(rng.choice(totals[0], p=totals[1] / totals[1].sum()))
        for sub, offset in enumerate(offsets):
            votes = _votes(rng, probs, total)
            train_rows.append(
                {
                    "eeg_id": eeg_id,
                    "eeg_sub_id": sub,
                    "eeg_label_offset_seconds": float(offset),
                    "spectrogram_id": spec_id,
                    "spectrogram_sub_id": sub,
                    "spectrogram_label_offset_seconds": float(offset),
                    "label_id": int(master.integers(10**6, 4 * 10**9)),
                    "patient_id": patient.patient_id,
                    "expert_consensus": EXPERT_CONSENSUS[int(np.argmax(votes))],
                    **dict(zip(VOTE_COLUMNS, (int(v) for v in votes), strict=False)),
                }
            )
    pd.DataFrame(train_rows).to_csv(root / "train.csv", index=False)
    pd.DataFrame(test_rows).to_csv(root / "test.csv", index=False)
    sample = pd.DataFrame({"eeg_id": [r["eeg_id"] for r in test_rows]})
    for col in VOTE_COLUMNS:
        sample[col] = 1.0 / len(VOTE_COLUMNS)
    sample.to_csv(root / "sample_submission.csv", index=False)
    # Not part of the Kaggle layout: the hidden test targets, so the demo can be scored end to end.
    pd.DataFrame(solution).to_csv(root / "test_solution.csv", index=False)
    return root


def ensure_demo(root: str | Path, seed: int, size: DemoSize = DemoSize()) -> Path:
    """The demo dataset at ``root``, generated on first use (or when its seed/version changed).

    Generation writes into a sibling temporary folder that is renamed into place at the end, so
    an interrupted generation never leaves a half-written dataset behind to be trained on.
    """
    root = Path(root)
    wanted = {"generator_version": GENERATOR_VERSION, "seed": seed, **size.__dict__}
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return root
    if root.is_dir() and any(root.iterdir()) and not marker.is_file():
        # Never delete a folder the generator did not write (a mistyped data.demo_dir).
        raise FileExistsError(f"{root}: exists and is not a demo dataset; choose another demo_dir")
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    generate(tmp, seed, size)
    (tmp / MARKER).write_text(json.dumps(wanted, indent=1))
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root
