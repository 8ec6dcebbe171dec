"""Entry point: ``python src/benchmark.py preprocess`` (see hmsbrain.benchmark)."""

from hmsbrain.benchmark import main

if __name__ == "__main__":
    main()
