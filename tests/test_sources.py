"""Data sources as peers: every registered source, its demos, detection and ``data.layout``.

The per-source tests are parametrized over the registry itself, so a new source is covered by
being registered: its demos generate, its detection claims its own demos and no other source's,
and it opens them as labelled datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import yaml

from hmsbrain.config import Config, ConfigError, Layout
from hmsbrain.data import registry
from hmsbrain.data.base import DataError, Epochs
from hmsbrain.data.dataset import Dataset, EpochDataset
from hmsbrain.data.layouts import layout_sources
from hmsbrain.data.registry import (
    Source,
    all_sources,
    demo_folder,
    demo_name,
    detect_source,
    get_source,
    register_source,
    source_for,
)
from hmsbrain.data.sources import is_hms_data, open_dataset
from hmsbrain.data.spec import LAYOUTS

SOURCES = all_sources()
DEMOS = [(source.name, demo) for source in SOURCES for demo in source.demos]
SEED = 0
# Demos too big to generate here, and the conftest fixture with a small one from the same
# generator: the full HMS demo is 320 MB and 30 s.
SMALL_DEMOS = {"hms": "small_demo"}


def config(data_dir: Path | str, tmp_path: Path, layout: str = "auto") -> Config:
    cfg = Config()
    cfg.data.data_dir = str(data_dir)
    cfg.data.layout = layout
    cfg.data.demo_dir = str(tmp_path / "demo")
    cfg.data.cache_dir = str(tmp_path / "cache")
    return cfg


@pytest.fixture(scope="module")
def demo_dirs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Every registered demo, generated once for this module."""
    base = tmp_path_factory.mktemp("source_demos")
    dirs: dict[str, Path] = {}
    for source_name, demo in DEMOS:
        if demo in SMALL_DEMOS:
            dirs[demo] = request.getfixturevalue(SMALL_DEMOS[demo])
        else:
            dirs[demo] = get_source(source_name).demos[demo](base / demo, SEED)
    return dirs


def check_labelled(data: Dataset) -> None:
    """Rows with a unit id, a group and one target per class; every target a distribution."""
    assert len(data) > 0 and data.labelled
    columns = [data.id_column, "group", *data.classes]
    assert set(columns) <= set(data.rows.columns)
    assert not data.rows[columns].isna().any().any()
    np.testing.assert_allclose(data.row_targets().sum(axis=1), 1.0, rtol=1e-6)
    assert len(data.fold_units()) == data.rows[data.id_column].nunique()


# --- The registry --------------------------------------------------------------------------------


def test_sources_are_the_config_names_in_detection_order() -> None:
    # data.layout's documented values; a new source must be added to config.py's list too.
    assert [s.name for s in SOURCES] == [
        "hms",
        "bids",
        "markers",
        "arrays",
        "table",
        "epochs",
        "recordings",
        "folders",
    ]
    assert {s.recipe for s in SOURCES} == {"hms", "generic"}
    # config.py and dataset.yaml keep their own lists of the names (they load below the
    # registry); both must name every source.
    assert set(get_args(Layout)) == {"auto", *(s.name for s in SOURCES)}
    assert set(LAYOUTS) == set(layout_sources())
    with pytest.raises(ConfigError, match=r"data.layout='grid' is not one of \['auto', 'hms'"):
        get_source("grid")


def test_an_empty_data_dir_is_the_default_demo_generated_into_demo_dir_itself() -> None:
    assert demo_name("") == registry.default_demo() == "hms"
    assert demo_name("demo:emotiv") == "emotiv" and demo_name("data/eeg") is None
    assert demo_folder("hms", "data/demo") == Path("data/demo")
    assert demo_folder("emotiv", "data/demo") == Path("data/demo-emotiv")


def test_names_and_demos_are_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    with pytest.raises(ValueError, match="'arrays': its name or a demo name is taken"):
        register_source(Toy(name="arrays", priority=1, signs="-"))
    with pytest.raises(ValueError, match="'toy': its name or a demo name is taken"):
        register_source(Toy(name="toy", priority=1, signs="-", demos={"emotiv": make_toy}))
    with pytest.raises(ValueError, match="'toy': default demo"):
        register_source(Toy(name="toy", priority=1, signs="-", demos=TOY_DEMO, default_demo="x"))


# --- Every source and its demos ----------------------------------------------------------------


@pytest.mark.parametrize(("owner", "demo"), DEMOS)
def test_only_its_own_source_detects_a_demo(owner: str, demo: str, demo_dirs) -> None:
    root = demo_dirs[demo]
    claims = [s.name for s in SOURCES if s.detect(root)]
    assert claims == [owner]
    assert detect_source(root).name == owner
    assert source_for(f"demo:{demo}").name == owner == source_for(str(root)).name
    assert is_hms_data(f"demo:{demo}") == (owner == "hms") == is_hms_data(str(root))


@pytest.mark.parametrize(("owner", "demo"), DEMOS)
def test_a_demo_opens_as_a_labelled_dataset(
    owner: str, demo: str, demo_dirs, tmp_path: Path
) -> None:
    root = demo_dirs[demo]
    data = open_dataset(config(root, tmp_path))
    check_labelled(data)
    named = open_dataset(config(root, tmp_path, layout=owner))
    assert type(named) is type(data) and named.rows.equals(data.rows)


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_a_folder_that_does_not_fit_the_named_source_is_refused(
    source: Source, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "notes.md").write_text("no data here")
    assert not source.detect(root)
    with pytest.raises(DataError) as err:
        open_dataset(config(root, tmp_path, layout=source.name))
    message = str(err.value)
    assert message.startswith(f"{root}: not in the {source.name} layout") and "\n" not in message


def test_a_folder_that_fits_no_source_names_every_sign(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot tell the data layout") as err:
        source_for(str(tmp_path))
    assert all(f"{s.signs} ({s.name})" in str(err.value) for s in SOURCES)


# --- data.layout and dataset.yaml -----------------------------------------------------------------


def arrays_and_folders(root: Path) -> Path:
    """A folder with the signs of two layouts: 4 epochs in arrays, 2 in class folders."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    np.save(root / "X.npy", rng.normal(0, 10, (4, 2, 64)).astype(np.float32))
    np.save(root / "y.npy", np.array(["a", "b", "a", "b"]))
    for label in ("left", "right"):
        (root / label).mkdir()
        np.save(root / label / "e.npy", rng.normal(0, 10, (2, 64)).astype(np.float32))
    (root / "dataset.yaml").write_text(yaml.safe_dump({"sample_rate": 64}))
    return root


def test_data_layout_picks_the_generic_layout_over_detection(tmp_path: Path) -> None:
    root = arrays_and_folders(tmp_path / "data")
    detected = open_dataset(config(root, tmp_path))
    assert detected.classes == ("a", "b") and len(detected) == 4
    named = open_dataset(config(root, tmp_path, layout="folders"))
    assert named.classes == ("left", "right") and len(named) == 2
    with pytest.raises(DataError, match=rf"^{root}: not in the table layout .*: no epochs.csv$"):
        open_dataset(config(root, tmp_path, layout="table"))


def test_dataset_yaml_layout_must_agree_with_data_layout(tmp_path: Path) -> None:
    root = arrays_and_folders(tmp_path / "data")
    (root / "dataset.yaml").write_text(yaml.safe_dump({"sample_rate": 64, "layout": "folders"}))
    assert detect_source(root).name == "folders"  # dataset.yaml outranks the arrays' signs
    assert open_dataset(config(root, tmp_path)).classes == ("left", "right")
    with pytest.raises(
        DataError, match=r"dataset.yaml: layout: folders contradicts data.layout=ar"
    ):
        open_dataset(config(root, tmp_path, layout="arrays"))
    (root / "left" / "e.npy").unlink()
    (root / "right" / "e.npy").unlink()
    with pytest.raises(DataError, match=r"folders layout that .*dataset.yaml names: no class sub"):
        open_dataset(config(root, tmp_path))


# --- A new source: one class and one registration -------------------------------------------------


TOY_FILE = "toy.json"


def make_toy(root: Path, seed: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / TOY_FILE).write_text(str(seed))
    return root


TOY_DEMO = {"toydemo": make_toy}


@dataclass(frozen=True, kw_only=True)
class Toy(Source):
    """Three epochs of zeros, one per class, in any folder holding ``toy.json``."""

    def detect(self, root: Path) -> bool:
        return (root / TOY_FILE).is_file()

    def open(
        self, cfg: Config, root: Path, split: str, window_seconds: float, fallback: bool
    ) -> Dataset:
        if not self.detect(root):
            raise DataError(f"{root}: not in the toy layout: no {TOY_FILE}")
        epochs = Epochs(
            signals=np.zeros((3, 1, 32), np.float32),
            sfreq=32.0,
            channels=("Cz",),
            files=np.array([TOY_FILE] * 3),
            ids=np.array(["e0", "e1", "e2"]),
            classes=("x", "y", "z"),
            targets=np.eye(3),
        )
        return EpochDataset(epochs, root, split, cfg.preprocess)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Source:
    """The toy source registered for one test (the registry is restored afterwards)."""
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    return register_source(Toy(name="toy", priority=45, signs=TOY_FILE, demos=TOY_DEMO))


def test_a_registered_source_is_chosen_by_data_layout_and_by_detection(
    toy: Source, tmp_path: Path
) -> None:
    own = make_toy(tmp_path / "own", 1)
    assert detect_source(own) is toy and source_for(str(own)).recipe == "generic"
    check_labelled(open_dataset(config(own, tmp_path)))
    both = arrays_and_folders(tmp_path / "both")
    make_toy(both, 1)
    assert open_dataset(config(both, tmp_path)).classes == ("a", "b")  # arrays comes first
    assert open_dataset(config(both, tmp_path, layout="toy")).classes == ("x", "y", "z")
    demo = open_dataset(config("demo:toydemo", tmp_path))
    assert demo.root == tmp_path / "demo-toydemo" and demo.classes == ("x", "y", "z")
