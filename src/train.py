"""Train a fold: ``python src/train.py --fold 0 --backbone effnetv2`` (see --help)."""

from hmsbrain.cli import train_main

if __name__ == "__main__":
    train_main()
