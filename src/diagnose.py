"""Find why a model does not learn: ``python src/diagnose.py --data-dir demo:trials64``
(see --help)."""

from hmsbrain.cli import diagnose_main

if __name__ == "__main__":
    diagnose_main()
