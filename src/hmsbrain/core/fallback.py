"""The fallback prediction: a unit that could not be read gets a class prior, never a guess.

Prediction (``predict.py --fallback``), the ensemble and the Kaggle notebook all replace such
units the same way, here; each says whose prior it used in one ``FALLBACK`` line per unit, the
line a user greps a log for, and ends with one ``SUMMARY`` line (:class:`FallbackSummary`).

Only bad input falls back: a ``DataError``, which names its file. Any other exception in reading
or preprocessing one unit is a bug. ``predict.py`` stops on it; the Kaggle notebook, which must
submit whatever happens, gives that unit the prior too, but with a reason that says
``unexpected`` (:func:`unexpected_reason`), so the summary counts it and a dry run fails.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def apply_fallback(
    frame: pd.DataFrame,
    failed: Mapping[object, str],
    prior: np.ndarray | list[float],
    classes: list[str],
    whose: str | None = None,
) -> pd.DataFrame:
    """Set the ``classes`` columns of the units in ``failed`` (unit id -> why) to ``prior``, in
    place, and return ``frame``; its first column is the unit id.

    Ids are matched as text: ``failed`` may come from a prediction file's JSON metadata, whose
    keys are strings. With ``whose`` (``"effnetv2's"``, ``"the ensemble's"``), every unit gets a
    warning ``FALLBACK <id column> <id> gets <whose> class prior: <why>``; without, nothing is
    logged (the units were named when the prediction file listing them was written)."""
    id_column = frame.columns[0]
    keys = frame[id_column].astype(str).isin([str(k) for k in failed])
    frame.loc[keys, classes] = np.asarray(prior, dtype=float)
    if whose is not None:
        for unit, reason in sorted(failed.items()):
            log.warning("FALLBACK %s %s gets %s class prior: %s", id_column, unit, whose, reason)
    return frame


# The first word of the reason of a unit whose reading raised something other than a DataError.
UNEXPECTED = "unexpected"


def unexpected_reason(where: str, exc: BaseException) -> str:
    """The fallback reason of a unit whose reading at ``where`` (its file) raised ``exc``, which
    is not a DataError: a bug, named as one."""
    return f"{where}: {UNEXPECTED} {type(exc).__name__}: {exc}"


def reason_label(reason: str) -> str:
    """What a fallback reason counts as in a summary: its problem, without the file before it
    or the details after it (``file not found``, ``too short``, ``unexpected TypeError``)."""
    problem = reason.split(": ", 1)[-1]
    return re.split(r":|;|,| \(", problem, maxsplit=1)[0].strip()


def is_unexpected(reason: str) -> bool:
    """Whether a fallback reason is a bug (:func:`unexpected_reason`), not bad input."""
    return reason_label(reason).startswith(f"{UNEXPECTED} ")


@dataclass
class FallbackSummary:
    """What got a class prior in one prediction: of ``units`` predicted, those in ``fallback``
    (unit id -> why), and the runs ``left_out`` of the blend because no runtime could run them
    (name -> why)."""

    units: int
    fallback: Mapping[object, str] = field(default_factory=dict)
    left_out: Mapping[str, str] = field(default_factory=dict)

    @property
    def share(self) -> float:
        """The share of the units that got the prior."""
        return len(self.fallback) / self.units if self.units else 0.0

    @property
    def unexpected(self) -> int:
        """How many units got the prior because of a bug."""
        return sum(is_unexpected(r) for r in self.fallback.values())

    def line(self, what: str = "units") -> str:
        """``SUMMARY: 1 of 2 test EEGs (50%) got the class prior: 1 file not found; runs left
        out of the blend: none``: the fallbacks by reason, the most common first."""
        counts = Counter(reason_label(r) for r in self.fallback.values())
        reasons = ", ".join(
            f"{n} {label}" for label, n in sorted(counts.items(), key=lambda c: (-c[1], c[0]))
        )
        left = ", ".join(sorted(self.left_out)) or "none"
        return (
            f"SUMMARY: {len(self.fallback)} of {self.units} {what} ({self.share:.0%}) got the "
            f"class prior{': ' + reasons if reasons else ''}; runs left out of the blend (no "
            f"runtime could run them): {left}"
        )
