"""Reading one signal file of any supported type into microvolts, or failing with its name.

Supported: ``.txt``/``.csv`` (rows are samples, one column per channel, optional header row),
``.npy`` (channels x samples; 1-D is one channel) and the raw formats MNE reads, chosen by
suffix through :func:`mne.io.read_raw` (:data:`RAW_FORMATS`: EDF, BDF, GDF, FIF, BrainVision
``.vhdr``, EEGLAB ``.set``, CNT). Text and ``.npy`` files carry no sampling rate or units, so
these come from ``dataset.yaml``; the raw formats carry both, and MNE returns their values in
volts whatever the header's unit.

Channel names are read as the 10-20 system spells them whatever a file's spelling (``Fc5.``,
``EEG FP1-REF`` -> ``FC5``, ``Fp1``; :func:`hmsbrain.dsp.montage.read_as_1020`), after the
renames of ``channel_map`` in ``dataset.yaml``; other names (``EKG``, ``ch1``) stay as they are.

Every problem is a :class:`DataError` naming the file: unreadable or truncated files, channels
that differ from ``dataset.yaml``'s, and any NaN or infinite value (the generic layouts have no
gap-filling step, unlike the HMS one, so a gap would reach the model as NaN).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hmsbrain.data.base import DataError
from hmsbrain.data.spec import DatasetSpec
from hmsbrain.dsp.montage import read_as_1020

# MNE is imported where a raw file is read: the data registry imports every source's module to
# detect a folder, and the Kaggle notebook, which reads HMS parquet files only, must not need it.
if TYPE_CHECKING:
    import mne

# The raw formats EEG comes in that mne.io.read_raw reads, by suffix, with the name an error
# gives each. Sidecars (BrainVision's .eeg and .vmrk, EEGLAB's .fdt) are found by MNE from these.
RAW_FORMATS = {
    ".edf": "EDF",
    ".bdf": "BDF",
    ".gdf": "GDF",
    ".fif": "FIF",
    ".vhdr": "BrainVision",
    ".set": "EEGLAB",
    ".cnt": "CNT",
}
MNE_SUFFIXES = tuple(RAW_FORMATS)
SIGNAL_SUFFIXES = (".txt", ".csv", ".npy", *MNE_SUFFIXES)
# MNE's names for a FIF file of epochs (mne.Epochs.save), which is no continuous recording.
EPOCHS_ENDINGS = ("-epo.fif", "_epo.fif")
# The channel types that are EEG: scalp, and intracranial (stereo, grid, deep brain).
EEG_TYPES = ("eeg", "seeg", "ecog", "dbs")
# MNE warnings that are no guess about the data, so not errors: an annotation running past the
# end of the data (a hypnogram's last stage) is cut at the end, as it should be; a FIF file
# named without MNE's "raw.fif" ending; BrainVision channels with different hardware filters
# (MNE keeps the weakest setting in the header; the samples are as recorded).
HARMLESS_WARNINGS = (
    "Limited .* annotation",
    ".* does not conform to MNE naming conventions",
    "Channels contain different (highpass|lowpass) filters",
)
VOLTS_TO_UV = 1e6
# Renames shown in the log line saying how channel names were read; the rest are counted.
_RENAMES_SHOWN = 6

log = logging.getLogger(__name__)


def is_signal_file(path: Path) -> bool:
    """A file this module can read, by its (case-insensitive) suffix; hidden files are not."""
    return path.is_file() and not path.name.startswith(".") and suffix(path) in SIGNAL_SUFFIXES


def suffix(path: Path) -> str:
    # Clinical systems often write upper-case ``.EDF``.
    return path.suffix.lower()


def is_epochs_file(path: Path) -> bool:
    """An MNE epochs file (``*-epo.fif``), by its name."""
    return is_signal_file(path) and path.name.lower().endswith(EPOCHS_ENDINGS)


def is_raw_file(path: Path) -> bool:
    """A continuous recording in one of :data:`RAW_FORMATS`, by its name."""
    return is_signal_file(path) and suffix(path) in MNE_SUFFIXES and not is_epochs_file(path)


def seconds_text(seconds: float) -> str:
    """``2.5`` -> ``'2.5'``, ``10.0`` -> ``'10'``: a start time as epoch ids show it."""
    return f"{seconds:.6f}".rstrip("0").rstrip(".")


def read_signal_file(
    path: str | Path, spec: DatasetSpec
) -> tuple[np.ndarray, float, tuple[str, ...]]:
    """One file's ``(channels, samples)`` float32 microvolts, sampling rate and channel names.

    With ``spec.channels``, the result has exactly those channels in that order: a text or
    ``.npy`` file must have that many (and, with a header, those names); a raw file must contain
    them all and may have more. Without it, a text file's header names its channels (``ch1``,
    ``ch2``... when there is none) and a raw file's EEG channels are used (:func:`pick_channels`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    kind = suffix(path)
    if kind in MNE_SUFFIXES:
        raw = read_raw(path, spec)
        names = pick_channels(raw, spec.channels, path)
        data = raw.get_data(picks=list(names)) * VOLTS_TO_UV
        sfreq = float(raw.info["sfreq"])
    elif kind in (".txt", ".csv", ".npy"):
        if kind == ".npy":
            data, header = _read_npy(path), None
        else:
            data, header = _read_text(path)
        if spec.sample_rate is None:
            raise DataError(f"{path}: no sampling rate: set sample_rate in dataset.yaml")
        data, names = _name_channels(path, data, header, spec)
        data = data * spec.scale
        sfreq = spec.sample_rate
    else:
        raise DataError(f"{path}: unsupported file type; expected one of {list(SIGNAL_SUFFIXES)}")
    data = data.astype(np.float32)
    check_finite(path, data)
    return data, sfreq, names


def check_finite(path: Path, data: np.ndarray) -> None:
    """DataError naming ``path`` and the counts when ``data`` holds NaN or infinite values."""
    nan = int(np.isnan(data).sum())
    inf = int(np.isinf(data).sum())
    if nan or inf:
        raise DataError(f"{path}: {nan} NaN and {inf} infinite values; every sample must be finite")


def read_raw(path: Path, spec: DatasetSpec | None = None) -> mne.io.BaseRaw:
    """A raw file through :func:`mne.io.read_raw` (the reader its suffix picks), preloaded, with
    any MNE warning raised as a DataError; with ``spec``, its channels renamed as
    :func:`read_names` reads them.

    MNE only warns about some broken files (an EDF header whose record count does not match the
    file size is read by guessing from the size), and a guess is not data to train on.
    """
    import mne

    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    with mne_errors(path, f"{RAW_FORMATS.get(suffix(path), suffix(path))} file"):
        raw = mne.io.read_raw(path, preload=True, verbose="warning")
    if spec is not None:
        rename_channels(raw, spec, path)
    return raw


@contextlib.contextmanager
def mne_errors(path: Path, what: str) -> Iterator[None]:
    """MNE's errors, and its warnings but :data:`HARMLESS_WARNINGS`, as a one-line DataError:
    ``<path>: not a readable <what> (<MNE's message>)``.

    MNE warns about the data with RuntimeWarnings; other categories (a library's deprecation
    inside MNE, such as pandas' when MNE reads epochs' metadata) say nothing about the file.
    ``verbose="warning"`` matters in the calls inside: a quieter MNE log level suppresses the
    warnings entirely.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            for message in HARMLESS_WARNINGS:
                warnings.filterwarnings("ignore", message, RuntimeWarning)
            yield
    # MNE raises many kinds of error on malformed headers (ValueError, struct errors, index
    # errors...); all of them mean the same thing to the user: this file cannot be read.
    except Exception as exc:
        raise DataError(f"{path}: not a readable {what} ({' '.join(str(exc).split())})") from exc


def rename_channels(inst: mne.io.BaseRaw | mne.BaseEpochs, spec: DatasetSpec, path: Path) -> None:
    """Rename the channels of a raw file or epochs in place as :func:`read_names` reads them."""
    names = read_names(inst.ch_names, spec, path)
    inst.rename_channels(
        {old: new for old, new in zip(inst.ch_names, names, strict=True) if old != new}
    )


def read_names(names: Sequence[str], spec: DatasetSpec, path: Path) -> tuple[str, ...]:
    """The names a file's channels are read by: ``channel_map`` applied first, then every 10-20
    electrode spelled as the 10-20 tables spell it. One log line shows the renames (once per
    distinct set of them, not once per file of a dataset)."""
    mapped = [(spec.channel_map or {}).get(n, n) for n in names]
    read = read_as_1020(mapped)
    repeated = sorted({n for n in read if read.count(n) > 1})
    if repeated:
        raise DataError(
            f"{path}: several channels are read as {repeated} (after channel_map in "
            f"{spec.source}); found {list(names)}"
        )
    renames = tuple((a, b) for a, b in zip(names, read, strict=True) if a != b)
    if renames:
        _log_renames(renames)
    return read


@functools.lru_cache(maxsize=32)
def _log_renames(renames: tuple[tuple[str, str], ...]) -> None:
    shown = ", ".join(f"{a}->{b}" for a, b in renames[:_RENAMES_SHOWN])
    more = len(renames) - _RENAMES_SHOWN
    log.info("channels read as 10-20: %s%s", shown, f", ... ({more} more)" if more > 0 else "")


def pick_channels(
    inst: mne.io.BaseRaw | mne.BaseEpochs, wanted: Sequence[str] | None, path: Path
) -> tuple[str, ...]:
    """The channel names to take from a raw file or epochs: ``wanted`` (all must be there,
    found by their 10-20 spelling: ``C3`` is the file's ``C3..``), else its EEG channels.

    Channel types are the file's (EDF and BDF type every channel EEG but triggers; FIF,
    EEGLAB and a BIDS ``channels.tsv`` say ECG, EOG, stim...). The others are left out, named in
    one log line: triggers are not signals, and ECG or EOG is not what the EEG models expect.
    """
    if wanted is None:
        typed = list(zip(inst.ch_names, inst.get_channel_types(), strict=True))
        names = tuple(n for n, t in typed if t in EEG_TYPES)
        others = [f"{n} ({t})" for n, t in typed if t not in EEG_TYPES]
        if not names:
            raise DataError(
                f"{path}: no EEG channels (found {', '.join(others)}); name the channels to read "
                "in channels: of dataset.yaml"
            )
        if others:
            log.info("%s: leaving out channels that are not EEG: %s", path, ", ".join(others))
        return names
    wanted = read_as_1020(wanted)
    missing = [n for n in wanted if n not in inst.ch_names]
    if missing:
        raise DataError(
            f"{path}: missing channels {missing}; expected {list(wanted)}, found {inst.ch_names}"
        )
    return wanted


def match_channels(
    data: np.ndarray, names: Sequence[str], expected: Sequence[str], path: Path
) -> np.ndarray:
    """``data`` (channels on axis -2) reordered to ``expected``; the same names in another order
    are the same channels, other names are a DataError naming ``path``."""
    if list(names) == list(expected):
        return data
    if sorted(names) != sorted(expected):
        raise DataError(
            f"{path}: channels differ from the other files: expected {list(expected)}, "
            f"found {list(names)}"
        )
    order = [list(names).index(n) for n in expected]
    return data[..., order, :]


def _read_npy(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from exc
    if data.dtype.kind not in "iuf":
        raise DataError(f"{path}: expected real numbers, got dtype {data.dtype}")
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2:
        raise DataError(f"{path}: expected (channels, samples), got shape {data.shape}")
    if data.size == 0:
        raise DataError(f"{path}: no samples (shape {data.shape})")
    return data.astype(np.float64)


def _read_text(path: Path) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """A text table as ``(channels, samples)`` and its header names (None without a header)."""
    first, sep = first_line(path)
    cells = first.strip().split() if sep == r"\s+" else first.strip().split(sep)
    has_header = not all(_parses_as_number(c) for c in cells)
    try:
        table = pd.read_csv(
            path, sep=sep, header=0 if has_header else None, dtype=np.float64, encoding="utf-8-sig"
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a table of numbers ({' '.join(str(exc).split())})") from exc
    if table.empty:
        raise DataError(f"{path}: no samples (a header row and nothing else)")
    header = tuple(str(c).strip() for c in table.columns) if has_header else None
    return table.to_numpy().T, header


def first_line(path: Path) -> tuple[str, str]:
    """A text table's first non-empty line and the delimiter it shows (``,``, tab, ``;``, else
    whitespace as a pandas regex)."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            first = next((line for line in f if line.strip()), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable text file ({exc})") from exc
    if first is None:
        raise DataError(f"{path}: empty file")
    return first, _delimiter(first)


def _delimiter(line: str) -> str:
    for sep in (",", "\t", ";"):
        if sep in line:
            return sep
    return r"\s+"


def _parses_as_number(cell: str) -> bool:
    try:
        float(cell.strip().strip('"'))
    except ValueError:
        return False
    return True


def _name_channels(
    path: Path, data: np.ndarray, header: tuple[str, ...] | None, spec: DatasetSpec
) -> tuple[np.ndarray, tuple[str, ...]]:
    """A text/.npy file's channels checked against ``dataset.yaml`` and named."""
    names = (
        read_names(header, spec, path) if header else tuple(f"ch{i + 1}" for i in range(len(data)))
    )
    if spec.channels is None:
        return data, names
    wanted = read_as_1020(spec.channels)
    if len(data) != len(wanted):
        raise DataError(
            f"{path}: {len(data)} channels, expected {len(wanted)} {list(wanted)}"
            + (f"; found {list(header)}" if header else "")
        )
    if header is None:
        return data, wanted
    if sorted(names) != sorted(wanted):
        raise DataError(f"{path}: expected channels {list(wanted)}, found {list(header)}")
    return match_channels(data, names, wanted, path), wanted
