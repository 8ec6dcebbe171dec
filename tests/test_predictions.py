"""The prediction file schema: OOF and test files carry how they were made, and a non-finite
prediction is never written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hmsbrain.core.predictions import PredictionError, read_predictions, write_predictions
from hmsbrain.hms.constants import VOTE_COLUMNS


def _frame(values: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=list(VOTE_COLUMNS))
    frame.insert(0, "eeg_id", [11, 22, 33][: len(values)])
    frame.insert(1, "fold", -1)
    return frame


def test_metadata_travels_inside_the_file(tmp_path) -> None:
    frame = _frame(np.full((3, 6), 1 / 6))
    write_predictions(frame, tmp_path / "test.parquet", {"kind": "test", "tta": True})
    loaded = read_predictions(tmp_path / "test.parquet")
    pd.testing.assert_frame_equal(loaded.frame, frame)
    assert loaded.meta == {"kind": "test", "tta": True} and loaded.tta is True
    assert list(pd.read_parquet(tmp_path / "test.parquet").columns) == list(frame.columns)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_prediction_is_an_error_naming_the_eeg_and_its_file(tmp_path, bad) -> None:
    values = np.full((3, 6), 1 / 6)
    values[1, 2] = bad
    path = tmp_path / "test.parquet"
    with pytest.raises(PredictionError, match=r"eeg_id 22 \(input test_eegs/22\.parquet\)"):
        write_predictions(_frame(values), path, {}, source=lambda i: f"test_eegs/{i}.parquet")
    assert not path.exists() and list(tmp_path.iterdir()) == []
