"""Entry point: `python src/ensemble.py --help` (see hmsbrain.cli.ensemble_main)."""

from hmsbrain.cli import ensemble_main

if __name__ == "__main__":
    ensemble_main()
