"""hmsbrain: EEG classification for the HMS Harmful Brain Activity competition and beyond."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["EEGClassifier"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the package itself stays standard-library only, since the Kaggle
    # notebook imports hmsbrain.hms.wheels before anything else is installed.
    if name == "EEGClassifier":
        from hmsbrain.estimator import EEGClassifier

        return EEGClassifier
    raise AttributeError(f"module 'hmsbrain' has no attribute {name!r}")
