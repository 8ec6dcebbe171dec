"""The fallback prediction: a unit that could not be read gets a class prior, never a guess.

Prediction (``predict.py --fallback``), the ensemble and the Kaggle notebook all replace such
units the same way, here; each says whose prior it used in one ``FALLBACK`` line per unit, the
line a user greps a log for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

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
