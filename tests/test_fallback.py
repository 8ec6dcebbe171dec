"""The one fallback: unreadable units get the given class prior, matched by id whether the ids
come as numbers or as a prediction file's text keys, with one FALLBACK line per unit, and one
SUMMARY line that counts them by reason and tells a bug from bad input."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hmsbrain.core.fallback import (
    FallbackSummary,
    apply_fallback,
    is_unexpected,
    reason_label,
    unexpected_reason,
)

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


def test_a_reason_counts_as_its_problem_and_a_bug_as_unexpected() -> None:
    reasons = {
        "/k/test_eegs/1.parquet: file not found": "file not found",
        "/k/test_eegs/2.parquet: not a parquet file (magic bytes not found)": "not a parquet file",
        "/k/test_eegs/3.parquet: too short: the window at offset 0 s needs ...": "too short",
        "/k/test_eegs/4.parquet: missing columns (1 expected: ['Fp1']; found ...)": (
            "missing columns"
        ),
        "no runtime could run": "no runtime could run",
    }
    for reason, label in reasons.items():
        assert reason_label(reason) == label
        assert not is_unexpected(reason)
    bug = unexpected_reason("/k/test_eegs/5.parquet", TypeError("'NoneType' is not iterable"))
    assert bug == "/k/test_eegs/5.parquet: unexpected TypeError: 'NoneType' is not iterable"
    assert reason_label(bug) == "unexpected TypeError" and is_unexpected(bug)


def test_the_summary_gives_the_fallbacks_by_reason_and_the_runs_left_out() -> None:
    fallback = {
        1: "a.parquet: file not found",
        2: "b.parquet: file not found",
        3: unexpected_reason("c.parquet", IndexError("index 9 is out of bounds")),
    }
    summary = FallbackSummary(4, fallback, {"wavenet": "runtime auto: ..."})
    assert summary.share == 0.75 and summary.unexpected == 1
    assert summary.line("test EEGs") == (
        "SUMMARY: 3 of 4 test EEGs (75%) got the class prior: 2 file not found, 1 unexpected "
        "IndexError; runs left out of the blend (no runtime could run them): wavenet"
    )
    assert FallbackSummary(2).line() == (
        "SUMMARY: 0 of 2 units (0%) got the class prior; runs left out of the blend (no runtime "
        "could run them): none"
    )
