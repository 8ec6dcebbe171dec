"""Entry point: `python src/package.py --help` (see hmsbrain.cli.package_main)."""

from hmsbrain.cli import package_main

if __name__ == "__main__":
    package_main()
