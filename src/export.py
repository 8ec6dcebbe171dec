"""Entry point: `python src/export.py --help` (see hmsbrain.cli.export_main)."""

from hmsbrain.cli import export_main

if __name__ == "__main__":
    export_main()
