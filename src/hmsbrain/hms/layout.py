"""Reading the Kaggle HMS layout, with every malformed input turned into a clear error.

Layout (the competition's, and the demo dataset's)::

    train.csv  test.csv  sample_submission.csv
    train_eegs/<eeg_id>.parquet          train_spectrograms/<spectrogram_id>.parquet
    test_eegs/<eeg_id>.parquet           test_spectrograms/<spectrogram_id>.parquet

Errors are :class:`DataError` and always name the file (and the row, for CSV problems).
NaN inside EEG and spectrogram files is not an error: real recordings have missing stretches,
and :mod:`hmsbrain.hms.preprocess` fills them deliberately. Infinite values are treated the same way
(set to NaN on reading), and each of these gets a warning naming the file: an all-NaN channel in
a window, any infinite sample, a spectrogram window that is mostly missing.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hmsbrain.data.base import DataError
from hmsbrain.hms.constants import (
    CHAIN_NAMES,
    EEG_COLUMNS,
    EEG_WINDOW_SAMPLES,
    SAMPLE_RATE,
    SPEC_BINS_PER_CHAIN,
    SPEC_SECONDS_PER_ROW,
    SPEC_TIME_COLUMN,
    SPEC_WINDOW_ROWS,
    TEST_CSV,
    TEST_CSV_COLUMNS,
    TRAIN_CSV,
    TRAIN_CSV_COLUMNS,
    VOTE_COLUMNS,
)

SPLITS = ("train", "test")
# A Kaggle spectrogram window with more missing values than this is mostly zeros to the model.
NAN_HEAVY_SHARE = 0.5

log = logging.getLogger(__name__)


# --- CSV files -----------------------------------------------------------------------------------


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; found {list(df.columns)}")
    for col in required:
        if df[col].isna().any():
            row = int(df.index[df[col].isna()][0])
            raise DataError(f"{path}: line {row + 2} has no value in {col!r}")
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise DataError(f"{path}: column {col!r} must be numeric, got {df[col].dtype}")
    return df


def read_train_csv(path: str | Path) -> pd.DataFrame:
    """``train.csv`` with validated votes; ``eeg_sub_id`` is added when a file lacks it."""
    path = Path(path)
    df = _read_csv(path, TRAIN_CSV_COLUMNS)
    votes = df[list(VOTE_COLUMNS)].to_numpy()
    bad = (votes < 0).any(axis=1)
    if bad.any():
        raise DataError(f"{path}: negative vote count at {_where(df, bad)}")
    empty = votes.sum(axis=1) <= 0
    if empty.any():
        raise DataError(f"{path}: votes sum to 0 at {_where(df, empty)}; such a row has no target")
    for col in ("eeg_label_offset_seconds", "spectrogram_label_offset_seconds"):
        neg = (df[col] < 0).to_numpy()
        if neg.any():
            raise DataError(f"{path}: negative {col} at {_where(df, neg)}")
    if "eeg_sub_id" not in df.columns:
        df["eeg_sub_id"] = df.groupby("eeg_id").cumcount()
    return df.reset_index(drop=True)


def read_test_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    df = _read_csv(path, TEST_CSV_COLUMNS)
    dup = df["eeg_id"].duplicated().to_numpy()
    if dup.any():
        raise DataError(f"{path}: eeg_id {int(df['eeg_id'][dup].iloc[0])} appears twice")
    if df.empty:
        raise DataError(f"{path}: no rows")
    return df.reset_index(drop=True)


def read_sample_submission(path: str | Path) -> pd.DataFrame:
    return _read_csv(Path(path), ("eeg_id", *VOTE_COLUMNS))


def _where(df: pd.DataFrame, mask: np.ndarray) -> str:
    i = int(np.flatnonzero(mask)[0])
    row = df.iloc[i]
    sub = f", eeg_sub_id {int(row['eeg_sub_id'])}" if "eeg_sub_id" in df.columns else ""
    extra = f" (and {int(mask.sum()) - 1} more rows)" if mask.sum() > 1 else ""
    return f"line {i + 2} (eeg_id {int(row['eeg_id'])}{sub}){extra}"


def vote_targets(df: pd.DataFrame) -> np.ndarray:
    """The six vote columns divided by their row sum, ``(rows, 6)`` float32."""
    votes = df[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    return (votes / votes.sum(axis=1, keepdims=True)).astype(np.float32)


# --- Parquet files -------------------------------------------------------------------------------


def _parquet_columns(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a parquet file ({exc})") from exc


def _read_parquet(path: Path, columns: tuple[str, ...]) -> np.ndarray:
    names = _parquet_columns(path)
    missing = [c for c in columns if c not in names]
    if missing:
        shown = missing if len(missing) <= 6 else [*missing[:6], "..."]
        raise DataError(
            f"{path}: missing columns ({len(missing)} expected: {shown}; "
            f"found {names[:6]}{'...' if len(names) > 6 else ''})"
        )
    try:
        table = pq.read_table(path, columns=list(columns))
    except (pa.ArrowException, OSError) as exc:
        # A readable footer over corrupt pages, or a column name given twice: the file, not a
        # bug, so a notebook gives this EEG the class prior like any unreadable file.
        raise DataError(f"{path}: corrupt parquet file ({' '.join(str(exc).split())})") from exc
    try:
        return np.stack(
            [table.column(c).to_numpy().astype(np.float32, copy=False) for c in columns], axis=1
        )
    except (pa.ArrowInvalid, ValueError, TypeError) as exc:
        raise DataError(f"{path}: columns are not numeric ({exc})") from exc


def _infinite_to_nan(values: np.ndarray, path: Path, columns: tuple[str, ...]) -> np.ndarray:
    """Infinite samples become NaN (then filled like any missing stretch), with a warning: a
    single +inf would otherwise reach the filters and turn the whole prediction into NaN."""
    infinite = np.isinf(values)
    if infinite.any():
        named = [columns[i] for i in np.flatnonzero(infinite.any(axis=0))]
        log.warning(
            "%s: %d infinite values (in %s) treated as missing, like NaN",
            path,
            int(infinite.sum()),
            _short(named),
        )
        values = np.where(infinite, np.float32(np.nan), values)
    return values


def _short(names: list[str], limit: int = 6) -> str:
    return ", ".join(names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )


def read_eeg(path: str | Path) -> np.ndarray:
    """A whole EEG recording ``(samples, 20)`` float32 in :data:`EEG_COLUMNS` order; infinite
    values become NaN."""
    path = Path(path)
    return _infinite_to_nan(_read_parquet(path, EEG_COLUMNS), path, EEG_COLUMNS)


def read_spectrogram(path: str | Path) -> np.ndarray:
    """A whole Kaggle spectrogram ``(rows, 400)`` float32 (the ``time`` column dropped).

    Columns are taken chain by chain (LL, RL, LP, RP), each in ascending frequency.
    """
    path = Path(path)
    names = _parquet_columns(path)
    columns: list[str] = []
    for chain in CHAIN_NAMES:
        own = [n for n in names if n.startswith(f"{chain}_")]
        try:
            own.sort(key=lambda n: float(n.split("_", 1)[1]))
        except ValueError:
            own = []
        if len(own) != SPEC_BINS_PER_CHAIN:
            raise DataError(
                f"{path}: expected {SPEC_BINS_PER_CHAIN} '{chain}_<Hz>' columns, found "
                f"{len(own)}; is this a Kaggle spectrogram file? columns start {names[:4]}"
            )
        columns += own
    if SPEC_TIME_COLUMN not in names:
        raise DataError(f"{path}: no '{SPEC_TIME_COLUMN}' column; not a Kaggle spectrogram file")
    return _infinite_to_nan(_read_parquet(path, tuple(columns)), path, tuple(columns))


def eeg_window(eeg: np.ndarray, offset_seconds: float, path: str | Path) -> np.ndarray:
    """The 50 s labelled window starting at ``offset_seconds``, ``(10000, 20)``."""
    start = round(offset_seconds * SAMPLE_RATE)
    stop = start + EEG_WINDOW_SAMPLES
    if start < 0 or stop > len(eeg):
        raise DataError(
            f"{path}: too short: the window at offset {offset_seconds:g} s needs samples "
            f"{start}..{stop}, but the recording has {len(eeg)} ({len(eeg) / SAMPLE_RATE:g} s)"
        )
    return eeg[start:stop]


def spectrogram_window(spec: np.ndarray, offset_seconds: float, path: str | Path) -> np.ndarray:
    """The 10 min window starting at ``offset_seconds``, ``(300, 400)``."""
    start = int(offset_seconds // SPEC_SECONDS_PER_ROW)
    stop = start + SPEC_WINDOW_ROWS
    if start < 0 or stop > len(spec):
        raise DataError(
            f"{path}: too short: the window at offset {offset_seconds:g} s needs rows "
            f"{start}..{stop}, but the spectrogram has {len(spec)} rows"
        )
    return spec[start:stop]


# --- A Kaggle-layout folder ----------------------------------------------------------------------


class HMSData:
    """One split of a Kaggle-layout folder: its table and windowed access to its files.

    ``rows`` has one row per labelled window; for ``test`` that is one per EEG, with offsets 0
    (test EEGs are exactly one 50 s window, test spectrograms one 10 min window).
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: data folder not found")
        self.split = split
        if split == "train":
            self.rows = read_train_csv(self.root / TRAIN_CSV)
        else:
            rows = read_test_csv(self.root / TEST_CSV)
            rows["eeg_sub_id"] = 0
            rows["eeg_label_offset_seconds"] = 0.0
            rows["spectrogram_label_offset_seconds"] = 0.0
            self.rows = rows
        # Sub-windows of one EEG share its file: keep the last few recordings in memory.
        self._eeg = functools.lru_cache(maxsize=8)(read_eeg)
        self._spec = functools.lru_cache(maxsize=8)(read_spectrogram)
        self._warned: set[tuple[Path, str]] = set()

    def __len__(self) -> int:
        return len(self.rows)

    def eeg_path(self, eeg_id: int) -> Path:
        return self.root / f"{self.split}_eegs" / f"{int(eeg_id)}.parquet"

    def spectrogram_path(self, spectrogram_id: int) -> Path:
        return self.root / f"{self.split}_spectrograms" / f"{int(spectrogram_id)}.parquet"

    def eeg_window(self, i: int) -> np.ndarray:
        """Raw 50 s window of row ``i``, ``(10000, 20)``, NaN kept (a warning names the file
        when a channel is missing for the whole window: it will be all zeros)."""
        row = self.rows.iloc[i]
        path = self.eeg_path(row["eeg_id"])
        window = eeg_window(self._eeg(path), row["eeg_label_offset_seconds"], path)
        dead = np.isnan(window).all(axis=0)
        if dead.any():
            named = [EEG_COLUMNS[c] for c in np.flatnonzero(dead)]
            offset = row["eeg_label_offset_seconds"]
            self._warn_once(
                path,
                f"channels {_short(named)} hold no value in the window at {offset:g} s; "
                "they become zeros",
            )
        return window

    def spectrogram_window(self, i: int) -> np.ndarray:
        """Kaggle 10 min spectrogram window of row ``i``, ``(300, 400)``, NaN kept (a warning
        names the file when most of it is missing)."""
        row = self.rows.iloc[i]
        path = self.spectrogram_path(row["spectrogram_id"])
        offset = row["spectrogram_label_offset_seconds"]
        window = spectrogram_window(self._spec(path), offset, path)
        share = float(np.isnan(window).mean())
        if share > NAN_HEAVY_SHARE:
            self._warn_once(
                path,
                f"{share:.0%} of the window at {offset:g} s is missing (NaN); the model "
                "sees it as zeros",
            )
        return window

    def _warn_once(self, path: Path, message: str) -> None:
        # Sub-windows of one EEG share their file's defects: one line per file and defect.
        if (path, message) not in self._warned:
            self._warned.add((path, message))
            log.warning("%s: %s", path, message)

    def targets(self) -> np.ndarray:
        """Normalised vote distributions ``(rows, 6)``; train split only."""
        if self.split != "train":
            raise DataError(f"{self.root / TEST_CSV}: the test split has no votes")
        return vote_targets(self.rows)
