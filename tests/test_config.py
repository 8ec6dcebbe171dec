"""The configuration schema: typos and wrong types must fail loudly, never fall back to defaults.

A misspelt override that silently kept the default would make a run differ from what its
command line says, and nobody would notice until the numbers did not reproduce.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from hmsbrain.config import (
    Config,
    ConfigError,
    PreprocessConfig,
    describe,
    load_config,
    parse_override,
    save_config,
)

REPO = Path(__file__).resolve().parents[1]


def _leaf_fields(cls: type = Config, prefix: str = "") -> list[str]:
    """Dotted names of every non-section field of the schema."""
    names = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            names += _leaf_fields(type(default), f"{prefix}{f.name}.")
        else:
            names.append(f"{prefix}{f.name}")
    return names


def test_defaults():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.data.data_dir == ""  # empty: the demo dataset
    assert (cfg.folds.n_folds, cfg.folds.seed) == (5, 42)
    p = cfg.preprocess
    assert (p.n_fft, p.win_length, p.n_mels, p.n_frames) == (1024, 128, 128, 256)
    assert (p.fmin, p.fmax, p.bandpass_low, p.bandpass_high) == (0.0, 20.0, 0.5, 20.0)
    assert p.use_kaggle_spectrogram is True


def test_overrides_of_every_type():
    cfg = load_config(
        overrides=[
            "preprocess.n_mels=64",  # int
            "preprocess.fmax=25.5",  # float
            "preprocess.bandpass_high=18",  # an int where a float is expected is fine ...
            "preprocess.use_kaggle_spectrogram=false",  # bool
            "data.data_dir=/data/hms",  # str
            "data.demo_dir=2024",  # ... and a number where a string is expected is the text
            "folds.seed=1",
            "folds.seed=2",  # the last override wins
        ]
    )
    p = cfg.preprocess
    assert p.n_mels == 64 and type(p.n_mels) is int
    assert p.fmax == 25.5
    assert p.bandpass_high == 18.0 and type(p.bandpass_high) is float
    assert p.use_kaggle_spectrogram is False
    assert cfg.data.data_dir == "/data/hms"
    assert cfg.data.demo_dir == "2024"
    assert cfg.folds.seed == 2
    # Everything not overridden keeps its default.
    assert p.n_frames == PreprocessConfig().n_frames
    assert cfg.data.demo_seed == Config().data.demo_seed


def test_overrides_apply_after_the_yaml_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preprocess:\n  n_mels: 32\n  n_frames: 64\nfolds:\n  n_folds: 4\n")
    cfg = load_config(path, ["preprocess.n_mels=48"])
    assert (cfg.preprocess.n_mels, cfg.preprocess.n_frames, cfg.folds.n_folds) == (48, 64, 4)


@pytest.mark.parametrize(
    "override, key",
    [
        ("preprocess.n_mel=64", "preprocess.n_mel"),
        ("preprocesss.n_mels=64", "preprocesss"),
        ("folds.n_folds.x=3", "folds.n_folds"),
    ],
)
def test_unknown_override_key_names_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(overrides=[override])


@pytest.mark.parametrize(
    "override, key",
    [
        ("preprocess.n_mels=abc", "preprocess.n_mels"),
        ("preprocess.n_mels=1.5", "preprocess.n_mels"),
        ("folds.n_folds=true", "folds.n_folds"),  # a bool is not an int here
        ("preprocess.fmax=high", "preprocess.fmax"),
        ("preprocess.use_kaggle_spectrogram=3", "preprocess.use_kaggle_spectrogram"),
        ("data.data_dir=[a, b]", "data.data_dir"),
        ("preprocess=3", "preprocess"),  # a whole section replaced by a value
    ],
)
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(overrides=[override])


@pytest.mark.parametrize("override", ["preprocess.n_mels", "preprocess.=3", "=3"])
def test_malformed_override(override):
    with pytest.raises(ConfigError):
        load_config(overrides=[override])


def test_yaml_with_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("preprocess:\n  n_mels: 32\n  top_bd: 60\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))) as err:
        load_config(path)
    assert "preprocess.top_bd" in str(err.value)


def test_yaml_with_wrong_type_names_file_and_key(tmp_path):
    path = tmp_path / "type.yaml"
    path.write_text("folds:\n  n_folds: five\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))) as err:
        load_config(path)
    assert "folds.n_folds" in str(err.value)


def test_missing_or_invalid_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("preprocess: [unclosed\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


def test_empty_yaml_file_means_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == Config()


def test_save_then_load_round_trips(tmp_path):
    cfg = load_config(
        overrides=[
            "preprocess.n_mels=40",
            "preprocess.fmax=22.5",
            "preprocess.use_kaggle_spectrogram=false",
            "data.data_dir=/x/y",
            "folds.seed=3",
        ]
    )
    path = tmp_path / "resolved.yaml"
    save_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert again != Config()


def test_shipped_configs_validate():
    """Every YAML the project ships must load against the current schema."""
    paths = sorted((REPO / "configs").glob("*.yaml"))
    assert paths, "no configs/*.yaml found"
    for path in paths:
        load_config(path)


def test_describe_has_one_meaningful_line_per_field():
    lines = describe()
    leaves = _leaf_fields()
    assert len(lines) == len(leaves)
    pattern = re.compile(r"^(?P<key>[\w.]+) \((?P<default>.*)\): (?P<help>.+)$")
    keys = []
    for line in lines:
        match = pattern.match(line)
        assert match, line
        assert match["help"].strip(), line
        keys.append(match["key"])
    assert keys == leaves
    assert "preprocess.n_mels (128): " in "\n".join(lines)


@pytest.mark.parametrize("source", ["parse_override", "override", "yaml"])
def test_scientific_notation_floats(tmp_path, source):
    if source == "parse_override":
        assert parse_override("train.lr=1e-3") == {"train": {"lr": 0.001}}
        return
    if source == "override":
        cfg = load_config(overrides=["preprocess.bandpass_low=5e-1"])
    else:
        path = tmp_path / "sci.yaml"
        path.write_text("preprocess:\n  bandpass_low: 5e-1\n")
        cfg = load_config(path)
    assert cfg.preprocess.bandpass_low == 0.5
