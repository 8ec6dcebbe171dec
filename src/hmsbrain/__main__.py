"""``hmsbrain <command> [args]``, the command ``pip install .`` installs (``python -m hmsbrain``
too): each command is the script of the same name in ``src/``, with the same arguments
(``hmsbrain train --fold all`` is ``python src/train.py --fold all``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from hmsbrain import benchmark, cli

COMMANDS: dict[str, Callable[[list[str] | None], None]] = {
    "train": cli.train_main,
    "predict": cli.predict_main,
    "ensemble": cli.ensemble_main,
    "export": cli.export_main,
    "package": cli.package_main,
    "diagnose": cli.diagnose_main,
    "benchmark": benchmark.main,
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="hmsbrain",
        description="EEG classification: train, predict, ensemble, export, package, diagnose, "
        "benchmark. 'hmsbrain COMMAND --help' lists a command's arguments.",
    )
    parser.add_argument("command", choices=list(COMMANDS))
    # Only the command is parsed here: its own parser reads the rest, --help included.
    command = parser.parse_args(argv[:1]).command
    COMMANDS[command](argv[1:])


if __name__ == "__main__":
    main()
