"""The one fallback: unreadable units get the given class prior, matched by id whether the ids
come as numbers or as a prediction file's text keys, with one FALLBACK line per unit."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hmsbrain.core.fallback import apply_fallback

CLASSES = ["a", "b", "c"]
PRIOR = np.array([0.5, 0.3, 0.2])


def _frame() -> pd.DataFrame:
    probs = np.full((3, 3), 1 / 3)
    return pd.DataFrame(
        {"eeg_id": [10, 9, 7], "fold": -1, **dict(zip(CLASSES, probs.T, strict=True))}
    )


def test_failed_units_get_the_prior_and_one_line_each(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        out = apply_fallback(
            _frame(), {10: "x: unreadable", 7: "y: too short"}, PRIOR, CLASSES, "r's"
        )
    rows = out.set_index("eeg_id")
    np.testing.assert_allclose(rows.loc[[10, 7], CLASSES], [PRIOR, PRIOR])
    np.testing.assert_allclose(rows.loc[9, CLASSES], 1 / 3)
    assert (rows["fold"] == -1).all()
    assert caplog.messages == [
        "FALLBACK eeg_id 7 gets r's class prior: y: too short",
        "FALLBACK eeg_id 10 gets r's class prior: x: unreadable",
    ]


def test_text_keys_match_numeric_ids_and_nothing_is_logged_without_whose(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        out = apply_fallback(_frame(), {"9": "z.parquet: file not found"}, PRIOR, CLASSES)
    np.testing.assert_allclose(out.set_index("eeg_id").loc[9, CLASSES], PRIOR)
    assert caplog.messages == []
