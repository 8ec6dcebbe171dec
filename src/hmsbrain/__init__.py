"""hmsbrain: EEG classification for the HMS Harmful Brain Activity competition and beyond."""

__version__ = "0.1.0"
