"""Entry point: `python src/predict.py --help` (see hmsbrain.cli.predict_main)."""

from hmsbrain.cli import predict_main

if __name__ == "__main__":
    predict_main()
