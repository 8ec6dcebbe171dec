"""Fixed facts about the HMS data format and the clinical montage.

Everything here is dictated by the competition files or by EEG convention, never tuned; tunable
values live in :mod:`hmsbrain.config`.
"""

from __future__ import annotations

# --- Raw EEG -------------------------------------------------------------------------------------
SAMPLE_RATE = 200  # Hz, every HMS EEG
EEG_WINDOW_SECONDS = 50  # a labelled window; experts saw its central 10 s
EEG_WINDOW_SAMPLES = SAMPLE_RATE * EEG_WINDOW_SECONDS  # 10,000 rows

EEG_COLUMNS: tuple[str, ...] = (
    "Fp1",
    "F3",
    "C3",
    "P3",
    "F7",
    "T3",
    "T5",
    "O1",
    "Fz",
    "Cz",
    "Pz",
    "Fp2",
    "F4",
    "C4",
    "P4",
    "F8",
    "T4",
    "T6",
    "O2",
    "EKG",
)

# --- Double-banana bipolar montage ---------------------------------------------------------------
# Chain order follows the Kaggle spectrogram files (LL, RL, LP, RP) so that EEG-derived and
# Kaggle-provided spectrogram tiles line up one to one.
CHAINS: dict[str, tuple[str, ...]] = {
    "LL": ("Fp1", "F7", "T3", "T5", "O1"),
    "RL": ("Fp2", "F8", "T4", "T6", "O2"),
    "LP": ("Fp1", "F3", "C3", "P3", "O1"),
    "RP": ("Fp2", "F4", "C4", "P4", "O2"),
}
CHAIN_NAMES: tuple[str, ...] = tuple(CHAINS)

# The 16 bipolar derivations (anode, cathode), chain by chain.
BIPOLAR_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (chain[i], chain[i + 1]) for chain in CHAINS.values() for i in range(len(chain) - 1)
)
BIPOLAR_NAMES: tuple[str, ...] = tuple(f"{a}-{b}" for a, b in BIPOLAR_PAIRS)
PAIRS_PER_CHAIN = 4

# --- Kaggle 10-minute spectrograms ---------------------------------------------------------------
SPEC_SECONDS_PER_ROW = 2
SPEC_WINDOW_ROWS = 300  # 10 minutes
SPEC_BINS_PER_CHAIN = 100
# Column names are "<chain>_<Hz>", 0.59 .. 19.92 Hz (bins 3..102 of a 1024-point FFT at 200 Hz,
# rounded inconsistently in the Kaggle headers, so files are matched by chain prefix and count).
SPEC_TIME_COLUMN = "time"
SPEC_FFT_SIZE = 1024
SPEC_FIRST_BIN = 3

# --- Labels --------------------------------------------------------------------------------------
CLASSES: tuple[str, ...] = ("seizure", "lpd", "gpd", "lrda", "grda", "other")
VOTE_COLUMNS: tuple[str, ...] = tuple(f"{c}_vote" for c in CLASSES)
EXPERT_CONSENSUS: tuple[str, ...] = ("Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other")

# File names of the Kaggle layout.
TRAIN_CSV = "train.csv"
TEST_CSV = "test.csv"
SAMPLE_SUBMISSION_CSV = "sample_submission.csv"
TRAIN_CSV_COLUMNS: tuple[str, ...] = (
    "eeg_id",
    "eeg_label_offset_seconds",
    "spectrogram_id",
    "spectrogram_label_offset_seconds",
    "patient_id",
    *VOTE_COLUMNS,
)
TEST_CSV_COLUMNS: tuple[str, ...] = ("spectrogram_id", "eeg_id", "patient_id")
