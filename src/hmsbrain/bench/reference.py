"""The yardstick a researcher already has, in the portfolio's own protocol:
``python src/benchmark.py reference --run outputs/portfolio``.

``reference_pipelines.py`` (``../shared/tools/`` beside the repository, or ``--pipelines``) holds
plain scikit-learn / pyRiemann pipelines on whole epochs at the data's own rate: band power +
logistic regression or random forest, tangent space + LR, xDAWN covariances + tangent space + LR,
each after a 0.5-45 Hz band-pass. Here they are fitted on exactly the portfolio's epochs and
folds (its folds file, so the same subjects are held out), and their out-of-fold accuracy,
balanced accuracy and log loss are printed beside every member's and the blend's (nested CV)
from the portfolio's report: the same protocol, side by side.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from hmsbrain.config import load_config
from hmsbrain.data.base import DataError
from hmsbrain.data.dataset import EpochDataset
from hmsbrain.data.sources import open_dataset
from hmsbrain.inference.ensemble import load_run
from hmsbrain.inference.portfolio import figures
from hmsbrain.models.classical import band_pass
from hmsbrain.runs import CONFIG_FILE, PORTFOLIO_FILE, fold_dirs

DEFAULT_PIPELINES = (
    Path(__file__).resolve().parents[4] / "shared" / "tools" / "reference_pipelines.py"
)


def load_pipelines(path: Path) -> ModuleType:
    """``reference_pipelines.py`` at ``path`` as a module; a missing file is a one-line error."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: reference pipelines not found (../shared/tools/reference_pipelines.py "
            "beside the repository; pass --pipelines PATH)"
        )
    spec = importlib.util.spec_from_file_location("reference_pipelines", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pipelines(rp: ModuleType, n_channels: int) -> dict[str, tuple[str, Callable[[], object]]]:
    """The script's pipelines by name: (what they read, "features" or "epochs"; a maker), as its
    ``main`` builds them."""
    from pyriemann.estimation import Covariances, XdawnCovariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline

    found: dict[str, tuple[str, Callable[[], object]]] = {
        "bandpower+LR": ("features", rp.lr),
        "bandpower+RF": ("features", lambda: RandomForestClassifier(500, random_state=0)),
    }
    if n_channels >= 2:
        found["TS+LR"] = (
            "epochs",
            lambda: make_pipeline(Covariances("oas"), TangentSpace(), rp.lr()),
        )
        found["xdawnTS+LR"] = (
            "epochs",
            lambda: make_pipeline(XdawnCovariances(4, estimator="oas"), TangentSpace(), rp.lr()),
        )
    return found


def bench_reference(run: Path, pipelines_path: Path | None = None) -> pd.DataFrame:
    """The reference pipelines on the portfolio ``run``'s epochs and folds, beside its report;
    prints the table and returns it."""
    rp = load_pipelines(pipelines_path or DEFAULT_PIPELINES)
    portfolio = json.loads((run / PORTFOLIO_FILE).read_text())
    report = json.loads((run / "report.json").read_text())
    member = next(m["name"] for m in portfolio["members"] if m["status"] == "trained")
    cfg = load_config(fold_dirs(run / member)[0] / CONFIG_FILE)
    cfg.preprocess.crop_seconds = 0.0  # one row per epoch
    data = open_dataset(cfg, "train")
    if not isinstance(data, EpochDataset):
        raise DataError(f"{data.root}: the reference pipelines read epochs of the generic layouts")
    oof = load_run(run / member).oof.set_index(data.id_column)
    folds = oof.loc[data.epochs.ids, "fold"].to_numpy()
    epochs = data.epochs
    fs = epochs.sfreq
    x = band_pass(epochs.signals, fs, (0.5, min(45, fs / 2 - 1)))  # as the script filters
    assert epochs.targets is not None
    target = epochs.targets.astype(np.float64)
    y = np.asarray(epochs.classes)[target.argmax(axis=1)]
    inputs = {"features": rp.bandpower(x, fs), "epochs": x}
    rows = []
    for name, (reads, make) in pipelines(rp, x.shape[1]).items():
        probs = np.zeros_like(target)
        for k in np.unique(folds):
            held = folds == k
            fitted = make().fit(inputs[reads][~held], y[~held])  # type: ignore[attr-defined]
            columns = [list(epochs.classes).index(c) for c in fitted.classes_]
            probs[np.ix_(held, columns)] = fitted.predict_proba(inputs[reads][held])
        rows.append({"pipeline": name, **figures(target, probs, list(epochs.classes), True)})
    table = pd.DataFrame(rows)
    ours = pd.DataFrame(
        [
            {"pipeline": f"portfolio: {r['member']}", **{k: r.get(k) for k in table.columns[1:]}}
            for r in report["table"]
            if r.get("log_loss") is not None
        ]
    )
    both = pd.concat([table, ours], ignore_index=True)
    print(f"{run}: {len(y)} epochs, {len(np.unique(folds))} folds (the portfolio's own)")
    print(both.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return both
