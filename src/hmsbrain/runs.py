"""The layout of a run folder, ``<output_dir>/<run name>/fold<k>/``, shared by every stage.

Training writes a fold's files, prediction and export read and add to them, ensembling and
packaging read them; the names live here once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hmsbrain.config import Config, load_config

KERAS_FILE = "model.keras"
CLASSICAL_FILE = "model.joblib"  # a classical portfolio member's fitted pipeline
MODEL_FILES = (KERAS_FILE, CLASSICAL_FILE)  # a fold is trained when it holds one of these
PORTFOLIO_FILE = "portfolio.json"  # a portfolio's members: trained, skipped, times
BLEND_FILE = "blend.json"  # a portfolio's fitted blend: calibrations, weights, nested CV
ONNX_FILE = "model.onnx"
EXPORT_REPORT = "export.json"  # the export's parity figures
PARITY_INPUTS = "parity.npz"  # the preprocessed windows the export was checked on
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
OOF_FILE = "oof.parquet"
# Every baseline name of train.baseline (config.Baseline), as tables and reports call it.
BASELINE_LABELS: dict[str, str] = {
    "bandpower": "band-power baseline",
    "tangent": "tangent-space baseline",
}


def baseline_figures(baselines: dict[str, dict], key: str, spec: str) -> list[str]:
    """``["band-power baseline 0.774", ...]``: figure ``key`` of each baseline of a summary or
    report (``{name: figures}``), formatted with ``spec``."""
    return [f"{BASELINE_LABELS[name]} {f[key]:{spec}}" for name, f in baselines.items()]


def baseline_oof_file(name: str) -> str:
    """The OOF file of baseline ``name`` in a fold's folder: ``baseline_<name>_oof.parquet``."""
    return f"baseline_{name}_oof.parquet"


@dataclass
class RunPaths:
    """The files of one fold's folder."""

    root: Path

    def __getattr__(self, name: str) -> Path:
        files = {
            "model": KERAS_FILE,
            "config": CONFIG_FILE,
            "history": "history.csv",
            "curves": "curves.png",
            "oof": OOF_FILE,
            "summary": SUMMARY_FILE,
            "classical": CLASSICAL_FILE,
            "checkpoint": "checkpoint/last.keras",
            "state": "checkpoint/state.json",
            "best": "checkpoint/best.keras",
        }
        if name not in files:
            raise AttributeError(name)
        return self.root / files[name]

    def baseline_oof(self, name: str) -> Path:
        return self.root / baseline_oof_file(name)


def run_root(cfg: Config) -> Path:
    """The run folder of ``cfg`` (its name defaults to the backbone's)."""
    return Path(cfg.train.output_dir) / (cfg.train.run_name or cfg.model.backbone)


def run_dir(cfg: Config, fold: int) -> Path:
    return run_root(cfg) / f"fold{fold}"


def fold_dirs(run: str | Path) -> list[Path]:
    """The trained folds of a run folder (a network's or a classical portfolio member's), in
    fold order."""
    run = Path(run)
    found = sorted({p.parent for name in MODEL_FILES for p in run.glob(f"fold*/{name}")})
    if not found:
        raise FileNotFoundError(f"{run}: no fold*/{KERAS_FILE}; train the run first")
    return found


def is_portfolio(run: str | Path) -> bool:
    """Whether ``run`` is a portfolio's folder (its members' runs inside) rather than a run."""
    return (Path(run) / PORTFOLIO_FILE).is_file()


def portfolio_members(run: str | Path) -> list[Path]:
    """The trained members' run folders of a portfolio, or ``[run]`` for a run."""
    run = Path(run)
    if not is_portfolio(run):
        return [run]
    members = json.loads((run / PORTFOLIO_FILE).read_text())["members"]
    return [run / m["name"] for m in members if m["status"] == "trained"]


def run_config(run: str | Path) -> Config:
    """The config of a run's first fold (every fold of a run shares its recipe)."""
    return load_config(fold_dirs(run)[0] / CONFIG_FILE)


def fold_summary(fold: Path) -> dict:
    return json.loads((Path(fold) / SUMMARY_FILE).read_text())
