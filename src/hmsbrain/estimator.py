"""``hmsbrain.EEGClassifier``: the command line's portfolio as a scikit-learn classifier.

``fit(X, y)`` runs what ``python src/train.py --data-dir PATH --fold all`` runs on generic
data, with the same recipe (``configs/eeg_cpu.yaml``), preprocessing, members and blend: it
writes the arrays as the arrays layout (``X.npy``, ``y.npy``, ``groups.npy``,
``dataset.yaml``) into a folder it owns, trains every member in the same folds there
(:func:`hmsbrain.training.portfolio.train_portfolio`) and blends them out of fold
(:func:`hmsbrain.inference.portfolio.blend_portfolio`). ``predict_proba`` predicts new arrays
as ``predict.py`` predicts a portfolio (:func:`hmsbrain.inference.portfolio.predict_portfolio`).

X is ``(epochs, channels, times)``, or an ``mne.Epochs``. A 2-D X is refused rather than read
as one channel: EEG estimators (MNE's decoding, pyRiemann, braindecode) take 3-D arrays, and a
2-D array is far more often a feature matrix passed by mistake than a one-channel recording.

The fitted portfolio (every member's fold models, the blend) is kept inside the estimator as a
zip archive (``portfolio_``), so a fitted estimator pickles, and predicts in another process,
with no folder left behind; each prediction unpacks it into a temporary folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from hmsbrain.config import GENERIC_RECIPE, Config, load_config, recipe_path
from hmsbrain.data.arrays import GROUPS_FILE, X_FILE, Y_FILE
from hmsbrain.data.spec import SPEC_FILE, UNITS
from hmsbrain.inference.portfolio import (
    blend_portfolio,
    decision_scale,
    predict_portfolio,
)
from hmsbrain.runs import BLEND_FILE
from hmsbrain.training.portfolio import portfolio_root, train_portfolio

# The folders the estimator owns under its working folder (``output_dir`` or a temporary one).
DATA, PREDICT, CACHE, RUN = "data", "predict", "cache", "portfolio"
# Config keys the estimator sets itself: an override naming one is refused.
OWNED = ("data.data_dir", "data.layout", "data.cache_dir", "train.output_dir", "train.run_name")


class EEGClassifier(ClassifierMixin, BaseEstimator):
    """The hmsbrain portfolio (classical members and networks trained in the same folds,
    blended out of fold) as a scikit-learn classifier of EEG epochs.

    Parameters
    ----------
    sfreq : sampling rate of X in Hz; required for arrays, taken from ``mne.Epochs``.
    ch_names : channel names of X (default ``ch1``, ``ch2``...); 10-20 names let the recipe use
        its montage. Taken from ``mne.Epochs``.
    units : ``"uV"`` (default) or ``"V"``: the unit of X's values (MNE and MOABB arrays are in
        volts). ``mne.Epochs`` are read in microvolts whatever this says.
    members : the portfolio's members (default: the recipe's ``portfolio.members``).
    budget_minutes : the portfolio's time budget (default: the recipe's; 0: no limit).
    n_folds : the folds the members are trained and blended in (default: the recipe's).
    overrides : ``section.key=value`` config overrides, as on the command line.
    random_state : seed of the folds and of training (default: the recipe's seeds).
    output_dir : keep what ``fit`` writes (the training arrays, the portfolio's run folders,
        ``portfolio/report.md``) in this folder; default: a temporary folder, removed after
        ``fit``. Its ``data``, ``cache`` and ``portfolio`` sub-folders are replaced at each fit.
    verbose : print the portfolio's lines (each member, the report), as the command line does.

    Attributes
    ----------
    classes_ : the labels, sorted; ``predict_proba``'s columns are in this order.
    sfreq_, ch_names_ : the rate and channels of the training epochs.
    report_ : the portfolio's report table (every member's out-of-fold figures, its weight; the
        blend by nested CV; the class prior; chance).
    portfolio_ : the fitted portfolio's run folder, as zip bytes.
    """

    def __init__(
        self,
        sfreq: float | None = None,
        ch_names: Sequence[str] | None = None,
        units: str = "uV",
        members: Sequence[str] | None = None,
        budget_minutes: float | None = None,
        n_folds: int | None = None,
        overrides: Sequence[str] = (),
        random_state: int | None = None,
        output_dir: str | Path | None = None,
        verbose: bool = False,
    ) -> None:
        self.sfreq = sfreq
        self.ch_names = ch_names
        self.units = units
        self.members = members
        self.budget_minutes = budget_minutes
        self.n_folds = n_folds
        self.overrides = overrides
        self.random_state = random_state
        self.output_dir = output_dir
        self.verbose = verbose

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags

    def fit(self, X: Any, y: Any = None, groups: Any = None) -> EEGClassifier:
        """Train the portfolio on epochs ``X`` and labels ``y`` (for ``mne.Epochs``, default:
        each epoch's event name); ``groups`` (subjects) keep each group in one fold (default:
        each epoch is its own group)."""
        signals, sfreq, channels, labels = self._read(X, y, fitted=False)
        if labels is None:
            raise ValueError("y is required for arrays (only mne.Epochs carry their labels)")
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError(f"y must be one label per epoch, got shape {labels.shape}")
        check_classification_targets(labels)
        if len(labels) != len(signals):
            raise ValueError(f"X has {len(signals)} epochs but y has {len(labels)} labels")
        classes, index = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y must hold at least two classes, got {classes.tolist()}")
        names = [str(c) for c in classes]
        if len(set(names)) < len(names):
            raise ValueError(f"the classes {classes.tolist()} are not distinct as text")
        if groups is not None:
            groups = np.asarray(groups).astype(str)
            if groups.shape != (len(signals),):
                raise ValueError(
                    f"groups must be one id per epoch ({len(signals)}), got shape {groups.shape}"
                )
        work, owned = self._workdir()
        try:
            data = work / DATA
            _write_arrays(data, signals, sfreq, channels, self._units(X), names, index, groups)
            cfg = self._config(work, data)
            with self._quiet():
                train_portfolio(cfg, range(cfg.folds.n_folds), overwrite=True)
                result = blend_portfolio(portfolio_root(cfg))
            self.portfolio_ = _zip(portfolio_root(cfg))
        finally:
            if owned:
                shutil.rmtree(work, ignore_errors=True)
        self.classes_ = classes
        self.sfreq_, self.ch_names_ = sfreq, list(channels)
        self.report_ = result.table
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """The blend's calibrated class probabilities, ``(epochs, len(classes_))``."""
        check_is_fitted(self, "portfolio_")
        signals, sfreq, channels, _ = self._read(X, None, fitted=True)
        with tempfile.TemporaryDirectory(prefix="hmsbrain-predict-") as tmp:
            work = Path(tmp)
            with zipfile.ZipFile(io.BytesIO(self.portfolio_)) as archive:
                archive.extractall(work / RUN)
            data = work / PREDICT
            _write_arrays(data, signals, sfreq, channels, self._units(X), None, None, None)
            with self._quiet():
                result = predict_portfolio(
                    work / RUN, str(data), runtime="keras", cache_dir=str(work / CACHE)
                )
            frame = result.frame.set_index(result.frame.columns[0])
            ids = [f"epoch-{i}" for i in range(len(signals))]
            return frame.loc[ids, [str(c) for c in self.classes_]].to_numpy(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The label of each epoch, decided as the portfolio's report decides it (with
        ``train.class_weights=balanced``, ``argmax p / class prior``)."""
        probs = self.predict_proba(X)
        with zipfile.ZipFile(io.BytesIO(self.portfolio_)) as archive:
            blend = json.loads(archive.read(BLEND_FILE))
        scale = decision_scale(blend["class_weights"], np.asarray(blend["class_prior"]))
        decided = probs if scale is None else probs * scale
        return self.classes_[decided.argmax(axis=1)]

    def _read(self, X: Any, y: Any, fitted: bool) -> tuple[np.ndarray, float, tuple[str, ...], Any]:
        """``(signals, sfreq, channels, labels)`` of arrays or ``mne.Epochs``, checked."""
        if _is_epochs(X):
            picked = X.copy().pick("data")  # EEG and the like; no stimulus or EOG channels
            signals = picked.get_data(units="uV").astype(np.float32)
            sfreq, channels = float(X.info["sfreq"]), tuple(picked.ch_names)
            if y is None:
                names = {code: name for name, code in X.event_id.items()}
                y = np.array([names[code] for code in X.events[:, 2]])
            for given, found, what in (
                (self.sfreq, sfreq, "sfreq"),
                (self.ch_names, channels, "ch_names"),
            ):
                if given is not None and not _same(given, found):
                    raise ValueError(f"{what}={given!r} contradicts the Epochs' {found!r}")
            if fitted and len(channels) != len(self.ch_names_):
                raise ValueError(
                    f"the Epochs have {len(channels)} channels; the estimator was fitted on "
                    f"{len(self.ch_names_)}: {self.ch_names_}"
                )
        else:
            signals = _array(X)
            sfreq, channels = self._array_meta(signals, fitted)
        return signals, sfreq, channels, y

    def _array_meta(self, signals: np.ndarray, fitted: bool) -> tuple[float, tuple[str, ...]]:
        """The rate and channel names of an array X: the constructor's when fitting, the
        fitted ones when predicting (an array carries neither)."""
        n = signals.shape[1]
        if fitted:
            if n != len(self.ch_names_):
                raise ValueError(
                    f"X has {n} channels; the estimator was fitted on {len(self.ch_names_)}: "
                    f"{self.ch_names_}"
                )
            return self.sfreq_, tuple(self.ch_names_)
        if self.sfreq is None or not self.sfreq > 0:
            raise ValueError(f"sfreq must be the sampling rate of X in Hz, got {self.sfreq!r}")
        channels = tuple(self.ch_names or (f"ch{i + 1}" for i in range(n)))
        if len(channels) != n:
            raise ValueError(f"X has {n} channels but ch_names names {len(channels)}")
        return float(self.sfreq), channels

    def _units(self, X: Any) -> str:
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {list(UNITS)}, got {self.units!r}")
        return "uV" if _is_epochs(X) else self.units

    def _workdir(self) -> tuple[Path, bool]:
        """The working folder, and whether it is a temporary one to remove."""
        if self.output_dir is None:
            return Path(tempfile.mkdtemp(prefix="hmsbrain-fit-")), True
        work = Path(self.output_dir)
        for name in (DATA, CACHE, RUN):  # a refit never reads the last fit's folds or inputs
            shutil.rmtree(work / name, ignore_errors=True)
        return work, False

    def _config(self, work: Path, data: Path) -> Config:
        """The command line's generic recipe under the overrides and the constructor's
        settings, reading ``data`` and writing under ``work``."""
        overrides = list(self.overrides)
        named = {o.split("=", 1)[0].strip() for o in overrides}
        own = {
            "portfolio.members": None if self.members is None else f"[{','.join(self.members)}]",
            "portfolio.budget_minutes": self.budget_minutes,
            "folds.n_folds": self.n_folds,
            "folds.seed": self.random_state,
            "train.seed": self.random_state,
        }
        own = {k: v for k, v in own.items() if v is not None}
        clash = sorted(named & {*OWNED, *own})
        if clash:
            raise ValueError(
                f"overrides set {clash}, which the estimator sets itself (its parameters, its "
                "folders: output_dir)"
            )
        own |= {
            "data.data_dir": data,
            "data.layout": "arrays",
            "data.cache_dir": work / CACHE,
            "train.output_dir": work,
            "train.run_name": RUN,
        }
        overrides += [f"{k}={v}" for k, v in own.items()]
        cfg = load_config(recipe_path(GENERIC_RECIPE), overrides)
        if not cfg.portfolio.members:
            raise ValueError("portfolio.members is empty: the estimator trains the portfolio")
        return cfg

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """The portfolio prints what the command line shows; silent unless ``verbose``."""
        if self.verbose:
            yield
            return
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def _is_epochs(X: Any) -> bool:
    # MNE is imported only where Epochs may be given: arrays need no MNE.
    try:
        from mne import BaseEpochs
    except ImportError:
        return False
    return isinstance(X, BaseEpochs)


def _same(given: Any, found: Any) -> bool:
    if isinstance(found, tuple):
        return list(given) == list(found)
    return float(given) == float(found)


def _array(X: Any) -> np.ndarray:
    """X as float32 ``(epochs, channels, times)``, or a one-line ValueError."""
    if isinstance(X, pd.DataFrame):
        raise ValueError("X must be (epochs, channels, times) numbers, got a DataFrame")
    try:
        signals = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must be (epochs, channels, times) numbers ({exc})") from None
    if signals.ndim == 2:
        raise ValueError(
            f"X must be 3-D (epochs, channels, times), got 2-D {signals.shape}; for one "
            "channel pass X[:, np.newaxis, :]"
        )
    if signals.ndim != 3 or 0 in signals.shape:
        raise ValueError(f"X must be 3-D (epochs, channels, times), got shape {signals.shape}")
    if not np.isfinite(signals).all():
        raise ValueError("X contains NaN or infinity")
    return signals


def _write_arrays(
    root: Path,
    signals: np.ndarray,
    sfreq: float,
    channels: Sequence[str],
    units: str,
    classes: list[str] | None,
    labels: np.ndarray | None,
    groups: np.ndarray | None,
) -> None:
    """``root`` as the arrays layout: ``X.npy``, ``dataset.yaml`` and, for training,
    ``y.npy`` (indices into ``classes``) and ``groups.npy`` (default: one group per epoch,
    as a plain stratified CV has)."""
    root.mkdir(parents=True, exist_ok=True)
    spec: dict[str, object] = {
        "layout": "arrays",
        "sample_rate": float(sfreq),
        "channels": list(channels),
        "units": units,
    }
    np.save(root / X_FILE, signals)
    if classes is not None and labels is not None:
        spec["classes"] = classes
        np.save(root / Y_FILE, labels.astype(np.int64))
        if groups is None:
            groups = np.array([f"epoch-{i}" for i in range(len(signals))])
        np.save(root / GROUPS_FILE, groups)
    (root / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))


def _zip(root: Path) -> bytes:
    """Every file under ``root``, as zip bytes (paths relative to ``root``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()
