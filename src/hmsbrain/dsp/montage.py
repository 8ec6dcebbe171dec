"""Montages for any channel set: the clinical double banana, the channels as recorded, or a
common average reference; with the channel groups that make the spectrogram image's tiles and
the left-right mirror that hemisphere-swap augmentation needs.

A :class:`Montage` maps ``(..., channels, samples)`` signals in the data's channel order to
``(..., montage channels, samples)``. ``groups`` list the montage channels behind each image
tile; ``mirror`` and ``group_mirror`` are the permutations that exchange the hemispheres, or None
where the channel names do not say which channel mirrors which (then no swap is offered).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hmsbrain.config import ConfigError

MONTAGES = ("auto", "double_banana", "identity", "average")

# Old and new 10-20 names of the same four temporal electrodes.
ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
# The double banana's four chains, front to back (new names), in the order of the Kaggle
# spectrogram files: left lateral, right lateral, left parasagittal, right parasagittal.
CHAINS = {
    "LL": ("Fp1", "F7", "T7", "P7", "O1"),
    "RL": ("Fp2", "F8", "T8", "P8", "O2"),
    "LP": ("Fp1", "F3", "C3", "P3", "O1"),
    "RP": ("Fp2", "F4", "C4", "P4", "O2"),
}
# The 19 electrodes of a clinical 10-20 cap: a recording with these (and few others) is read
# in the double banana when the montage is "auto".
CLINICAL_1020 = (
    "Fp1",
    "Fp2",
    "F7",
    "F3",
    "Fz",
    "F4",
    "F8",
    "T7",
    "C3",
    "Cz",
    "C4",
    "T8",
    "P7",
    "P3",
    "Pz",
    "P4",
    "P8",
    "O1",
    "O2",
)
# Scalp regions of the 10-10 name prefixes, front to back.
REGIONS = ("frontal", "central", "temporal", "parietal", "occipital")
_REGION_OF = {
    "Fp": 0,
    "AF": 0,
    "F": 0,
    "FC": 1,
    "C": 1,
    "FT": 2,
    "T": 2,
    "TP": 2,
    "CP": 3,
    "P": 3,
    "PO": 4,
    "O": 4,
    "I": 4,
}
_NAME = re.compile(r"^([A-Za-z]+?)(\d+|z|Z)$")
# Name prefixes of the 10-10 system (upper case), with the ear (A), mastoid (M) and nasion (N)
# positions: a name with another prefix (ch1, EKG1, X3) is not an electrode.
_PREFIXES = {p.upper() for p in _REGION_OF} | {"A", "M", "N"}
# How EDF headers decorate an electrode: a signal type before it ("EEG Fp1"), a reference after
# it ("Fp1-REF", "FP1-A1", "Fp1-LE"), dots padding it to a fixed width (EEGMMIDB's "C3..").
_TYPE = re.compile(r"^EEG\s+", re.IGNORECASE)
_REFERENCE = re.compile(r"[-_ ](REF|LE|RE|AVG|AV|CAR|A1|A2|A1A2|M1|M2|M1M2)$", re.IGNORECASE)


@dataclass(frozen=True)
class Montage:
    kind: str
    names: tuple[str, ...]  # the montage's channels, e.g. "Fp1-F7"
    anodes: np.ndarray  # index into the data's channels, per montage channel
    cathodes: np.ndarray | None  # bipolar: the subtracted channel; None: referential
    average: bool  # subtract the mean over all channels (common average reference)
    groups: tuple[tuple[int, ...], ...]  # montage channels behind each image tile
    group_names: tuple[str, ...]
    mirror: np.ndarray | None  # montage channel permutation exchanging the hemispheres
    group_mirror: np.ndarray | None

    def apply(self, signals: np.ndarray) -> np.ndarray:
        """``(..., channels, samples)`` in the data's order -> ``(..., montage, samples)``."""
        signals = np.asarray(signals, dtype=np.float32)
        if self.average:
            signals = signals - signals.mean(axis=-2, keepdims=True)
        out = signals[..., self.anodes, :]
        if self.cathodes is not None:
            out = out - signals[..., self.cathodes, :]
        return out


def canonical(name: str) -> str:
    """A channel name as the 10-20 tables spell it, whatever the file's spelling: ``FP1``,
    ``eeg fp1``, ``EEG FP1-REF``, ``Fp1-LE``, ``FP1-A1`` -> ``Fp1``; ``Fc5.`` -> ``FC5``;
    ``Cz..`` -> ``Cz``; ``T3`` -> ``T7`` (the old temporal names). A name that is no 10-10
    electrode (``EKG``, ``ch1``, ``Status``) comes back as it is."""
    core = _REFERENCE.sub("", _TYPE.sub("", name.strip()).rstrip(". "))
    match = _NAME.match(core)
    if not match or match.group(1).upper() not in _PREFIXES:
        return name
    prefix, number = match.groups()
    prefix = "Fp" if prefix.upper() == "FP" else prefix.upper()
    spelled = prefix + ("z" if number in ("z", "Z") else number)
    return ALIASES.get(spelled, spelled)


def _parts(name: str) -> tuple[str, str] | None:
    """(prefix, number or z) of the electrode ``name`` spells; None for other channels."""
    match = _NAME.match(canonical(name))
    if not match or match.group(1).upper() not in _PREFIXES:
        return None
    prefix, number = match.groups()
    return prefix, number


def is_electrode(name: str) -> bool:
    """Whether ``name`` spells a 10-10 electrode (or an ear, mastoid or nasion position)."""
    return _parts(name) is not None


def read_as_1020(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` with every electrode spelled as :func:`canonical` spells it and every other name
    as it is. Two names of one electrode (``EEG Fp1-REF`` beside ``EEG Fp1-LE``) both keep their
    own spelling: which one is Fp1 is the user's choice (``channel_map`` in dataset.yaml)."""
    read = [canonical(n) if is_electrode(n) else n for n in names]
    taken = {r for r in read if read.count(r) > 1}
    return tuple(n if r in taken else r for n, r in zip(names, read, strict=True))


def mirror_name(name: str) -> str | None:
    """The opposite hemisphere's electrode (odd numbers are left, even right, z midline)."""
    parts = _parts(name)
    if parts is None:
        return None
    prefix, number = parts
    if number.lower() == "z":
        return canonical(name)
    n = int(number)
    return f"{prefix}{n + 1 if n % 2 else n - 1}"


def _permutation(names: Sequence[str | None], index: dict[str, int]) -> np.ndarray | None:
    if any(n is None or n not in index for n in names):
        return None
    return np.array([index[n] for n in names])  # type: ignore[index]


def double_banana(channels: tuple[str, ...]) -> Montage:
    """The 16 bipolar derivations of the four chains, in the data's channel names."""
    index = {canonical(c): i for i, c in enumerate(channels)}
    missing = sorted({e for chain in CHAINS.values() for e in chain} - set(index))
    if missing:
        raise ConfigError(
            f"preprocess.montage=double_banana needs electrodes {missing}, missing from "
            f"{list(channels)}; use identity or average"
        )
    pairs = [(chain[i], chain[i + 1]) for chain in CHAINS.values() for i in range(4)]
    names = tuple(f"{a}-{b}" for a, b in pairs)
    position = {name: i for i, name in enumerate(names)}
    mirrored = [f"{mirror_name(a)}-{mirror_name(b)}" for a, b in pairs]
    chains = list(CHAINS)
    return Montage(
        kind="double_banana",
        names=names,
        anodes=np.array([index[a] for a, _ in pairs]),
        cathodes=np.array([index[b] for _, b in pairs]),
        average=False,
        groups=tuple(tuple(range(4 * k, 4 * k + 4)) for k in range(len(CHAINS))),
        group_names=tuple(chains),
        mirror=_permutation(mirrored, position),
        group_mirror=np.array([chains.index(c) for c in ("RL", "LL", "RP", "LP")]),
    )


def _region(name: str) -> tuple[int, str] | None:
    """(region rank, side) of a 10-10 name: side l, r or z; None for other names."""
    parts = _parts(name)
    if parts is None:
        return None
    prefix, number = parts
    if prefix not in _REGION_OF:
        return None
    side = "z" if number.lower() == "z" else ("l" if int(number) % 2 else "r")
    return _REGION_OF[prefix], side


def region_groups(
    names: tuple[str, ...], max_groups: int
) -> tuple[tuple[tuple[int, ...], ...], tuple[str, ...]]:
    """Image tiles for referential channels: every channel its own tile when they fit, else by
    scalp region and side, else by region, else consecutive runs of channels."""
    n = len(names)
    if n <= max_groups:
        return tuple((i,) for i in range(n)), tuple(names)
    regions = [_region(c) for c in names]
    if all(r is not None for r in regions):
        for by_side in (True, False):
            keys = sorted({(r[0], r[1] if by_side else "") for r in regions})  # type: ignore[index]
            if len(keys) <= max_groups:
                groups = tuple(
                    tuple(i for i, r in enumerate(regions) if (r[0], r[1] if by_side else "") == k)  # type: ignore[index]
                    for k in keys
                )
                labels = tuple(REGIONS[k[0]] + (f"-{k[1]}" if k[1] else "") for k in keys)
                return groups, labels
    chunks = np.array_split(np.arange(n), max_groups)
    return tuple(tuple(int(i) for i in c) for c in chunks), tuple(
        f"{names[c[0]]}..{names[c[-1]]}" for c in chunks
    )


def referential(channels: tuple[str, ...], average: bool, max_groups: int) -> Montage:
    """The channels as recorded (``identity``) or against their mean (``average``)."""
    names = tuple(channels)
    index = {canonical(c): i for i, c in enumerate(names)}
    mirror = _permutation([mirror_name(c) for c in names], index)
    groups, labels = region_groups(names, max_groups)
    group_mirror = None
    if mirror is not None:
        as_sets = [frozenset(g) for g in groups]
        mirrored = [frozenset(int(mirror[i]) for i in g) for g in groups]
        if all(m in as_sets for m in mirrored):
            group_mirror = np.array([as_sets.index(m) for m in mirrored])
        else:
            mirror = None  # tiles that mix hemispheres cannot be swapped consistently
    return Montage(
        kind="average" if average else "identity",
        names=names,
        anodes=np.arange(len(names)),
        cathodes=None,
        average=average,
        groups=groups,
        group_names=labels,
        mirror=mirror,
        group_mirror=group_mirror,
    )


def is_clinical_1020(channels: tuple[str, ...]) -> bool:
    """A clinical 10-20 recording: all 19 cap electrodes, and at most a few other channels
    (EKG, EMG); a dense research cap has them too but keeps its own channels."""
    found = {canonical(c) for c in channels}
    return set(CLINICAL_1020) <= found and len(channels) <= len(CLINICAL_1020) + 4


def choose_montage(kind: str, channels: tuple[str, ...], max_groups: int = 8) -> Montage:
    """The montage ``kind`` (one of :data:`MONTAGES`) for a dataset's channels."""
    if kind not in MONTAGES:
        raise ConfigError(f"preprocess.montage={kind!r} is not one of {list(MONTAGES)}")
    if kind == "auto":
        kind = "double_banana" if is_clinical_1020(channels) else "identity"
    if kind == "double_banana":
        return double_banana(channels)
    return referential(channels, kind == "average", max_groups)
