"""The documentation cannot drift from the code: every command shown in README.md and docs/ is
either checked here against the command lines it names (flags, config keys, recipe files), or
listed below with the test or script that runs it. The config-key page is the schema's, and CI
runs exactly the README's test command."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hmsbrain.__main__ import COMMANDS
from hmsbrain.config import ConfigError, load_config
from tests.test_markers import N170_YAML

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
sys.path.insert(0, str(REPO / "tools"))
import docs_reference  # noqa: E402 (tools/ is no package: put on the path above)

# Shell variables of the docs' command blocks, as a reader would set them: each command is
# checked with these values (a member recipe for $m, the runs it makes for $RUNS).
VARIABLES = {
    "$DATA": "/path/to/hms-harmful-brain-activity-classification",
    "$m": "effnetv2",
    "$RUNS": "outputs/effnetv2 outputs/wavenet",
    "$OLDPWD": ".",
    "$PWD": ".",
}
# Every command of a ```bash block that is not a project command line, by how it starts, with
# what runs it. A new kind of command in the docs fails test_every_command_is_covered until it
# is added here (or is a project command, checked by parsing).
COVERED = {
    "python -m pip install": ".ci/run (the README's test command)",
    "ruff check": ".ci/run",
    "ruff format": ".ci/run",
    "python -m mkdocs build": ".ci/run",
    "python -m pytest": ".ci/run",
    "kaggle datasets create": "printed by package.py: tests/test_kernel.py checks the line",
    "kaggle kernels push": "printed by package.py: tests/test_kernel.py checks the line",
    "pip download onnxruntime": "hmsbrain/hms/wheels.py runs it; tests/test_kaggle_image.py",
    "REPO=$PWD": "shell variable: the checkout, for the notebook's path below",
    "mkdir -p /tmp/kaggle/input": "tests/test_kernel.py runs the notebook from such a tree",
    "ln -s": "tests/test_kernel.py (the Kaggle tree), tests/test_markers.py (the N170 links)",
    "cd /tmp/kaggle/working": "tests/test_kernel.py and test_kaggle_image.py",
    "HMS_INPUT_DIR=/tmp/kaggle/input python": "tests/test_kernel.py and test_kaggle_image.py",
    "mkdir N170": "tests/test_markers.py: link_n170 makes the same tree of links",
    "(cd ../shared/data/eegnb-n170": "tests/test_markers.py: link_n170",
    "for f in */*/*.csv": "tests/test_markers.py: link_n170",
    'mkdir -p "$OLDPWD/N170': "tests/test_markers.py: link_n170",
    "srun bash -c": "tests/test_multihost.py runs the same command as 2 processes on 127.0.0.1",
    "export KERAS_": "tests/test_distributed.py (data_parallel on one host, two JAX devices)",
    "DATA=": "shell variable: $DATA above",
    "MEMBERS=": "shell variable: test_the_member_loop_names_recipes",
    "stft_signals_effnetv2": "the rest of MEMBERS: test_the_member_loop_names_recipes",
    "for m in $MEMBERS": "shell loop over project commands (each checked by parsing)",
    "done": "end of a shell loop",
    "RUNS=$(for m in $MEMBERS": "shell variable: $RUNS above",
    "grep -r": "test_the_counting_commands_run",
    "PYTHONPATH=src python -c": "test_the_counting_commands_run",
}
# A project command, after any environment variables (KERAS_BACKEND=jax python src/train.py).
PROJECT = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(?:python src/(\w+)\.py|hmsbrain (\w+))(?:\s|$)")
# Optional parts of a synopsis, `[--config FILE]`: a "[" after a space, with no quote inside
# (a quoted list value, 'data.min_votes=[10]', is an argument).
OPTIONAL = re.compile(r"\s\[[^\]'\"]*\]")


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^ *```bash\n(.*?)^ *```", text, flags=re.MULTILINE | re.DOTALL)


def block_commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments dropped, split at `&&`."""
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line.strip())  # a comment after a command
        if line and not line.startswith("#"):
            commands += [part.strip() for part in line.split("&&")]
    return commands


def inline_commands(text: str) -> list[str]:
    """Project commands in inline code (`python src/train.py ...`), possibly across a line."""
    spans = re.findall(r"`((?:python src/|hmsbrain (?:[a-z]+ ))[^`]*)`", text)
    return [" ".join(span.split()) for span in spans]


def all_commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        name = str(page.relative_to(REPO))
        found += [(name, c) for block in bash_blocks(text) for c in block_commands(block)]
        found += [(name, c) for c in inline_commands(text)]
    return found


class _StopAfterParsingError(Exception):
    """Raised by the patched parser: the arguments parsed, nothing runs."""

    def __init__(self, namespace: argparse.Namespace) -> None:
        self.namespace = namespace


def parse(command: str, monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """The namespace the command's own parser makes of ``command``, without running it."""
    for name, value in VARIABLES.items():
        command = command.replace(name, value)
    # "..." in a synopsis stands for the arguments around it (`train.py ... --strategy mirrored`).
    args = [a for a in shlex.split(OPTIONAL.sub("", command)) if a != "..."]
    while "=" in args[0]:  # environment variables before the command
        args.pop(0)
    match = PROJECT.match(command)
    assert match, command
    name = match[1] or match[2]
    main = COMMANDS[name]
    original_args = argparse.ArgumentParser.parse_args
    original_intermixed = argparse.ArgumentParser.parse_intermixed_args

    def parse_args(self, argv=None, namespace=None):
        raise _StopAfterParsingError(original_args(self, argv, namespace))

    def parse_intermixed_args(self, argv=None, namespace=None):
        raise _StopAfterParsingError(original_intermixed(self, argv, namespace))

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
        patch.setattr(argparse.ArgumentParser, "parse_intermixed_args", parse_intermixed_args)
        with pytest.raises(_StopAfterParsingError) as parsed:
            main(args[2:])
    return parsed.value.namespace


def check_project_command(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its flags are its parser's, and its recipe and overrides load."""
    try:
        namespace = parse(command, monkeypatch)
    except SystemExit as exc:  # argparse's exit: --help (0), or an unknown flag or bad choice
        if exc.code == 0:
            return
        raise AssertionError(f"{command}: the command line does not parse ({exc})") from None
    overrides = getattr(namespace, "overrides", None)
    config = getattr(namespace, "config", None)
    if overrides is not None or config is not None:
        try:
            load_config(config, overrides or [])
        except ConfigError as exc:
            raise AssertionError(f"{command}: {exc}") from None


def test_the_docs_show_commands():
    commands = all_commands()
    assert len(PAGES) > 15
    assert sum(bool(PROJECT.match(c)) for _, c in commands) > 50


def test_every_project_command_parses_with_real_flags_and_keys(monkeypatch, capsys):
    failures = []
    for page, command in all_commands():
        if not PROJECT.match(command):
            continue
        try:
            check_project_command(command, monkeypatch)
        except AssertionError as exc:
            failures.append(f"{page}: {exc}")
    capsys.readouterr()  # argparse's usage lines of the failures, already in the messages
    assert not failures, "\n".join(failures)


def test_every_command_is_covered():
    """A command that is not the project's is listed in COVERED with what runs it."""
    uncovered = [
        f"{page}: {command}"
        for page, command in all_commands()
        if not PROJECT.match(command) and not any(command.startswith(k) for k in COVERED)
    ]
    assert not uncovered, "\n".join(uncovered)


def test_a_wrong_flag_or_key_in_a_doc_fails(monkeypatch, capsys):
    """The check can fail: a flag the parser lacks, a key the schema lacks, a missing recipe."""
    for wrong in (
        "python src/train.py --fold all --no-such-flag",
        "python src/train.py --fold all train.no_such_key=1",
        "python src/train.py --fold 0 --config configs/hms/no_such_recipe.yaml",
        "hmsbrain predict outputs/x --runtime nonsense",
    ):
        with pytest.raises(AssertionError):
            check_project_command(wrong, monkeypatch)
    check_project_command("hmsbrain train --fold all 'data.min_votes=[10]'", monkeypatch)


def test_the_member_loop_names_recipes():
    """The top-team ensemble's loop trains configs/hms/$m.yaml for every member it names."""
    text = (REPO / "docs" / "how-to" / "top-ensemble.md").read_text()
    members = re.search(r'MEMBERS="([^"]*)"', text)
    assert members
    for member in members[1].split():
        assert (REPO / "configs" / "hms" / f"{member}.yaml").is_file(), member


def test_the_counting_commands_run():
    """The counts of docs/reference/config.md come from commands that run and print a count."""
    text = (REPO / "docs" / "reference" / "config.md").read_text()
    (block,) = bash_blocks(text)
    for command in block_commands(block):
        done = subprocess.run(
            command, shell=True, cwd=REPO, capture_output=True, text=True, check=True
        )
        assert done.stdout.strip().isdigit(), (command, done.stdout)


def test_the_config_key_page_is_the_schemas():
    page = docs_reference.PAGE.read_text()
    assert page == docs_reference.render(), "run: python tools/docs_reference.py"


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = [c for c in bash_blocks((REPO / "README.md").read_text()) if "pytest" in c]
    assert [block.strip() for block in readme] == [ci]
    assert "mkdocs build --strict" in ci and "requirements-docs.txt" in ci


def test_the_n170_dataset_yaml_shown_is_the_one_tested():
    """tests/test_markers.py opens the N170 recordings with exactly the file the docs show."""
    for page in (REPO / "README.md", REPO / "docs" / "tutorials" / "n170.md"):
        blocks = re.findall(r"^```yaml\n(.*?)^```", page.read_text(), flags=re.M | re.S)
        assert N170_YAML in blocks, page
