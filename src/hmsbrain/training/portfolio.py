"""The generic default: a portfolio of members with different inductive biases, trained in the
same folds within a time budget; :mod:`hmsbrain.inference.portfolio` blends them out of fold.

No single recipe wins on EEG nobody here has seen (the docs' measured results; MOABB's
benchmark found the same over 36 datasets), so a new dataset gets several, and the out-of-fold
predictions decide. The members (``portfolio.members``):

- classical (:mod:`hmsbrain.models.classical`), fitted on whole epochs at the recording's own
  rate: seconds each, so they go first;
- networks, each a recipe of ``configs/members/`` applied over the run's config (EEGNet on crops,
  EEGNet on whole epochs, a 1D conv stack on windows), trained by the same loop as any run, in
  the order listed. Each may use an equal share of what is left of ``portfolio.budget_minutes``
  (what is left divided by the networks still to come), so that one slow network cannot starve
  the others; what one does not use passes to the next. A network that does not fit its share
  is shortened (down to ``portfolio.min_epochs``; on a large dataset the first network gets
  that many beyond its share, if the rest of the budget holds them), or skipped, with one log
  line saying which and why;
- the class prior, which needs no training (the blend computes it from the folds).

``<output_dir>/<run_name or "portfolio">/`` holds one run folder per member (``<member>/fold<k>``,
the usual files; a classical fold has ``model.joblib`` for ``model.keras``) and
``portfolio.json``: the members, trained or skipped, their times and the budget.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic

import keras

from hmsbrain.atomic import write_json
from hmsbrain.config import CLASSICAL_MEMBERS, Config, ConfigError, member_config
from hmsbrain.core.predict import cpu_count, predict_rows
from hmsbrain.data.dataset import EpochDataset
from hmsbrain.models.classical import SPATIAL
from hmsbrain.models.runtime import KerasRuntime
from hmsbrain.runs import PORTFOLIO_FILE, SUMMARY_FILE, RunPaths
from hmsbrain.training.batches import EpochBatches
from hmsbrain.training.loop import run_fold
from hmsbrain.training.members import fit_classical_fold
from hmsbrain.training.outputs import RunExistsError
from hmsbrain.training.setup import (
    Experiment,
    build_network,
    fold_raw_stats,
    open_experiment,
    raw_sample_rate,
    setup_fold,
)

log = logging.getLogger(__name__)

PORTFOLIO_RUN = "portfolio"  # the portfolio's folder name when train.run_name is empty
# Units from which the first network that does not fit its share still gets
# portfolio.min_epochs: deep networks need many trials (MOABB's benchmark), so on data this large
# they are what may win, while on a few hundred epochs the classical members usually do.
LARGE_DATASET = 1000
PROBE_STEPS = 3  # timed training steps (after one that builds the graph) of a network's estimate


@dataclass
class Member:
    """What became of one member: trained (how long, how many epochs) or skipped (why)."""

    name: str
    kind: str  # "classical" or "network"
    status: str  # "trained" or "skipped"
    seconds: float = 0.0
    note: str = ""
    epochs: int | None = None  # a network's epochs (fewer than the recipe's when shortened)
    estimate_seconds: float | None = None  # a network's estimated time, before training


@dataclass
class Budget:
    """Seconds left of ``portfolio.budget_minutes`` (0: no limit)."""

    minutes: float
    # Looked up at each call, not bound once: a test may stand a clock of its own in.
    started: float = field(default_factory=lambda: monotonic())

    @property
    def left(self) -> float:
        if self.minutes <= 0:
            return math.inf
        return self.minutes * 60 - (monotonic() - self.started)


def portfolio_root(cfg: Config) -> Path:
    """The portfolio's folder: ``<output_dir>/<run_name or "portfolio">``."""
    return Path(cfg.train.output_dir) / (cfg.train.run_name or PORTFOLIO_RUN)


def uses_portfolio(cfg: Config, overrides: Sequence[str], backbone_flag: bool) -> bool:
    """Whether a training command trains the portfolio: generic data with members listed, and
    no backbone named on the command line (``--backbone`` or a ``model.backbone`` override
    asks for that one network alone)."""
    named = backbone_flag or any(o.split("=", 1)[0].strip() == "model.backbone" for o in overrides)
    return bool(cfg.portfolio.members) and not named


def train_portfolio(
    cfg: Config, folds: Sequence[int], resume: bool = False, overwrite: bool = False
) -> list[Member]:
    """Train folds ``folds`` of every member of ``cfg.portfolio.members`` in the same folds,
    classical members first, networks within the budget; write ``portfolio.json`` and return
    what became of each member."""
    root = portfolio_root(cfg)
    _check_root(root, resume, overwrite)
    budget = Budget(cfg.portfolio.budget_minutes)
    # The runs' own in-run baselines are what the classical members replace, fitted better.
    base = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, baseline=[]))
    exp = open_experiment(base)
    if not isinstance(exp.data, EpochDataset):
        raise ConfigError(
            f"{exp.data.root}: the portfolio trains on epochs of the generic layouts; train "
            "HMS data one backbone at a time (--backbone)"
        )
    for fold in folds:
        exp.check_fold(fold)
    whole = _view(exp, base, crop_seconds=0.0)  # the classical members read whole epochs
    ordered = sorted(cfg.portfolio.members, key=lambda m: m not in CLASSICAL_MEMBERS)
    members: list[Member] = []
    networks: dict[str, str] = {}  # what each trained network is, to skip a duplicate
    for i, name in enumerate(ordered):
        if name in CLASSICAL_MEMBERS:
            member = _classical(whole, name, folds, root, budget)
        else:
            share = budget.left / (len(ordered) - i)  # the networks come last
            member = _network(exp, name, folds, root, resume, budget, share, networks)
        members.append(member)
        print(f"member {describe(member)}", flush=True)
    write_json(
        root / PORTFOLIO_FILE,
        {
            "members": [dataclasses.asdict(m) for m in members],
            "folds": list(folds),
            "n_folds": cfg.folds.n_folds,
            "budget_minutes": cfg.portfolio.budget_minutes,
            "blend": cfg.portfolio.blend,
            "class_weights": cfg.train.class_weights,
            "seconds": round(monotonic() - budget.started, 1),
            "classes": list(exp.data.classes),
            "truth": str(exp.truth_path),
        },
    )
    return members


def describe(member: Member) -> str:
    """One line: the member and what became of it."""
    if member.status == "skipped":
        return f"{member.name}: skipped: {member.note}"
    epochs = f", {member.epochs} epochs" if member.epochs is not None else ""
    note = f" ({member.note})" if member.note else ""
    return f"{member.name}: trained in {member.seconds:.0f} s{epochs}{note}"


def _check_root(root: Path, resume: bool, overwrite: bool) -> None:
    if overwrite:
        shutil.rmtree(root, ignore_errors=True)
    elif root.is_dir() and any(root.iterdir()) and not resume:
        raise RunExistsError(
            f"{root} already holds a portfolio; pass --resume to continue it (finished folds "
            "are kept) or --overwrite to discard it and start again"
        )


def _view(exp: Experiment, cfg: Config, **preprocess: float) -> Experiment:
    """``exp``'s data and folds under ``cfg`` with its preprocessing changed by ``preprocess``
    (the epochs are read once; each recipe cuts and caches its own inputs)."""
    cfg = dataclasses.replace(cfg, preprocess=dataclasses.replace(cfg.preprocess, **preprocess))
    assert isinstance(exp.data, EpochDataset)
    return open_experiment(cfg, exp.data.with_preprocess(cfg.preprocess))


def _done(paths: RunPaths) -> bool:
    return (paths.root / SUMMARY_FILE).is_file()


def _classical(
    exp: Experiment, name: str, folds: Sequence[int], root: Path, budget: Budget
) -> Member:
    assert isinstance(exp.data, EpochDataset)
    if name in SPATIAL and len(exp.data.epochs.channels) < 2:
        return Member(name, "classical", "skipped", note="needs two channels or more")
    if budget.left <= 0:
        return Member(name, "classical", "skipped", note="the budget is spent")
    started = monotonic()
    for fold in folds:
        paths = RunPaths(root / name / f"fold{fold}")
        if not _done(paths):
            fit_classical_fold(exp, name, fold, paths)
    return Member(name, "classical", "trained", round(monotonic() - started, 1))


def _network(
    exp: Experiment,
    name: str,
    folds: Sequence[int],
    root: Path,
    resume: bool,
    budget: Budget,
    share: float,
    networks: dict[str, str],
) -> Member:
    """Network member ``name``: its recipe over the run's config, trained on every fold asked
    for, shortened or skipped to fit ``share`` seconds of the budget; a network the same as one
    already trained on these epochs (whole epochs no longer than the other's crops) is skipped."""
    cfg = member_config(exp.cfg, name)
    cfg.train.output_dir, cfg.train.run_name, cfg.train.baseline = str(root), name, []
    data = exp.data
    assert isinstance(data, EpochDataset)
    if cfg.preprocess.crop_seconds >= data.epoch_seconds:  # crops that long are whole epochs
        cfg.preprocess.crop_seconds = 0.0
    identity = _identity(cfg)
    if identity in networks:
        return Member(
            name,
            "network",
            "skipped",
            note=f"on {data.epoch_seconds:g} s epochs it is the same network as "
            f"{networks[identity]}",
        )
    paths = [RunPaths(root / name / f"fold{fold}") for fold in folds]
    todo = [fold for fold, p in zip(folds, paths, strict=True) if not _done(p)]
    if budget.left <= 0 and todo:
        return Member(name, "network", "skipped", note="the budget is spent")
    started = monotonic()
    mexp = open_experiment(cfg, data.with_preprocess(cfg.preprocess))
    epochs, estimate, note = cfg.train.stage1_epochs, None, ""
    if todo and math.isfinite(share):
        per_epoch, fixed = estimate_seconds(mexp)
        estimate = len(todo) * (fixed + epochs * per_epoch)
        least = cfg.portfolio.min_epochs
        fits = int((share / len(todo) - fixed) // per_epoch)
        large = len(data.epochs.ids) >= LARGE_DATASET and not networks
        if large and fits < least and len(todo) * (fixed + least * per_epoch) <= budget.left:
            # A large dataset's first network: the fewest epochs, beyond its share, rather
            # than none; the networks after it share what is left.
            fits, beyond = least, " (portfolio.min_epochs, beyond its share: a large dataset)"
        else:
            beyond = ""
        if fits < epochs:
            if fits < least:
                return Member(
                    name,
                    "network",
                    "skipped",
                    seconds=round(monotonic() - started, 1),
                    note=f"estimated {estimate / 60:.1f} min for {len(todo)} folds, its share "
                    f"{max(share, 0) / 60:.1f} min of the {max(budget.left, 0) / 60:.1f} min "
                    f"left of the {cfg.portfolio.budget_minutes:g} min budget "
                    "(portfolio.budget_minutes)",
                    estimate_seconds=round(estimate, 1),
                )
            note = f"shortened from {epochs} epochs to fit its share of the budget{beyond}"
            epochs = cfg.train.stage1_epochs = fits  # mexp reads this same config
    networks[identity] = name
    for fold in todo:
        run_fold(mexp, fold, resume=resume)
    keras.backend.clear_session()  # the next member starts from a clean graph and memory
    return Member(
        name,
        "network",
        "trained",
        round(monotonic() - started, 1),
        note,
        epochs,
        None if estimate is None else round(estimate, 1),
    )


def _identity(cfg: Config) -> str:
    """What makes two network members the same: model and preprocessing."""
    return repr((cfg.model, cfg.preprocess))


class _FirstBatches(keras.utils.PyDataset):
    """The first ``n`` batches of an epoch, for timing ``fit`` itself."""

    def __init__(self, batches: EpochBatches, n: int) -> None:
        super().__init__()
        self.batches, self.n = batches, min(n, len(batches))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple:
        return self.batches[index]


def estimate_seconds(exp: Experiment) -> tuple[float, float]:
    """(seconds per epoch, seconds per fold besides its epochs) of one fold of ``exp``'s network,
    timed on fold 0 through ``fit`` itself: one step that builds the graph, then
    :data:`PROBE_STEPS` steps, then one validation batch. An epoch is its training steps and
    its validation; the rest of a fold is building the graph, the OOF and the parity windows.
    The input cache, built once for every fold, is built before the clock starts."""
    cfg, inputs = exp.cfg, exp.inputs
    keras.utils.set_random_seed(cfg.train.seed)
    started = monotonic()
    setup = setup_fold(exp, 0)
    model = build_network(cfg, exp.data, inputs, fold_raw_stats(exp, setup))
    batches = EpochBatches(
        setup.stage_data(0),
        inputs,
        exp.names,
        cfg.train,
        [cfg.train.seed, 0, 0],
        exp.data.montage,
        cfg.train.workers or cpu_count(),
        raw_rate=raw_sample_rate(cfg),
    )
    model.fit(_FirstBatches(batches, 1), verbose=0)
    built = monotonic()
    timed = _FirstBatches(batches, PROBE_STEPS)
    model.fit(timed, verbose=0)
    step_seconds = (monotonic() - built) / len(timed)
    val_rows = setup.val.rows.index.to_numpy()
    batch = min(len(val_rows), cfg.train.val_batch_size)
    runtime = KerasRuntime(model)
    predict_rows(runtime, inputs, val_rows[:batch], batch)  # builds the predict graph
    clock = monotonic()
    predict_rows(runtime, inputs, val_rows[:batch], batch)
    val_seconds = (monotonic() - clock) * math.ceil(len(val_rows) / batch)
    keras.backend.clear_session()
    per_epoch = setup.plan.stage1_steps * step_seconds + val_seconds
    fixed = (built - started) + 2 * val_seconds  # graph building, the OOF and parity windows
    return per_epoch, fixed
