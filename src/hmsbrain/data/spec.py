"""The optional ``dataset.yaml`` that tells the generic readers what files cannot say.

A folder of EEG files says little about itself: a text or ``.npy`` file has no sampling rate or
units, a folder of class sub-folders has no class order, and a recording with events does not
say how long an epoch is. ``dataset.yaml`` at the data folder's root fills these gaps; every key
is optional except where a layout needs it (``sample_rate`` for text and ``.npy`` signals,
``tmax`` for recordings, unless ``epochs`` cuts fixed windows)::

    layout: recordings          # folders | recordings | arrays | table | epochs | markers |
                                # bids; detected when absent
    sample_rate: 200            # Hz, for .txt/.csv/.npy signals (raw formats carry their own)
    channels: [Fp1, F7, T3]     # every file must have these, whatever its spelling ("Fp1.",
                                # "EEG FP1-REF"); raw files may have more
    units: uV                   # uV (default) or V, for .txt/.csv/.npy values
    classes: [seizure, other]   # the order of the probability columns
    tmin: -1.0                  # recordings, markers, bids: epoch start relative to each
                                # event (s)
    tmax: 4.0                   # recordings, markers, bids: epoch end relative to each event
    baseline: [null, 0]         # recordings, markers, bids: as in MNE, or {first_seconds: 10}
    events: {T1: left, T2: right}  # event descriptions (epochs' event_id names, marker
                                # values) -> classes, others left out (a marker value: an
                                # error); or the events table's file name (recordings; default
                                # events.csv)
    epochs: {from: annotations, length: 30}  # recordings: each annotated span cut into
                                # consecutive 30 s windows, instead of tmin..tmax per event
    files: ["S*R04.edf", "S*R08.edf"]  # recordings: globs choosing the recordings
    channel_map: {"EEG FP1-REF": Fp1}  # a file's channel -> its name, before any matching
    group_pattern: '^(\\w+)_'   # subject id = the capture group of a file name, or of the
                                # path in the data folder when it has a "/": '(subject\\d+)/'
    markers: Marker0            # markers: the column of event markers in CSV recordings
    timestamps: timestamps      # markers: the column of sample times (s), for the rate
    group_column: subject       # epochs: the metadata column holding each epoch's subject
    bids: {task: faces, subject: ["01", "02"], session: "1", run: [1, 2]}  # bids: filters

This module also holds the label helpers every reader shares (class resolution, one-hot and
soft targets, subject ids from file names), since they all apply the spec's ``classes`` and
``group_pattern`` the same way.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from hmsbrain.data.base import DataError

SPEC_FILE = "dataset.yaml"
LAYOUTS = ("folders", "recordings", "arrays", "table", "epochs", "markers", "bids")
UNITS = {"uV": 1.0, "V": 1e6}  # factor to microvolts
VALID_KEYS = (
    "layout",
    "sample_rate",
    "channels",
    "units",
    "classes",
    "tmin",
    "tmax",
    "baseline",
    "events",
    "epochs",
    "files",
    "channel_map",
    "group_pattern",
    "markers",
    "timestamps",
    "group_column",
    "bids",
)
# The BIDS entities a bids layout chooses recordings by.
BIDS_FILTERS = ("task", "subject", "session", "run")
# Where ``epochs:`` finds the spans it cuts into windows.
EPOCH_SPANS = ("annotations",)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstSeconds:
    """Baseline ``{first_seconds: N}``: subtract each channel's mean over a recording's first N s.

    MNE's baselines are intervals of the epoch; this one is a stretch of the whole recording,
    for data whose resting level is known only at the start.
    """

    seconds: float


Baseline = tuple[float | None, float | None] | FirstSeconds | None


@dataclass(frozen=True)
class DatasetSpec:
    """The parsed ``dataset.yaml``; the defaults are what a folder without one gets.

    ``source`` is the ``dataset.yaml`` path (whether or not it exists), for error messages
    about a setting that is missing or does not fit the data.
    """

    source: Path = Path(SPEC_FILE)
    layout: str | None = None
    sample_rate: float | None = None
    channels: tuple[str, ...] | None = None
    units: str = "uV"
    classes: tuple[str, ...] | None = None
    tmin: float = 0.0
    tmax: float | None = None
    baseline: Baseline = None
    events: str = "events.csv"  # the events table's file name
    event_map: dict[str, str] | None = None  # event description -> class; others left out
    epoch_length: float | None = None  # seconds: annotated spans cut into fixed windows
    files: tuple[str, ...] | None = None  # globs choosing the recordings, relative to the root
    channel_map: dict[str, str] | None = None  # a file's channel name -> the name to read it as
    group_pattern: re.Pattern[str] | None = None
    markers: str | None = None  # the marker column of CSV recordings
    timestamps: str | None = None  # the column of sample times (s) of CSV recordings
    group_column: str | None = None  # the metadata column of epochs files holding subjects
    bids: dict[str, tuple[str, ...]] | None = None  # BIDS entity -> the values to read

    @property
    def scale(self) -> float:
        """Factor from this spec's units to microvolts."""
        return UNITS[self.units]


def read_spec(root: str | Path) -> DatasetSpec:
    """``root/dataset.yaml`` parsed and checked; the defaults when the file does not exist."""
    path = Path(root) / SPEC_FILE
    if not path.is_file():
        return DatasetSpec(source=path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid YAML ({_one_line(exc)})") from exc
    if raw is None:
        return DatasetSpec(source=path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in VALID_KEYS)
    if unknown:
        raise DataError(f"{path}: unknown keys {unknown}; valid keys are {list(VALID_KEYS)}")

    layout = raw.get("layout")
    if layout is not None and layout not in LAYOUTS:
        raise DataError(f"{path}: layout must be one of {list(LAYOUTS)}, got {layout!r}")
    units = raw.get("units", "uV")
    if units not in UNITS:
        raise DataError(f"{path}: units must be one of {list(UNITS)}, got {units!r}")
    sample_rate = _number(path, raw, "sample_rate")
    if sample_rate is not None and sample_rate <= 0:
        raise DataError(f"{path}: sample_rate must be > 0, got {sample_rate}")
    tmin = _number(path, raw, "tmin")
    tmin = 0.0 if tmin is None else tmin
    tmax = _number(path, raw, "tmax")
    if tmax is not None and tmax <= tmin:
        raise DataError(f"{path}: tmax ({tmax}) must be after tmin ({tmin})")
    epoch_length = _epochs(path, raw.get("epochs"))
    if epoch_length is not None and ("tmin" in raw or "tmax" in raw):
        raise DataError(
            f"{path}: epochs: cuts fixed windows of {epoch_length:g} s from each span; tmin and "
            "tmax (a window around each event) do not apply, remove them"
        )
    events = raw.get("events", "events.csv")
    event_map = None
    if isinstance(events, dict):
        event_map, events = _mapping(path, raw, "events"), "events.csv"
    elif not isinstance(events, str) or not events:
        raise DataError(
            f"{path}: events must be a file name or a map of event descriptions to classes, "
            f"got {events!r}"
        )
    return DatasetSpec(
        source=path,
        layout=layout,
        sample_rate=sample_rate,
        channels=_names(path, raw, "channels"),
        units=units,
        classes=_names(path, raw, "classes"),
        tmin=tmin,
        tmax=tmax,
        baseline=_baseline(path, raw.get("baseline"), tmin, tmax or epoch_length),
        events=events,
        event_map=event_map,
        epoch_length=epoch_length,
        files=_globs(path, raw.get("files")),
        channel_map=_mapping(path, raw, "channel_map"),
        group_pattern=_pattern(path, raw.get("group_pattern")),
        markers=_column(path, raw, "markers"),
        timestamps=_column(path, raw, "timestamps"),
        group_column=_column(path, raw, "group_column"),
        bids=_bids(path, raw.get("bids")),
    )


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _is_number(value: object) -> bool:
    # YAML booleans are ints to Python; ``sample_rate: yes`` is a mistake, not 1 Hz.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(path: Path, raw: dict, key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise DataError(f"{path}: {key} must be a number, got {value!r}")
    return float(value)


def _names(path: Path, raw: dict, key: str) -> tuple[str, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise DataError(f"{path}: {key} must be a non-empty list, got {value!r}")
    if not all(_text(v) for v in value):
        raise DataError(f"{path}: {key} must be a list of names, got {value!r}")
    names = tuple(str(v) for v in value)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{path}: {key} lists {repeated} more than once")
    return names


def _text(value: object) -> bool:
    # Names like 0 and 1 are read by YAML as ints; labels and folder names are text.
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


def _mapping(path: Path, raw: dict, key: str) -> dict[str, str] | None:
    """``{name: name}`` with text (or whole-number) keys and values, in the file's order."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise DataError(f"{path}: {key} must be a non-empty mapping, got {value!r}")
    bad = [f"{k!r}: {v!r}" for k, v in value.items() if not (_text(k) and _text(v))]
    if bad:
        raise DataError(f"{path}: {key} must map names to names, got {', '.join(bad)}")
    return {str(k): str(v) for k, v in value.items()}


def _column(path: Path, raw: dict, key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not _text(value):
        raise DataError(f"{path}: {key} must be a column name, got {value!r}")
    return str(value)


def _bids(path: Path, value: object) -> dict[str, tuple[str, ...]] | None:
    """``{entity: value or [values]}``, each value text (``run: 1`` is the label ``1``)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise DataError(f"{path}: bids must be a mapping of {list(BIDS_FILTERS)}, got {value!r}")
    unknown = [str(k) for k in value if k not in BIDS_FILTERS]
    if unknown:
        raise DataError(
            f"{path}: bids: unknown keys {unknown}; valid keys are {list(BIDS_FILTERS)}"
        )
    filters = {}
    for key, chosen in value.items():
        values = chosen if isinstance(chosen, list) else [chosen]
        if not values or not all(_text(v) for v in values):
            raise DataError(
                f"{path}: bids: {key} must be a label or a list of labels, got {chosen!r}"
            )
        filters[key] = tuple(str(v) for v in values)
    return filters


def _epochs(path: Path, value: object) -> float | None:
    if value is None:
        return None
    if not (
        isinstance(value, dict)
        and set(value) == {"from", "length"}
        and value["from"] in EPOCH_SPANS
        and _is_number(value["length"])
        and value["length"] > 0
    ):
        raise DataError(
            f"{path}: epochs must be {{from: {'|'.join(EPOCH_SPANS)}, length: seconds > 0}}, "
            f"got {value!r}"
        )
    return float(value["length"])


def _globs(path: Path, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    globs = [value] if isinstance(value, str) else value
    if not (isinstance(globs, list) and globs and all(isinstance(g, str) and g for g in globs)):
        raise DataError(f"{path}: files must be a glob or a list of globs, got {value!r}")
    outside = [g for g in globs if Path(g).is_absolute() or ".." in Path(g).parts]
    if outside:
        raise DataError(
            f"{path}: files globs are relative to the data folder, inside it; got {outside} "
            "(link the recordings into the folder instead)"
        )
    return tuple(globs)


def _baseline(path: Path, value: object, tmin: float, tmax: float | None) -> Baseline:
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) != {"first_seconds"} or not _is_number(value["first_seconds"]):
            raise DataError(f"{path}: baseline as a mapping must be {{first_seconds: N}}")
        if value["first_seconds"] <= 0:
            raise DataError(f"{path}: baseline first_seconds must be > 0")
        return FirstSeconds(float(value["first_seconds"]))
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(v is None or _is_number(v) for v in value)
    ):
        raise DataError(
            f"{path}: baseline must be null, [start, end] in seconds (either may be null) "
            f"or {{first_seconds: N}}; got {value!r}"
        )
    a, b = (None if v is None else float(v) for v in value)
    # MNE rejects a baseline outside the epoch only once epoching starts, naming no file.
    lo = tmin if a is None else a
    hi = tmax if b is None else b
    if a is not None and a < tmin:
        raise DataError(f"{path}: baseline start {a} is before tmin {tmin}")
    if tmax is not None and b is not None and b > tmax:
        raise DataError(f"{path}: baseline end {b} is after tmax {tmax}")
    if hi is not None and lo > hi:
        raise DataError(f"{path}: baseline start {lo} is after its end {hi}")
    return (a, b)


def _pattern(path: Path, value: object) -> re.Pattern[str] | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"{path}: group_pattern must be a regular expression, got {value!r}")
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise DataError(f"{path}: group_pattern {value!r} is not a valid regex ({exc})") from exc
    if pattern.groups != 1:
        raise DataError(
            f"{path}: group_pattern {value!r} must have exactly one capture group, "
            f"has {pattern.groups}"
        )
    return pattern


# --- Labels, as every reader applies the spec -----------------------------------------------


def resolve_classes(labels: Iterable[str], spec: DatasetSpec) -> tuple[str, ...]:
    """The class order: ``spec.classes`` when given, else the sorted distinct labels.

    Callers check labels against ``spec.classes`` themselves, where they can name the line.
    """
    if spec.classes is not None:
        return spec.classes
    return tuple(sorted(set(labels)))


def one_hot(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """``(n, len(classes))`` float64 one-hot rows; every label must be one of ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    targets = np.zeros((len(labels), len(classes)), dtype=np.float64)
    targets[np.arange(len(labels)), [index[label] for label in labels]] = 1.0
    return targets


def soft_targets(values: np.ndarray, where: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of probabilities or vote counts normalised to sum to 1, and the votes behind them.

    ``votes`` are the row sums when the values are counts (whole numbers, some row above 1),
    else None: probabilities say nothing about how many raters there were. ``where[i]`` names
    row ``i`` in error messages (file and line).
    """
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1)
    if bad.any():
        raise DataError(f"{where[int(np.flatnonzero(bad)[0])]}: class values must be finite, >= 0")
    sums = values.sum(axis=1)
    if (sums <= 0).any():
        raise DataError(f"{where[int(np.flatnonzero(sums <= 0)[0])]}: class values sum to 0")
    counts = bool(np.all(values == np.round(values)) and (sums > 1).any())
    return values / sums[:, None], (sums if counts else None)


def subject_id(file: str, spec: DatasetSpec, where: str) -> str:
    """The subject id that ``spec.group_pattern`` captures from a file's name, or from its path
    relative to the data folder (``file``, with ``/``) when the pattern has a ``/``: headset
    exports name the subject in a folder (``subject3/session1/data.csv``), and a file name
    pattern such as ``^(s\\d+)_`` keeps its anchor."""
    assert spec.group_pattern is not None
    pattern = spec.group_pattern
    name = file if "/" in pattern.pattern else Path(file).name
    match = pattern.search(name)
    if match is None or match.group(1) is None:
        raise DataError(
            f"{where}: file {name!r} does not match group_pattern {pattern.pattern!r} in "
            f"{spec.source}"
        )
    return match.group(1)
