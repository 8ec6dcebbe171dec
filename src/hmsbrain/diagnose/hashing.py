"""Windows that share signal, found by hashing: identical epochs, and epochs cut from
overlapping stretches of one recording (a sliding window, a copied file, a trial saved twice).

Each time row (all channels at one sample, rounded to a step far below the signal's size) gets
a 64-bit hash; a block of ``L`` consecutive rows hashes to the sum of its rows' hashes, which a
cumulative sum gives at every start position at once. Every window's blocks at ``0, L, 2L...``
are indexed; every window's blocks at *every* start are looked up in that index. Two windows
that overlap by at least ``2L - 1`` samples, at any shift, contain one indexed block of the other
at some start, so they match; windows that share nothing match only by a 64-bit collision.
Blocks in which the signal barely changes (flat, clipped or missing stretches) are never used:
every flat stretch would match every other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# splitmix64's finaliser: mixes a row's linear code so that sums of rows do not cancel.
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
_NAN_CODE = np.int64(-(2**62))  # the rounded value a missing sample stands for


@dataclass
class SharedContent:
    """Pairs of hashed windows (indices into ``units``) that share signal."""

    units: np.ndarray  # the unit id of each hashed window
    pairs: np.ndarray  # (m, 2) int, i < j: windows that share at least one block
    identical: np.ndarray  # (m,) bool: the two windows are identical throughout
    block: int  # samples per block

    def clusters(self) -> np.ndarray:
        """A cluster number per hashed window: windows linked by shared signal share one."""
        parent = np.arange(len(self.units))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, j in self.pairs:
            parent[root(int(i))] = root(int(j))
        return np.array([root(i) for i in range(len(self.units))])


def _row_hashes(signals: np.ndarray, step: float, multipliers: np.ndarray) -> np.ndarray:
    """``(n, channels, samples)`` -> ``(n, samples)`` uint64, one hash per time row."""
    scaled = np.asarray(signals, np.float64) / step
    codes = np.where(np.isfinite(scaled), np.round(scaled), 0).astype(np.int64)
    codes[~np.isfinite(scaled)] = _NAN_CODE
    rows = np.swapaxes(codes.view(np.uint64), 1, 2) @ multipliers  # wraps modulo 2**64
    rows ^= rows >> np.uint64(30)
    rows *= _MIX[0]
    rows ^= rows >> np.uint64(27)
    rows *= _MIX[1]
    rows ^= rows >> np.uint64(31)
    return rows


def _blocks(rows: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Hash of the block starting at every sample, and whether the signal varies enough in it
    (at least half its rows differ from the row before) to identify it."""
    zero = np.zeros((len(rows), 1), np.uint64)
    total = np.concatenate([zero, np.cumsum(rows, axis=1, dtype=np.uint64)], axis=1)
    hashes = total[:, block:] - total[:, :-block]
    changes = np.concatenate(
        [zero.astype(np.int64), np.cumsum(rows[:, 1:] != rows[:, :-1], axis=1)], axis=1
    )
    varied = changes[:, block - 1 :] - changes[:, : changes.shape[1] - block + 1]
    return hashes, varied >= (block - 1) / 2


def shared_content(
    chunks: Iterable[np.ndarray], units: np.ndarray, block: int, step: float, seed: int = 0
) -> SharedContent:
    """The pairs of windows sharing signal among ``chunks`` (consecutive ``(n, channels,
    samples)`` arrays of one length, whose windows belong to ``units`` in order), hashing
    ``block``-sample blocks of values rounded to ``step``."""
    rng = np.random.default_rng(seed)
    multipliers: np.ndarray | None = None
    hashes, varied, whole = [], [], []
    for signals in chunks:
        if multipliers is None:
            multipliers = rng.integers(0, 2**63, signals.shape[1], dtype=np.uint64) * 2 + 1
        rows = _row_hashes(signals, step, multipliers)
        h, v = _blocks(rows, block)
        hashes.append(h)
        varied.append(v)
        whole.append(rows.sum(axis=1, dtype=np.uint64))
    all_hashes, all_varied = np.concatenate(hashes), np.concatenate(varied)
    aligned = np.arange(0, all_hashes.shape[1], block)
    index_hash = all_hashes[:, aligned][all_varied[:, aligned]]
    index_window = np.nonzero(all_varied[:, aligned])[0]
    order = np.argsort(index_hash, kind="stable")
    index_hash, index_window = index_hash[order], index_window[order]

    window, start = np.nonzero(all_varied & np.isin(all_hashes, index_hash))
    found = np.unique(np.stack([window, all_hashes[window, start].view(np.int64)], axis=1), axis=0)
    found_hash = found[:, 1].view(np.uint64)
    lo = np.searchsorted(index_hash, found_hash, "left")
    hi = np.searchsorted(index_hash, found_hash, "right")
    # Every (window, indexed window) combination behind each matched hash (usually one).
    first = np.repeat(found[:, 0], hi - lo)
    offsets = np.arange((hi - lo).sum()) - np.repeat(np.cumsum(hi - lo) - (hi - lo), hi - lo)
    second = index_window[np.repeat(lo, hi - lo) + offsets]
    pairs = np.unique(np.sort(np.stack([first, second], axis=1), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]].reshape(-1, 2)
    whole_hash = np.concatenate(whole)
    identical = whole_hash[pairs[:, 0]] == whole_hash[pairs[:, 1]]
    return SharedContent(np.asarray(units), pairs, identical, block)
