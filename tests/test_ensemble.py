"""Blending from OOF files: weights recover a known optimum; the log blend is tried too."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hmsbrain.constants import VOTE_COLUMNS
from hmsbrain.ensemble import RunPredictions, blend, ensemble, fit_weights
from hmsbrain.metrics import kl_score


def _frame(ids, probs, fold=0) -> pd.DataFrame:
    frame = pd.DataFrame(probs, columns=list(VOTE_COLUMNS))
    frame.insert(0, "eeg_id", ids)
    frame.insert(1, "fold", fold)
    return frame


def test_weights_recover_a_known_optimum() -> None:
    """If the target is exactly 0.7 * A + 0.3 * B, the fitted weights are (0.7, 0.3, 0)."""
    rng = np.random.default_rng(0)
    a, b, c = (rng.dirichlet(np.ones(6), 400) for _ in range(3))
    target = 0.7 * a + 0.3 * b
    w = fit_weights([a, b, c], target, "linear")
    np.testing.assert_allclose(w, [0.7, 0.3, 0.0], atol=0.02)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)


def test_log_blend_is_a_normalised_geometric_mean() -> None:
    a = np.array([[0.5, 0.5, 0, 0, 0, 0.0]]) + 1e-9
    b = np.array([[0.2, 0.8, 0, 0, 0, 0.0]]) + 1e-9
    out = blend([a, b], np.array([0.5, 0.5]), "log")
    expected = np.sqrt(a * b)
    np.testing.assert_allclose(out, expected / expected.sum(), atol=1e-6)


def test_ensemble_blends_the_common_eegs_and_never_loses_to_the_best_run() -> None:
    rng = np.random.default_rng(1)
    ids = np.arange(100, 160)
    votes = rng.multinomial(5, [0.3, 0.2, 0.1, 0.1, 0.1, 0.2], len(ids))
    rows = pd.DataFrame({"eeg_id": ids, **dict(zip(VOTE_COLUMNS, votes.T, strict=True))})
    truth = votes / votes.sum(axis=1, keepdims=True)
    noisy = [0.6 * truth + 0.4 * rng.dirichlet(np.ones(6), len(ids)) for _ in range(2)]
    test_a = _frame([1, 2], np.full((2, 6), 1 / 6), -1)
    test_b = _frame([1, 2], rng.dirichlet(np.ones(6), 2), -1)
    runs = [
        RunPredictions("a", _frame(ids, noisy[0]), test_a),
        # run b misses 10 EEGs: the blend must use the 50 both cover, and say so
        RunPredictions("b", _frame(ids[10:], noisy[1][10:]), test_b),
    ]
    result = ensemble(runs, rows)
    assert any("different OOF EEGs" in n for n in result.notes)
    assert result.table.iloc[-1]["eegs"] == 50
    assert result.cv <= result.best_single + 1e-9
    assert set(result.submission["eeg_id"]) == {1, 2}
    np.testing.assert_allclose(result.submission[list(VOTE_COLUMNS)].sum(axis=1), 1.0)
    singles = [kl_score(truth[10:], n[10:]) for n in noisy]
    assert result.best_single == pytest.approx(min(singles))
