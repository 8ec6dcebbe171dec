# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # HMS - Harmful Brain Activity Classification: hmsbrain ensemble inference
#
# Runs the ensemble packaged by `python src/package.py` (the `hmsbrain-models` dataset) on the
# competition's test EEGs and writes `submission.csv`. It needs no internet: the `hmsbrain`
# package, the ONNX and Keras fold models, the blend weights and the ONNX Runtime wheels all
# come from the dataset.
#
# Kaggle's image has no ONNX Runtime, so the first cell installs it from the dataset's wheels
# (the GPU build when a GPU is visible, else the CPU build) with `pip install --no-index`,
# before anything imports it. A failed install is logged and the notebook goes on.
#
# The runtime is picked automatically, fastest first, among those that import and open every
# fold: TensorRT (GPU, if installed, and only after its engine matched ONNX Runtime on packaged
# windows), ONNX Runtime (its CUDA provider only after the same check; else the CPU), Keras
# (which says so when it is older than the Keras that saved the models). Set `HMS_RUNTIME` to
# force one.
#
# It always writes a submission: a test EEG that cannot be read (missing, corrupt, too short,
# not parquet, a missing or non-numeric column...) gets the ensemble's class prior, and a log
# line starting `FALLBACK` names it. Any other error in one EEG is a bug: that EEG gets the prior
# too, but the error is logged with its traceback and counted. A run that no runtime can run is
# named in a line starting `NO RUNTIME` and left out of the blend, whose weights are renormalised
# over the runs that ran. After the first test EEG it logs the projected total time, with a
# `TIME BUDGET` line when that exceeds `HMS_BUDGET_HOURS` (default 9, Kaggle's limit). It ends
# with one `SUMMARY` line: the fallbacks by reason, and the runs left out.
#
# Local runs: `HMS_INPUT_DIR` replaces `/kaggle/input`; `HMS_DATA_DIR` and `HMS_MODEL_DIR`
# point at the competition folder and the model dataset directly. Away from Kaggle (no
# `KAGGLE_KERNEL_RUN_TYPE`) the notebook is a dry run: after writing `submission.csv` it fails
# on any unexpected error, or when more than `HMS_MAX_FALLBACK` (default 0.5) of the test EEGs
# got the class prior. On Kaggle it submits, and the summary says so in capitals.

# %%
import importlib
import logging
import os
import sys
from pathlib import Path

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)

INPUT_DIR = Path(os.environ.get("HMS_INPUT_DIR", "/kaggle/input"))
DATA_DIR = Path(
    os.environ.get("HMS_DATA_DIR", INPUT_DIR / "hms-harmful-brain-activity-classification")
)
MODEL_DIR = Path(os.environ.get("HMS_MODEL_DIR", INPUT_DIR / "hmsbrain-models"))
RUNTIME = os.environ.get("HMS_RUNTIME", "auto")
BUDGET_HOURS = float(os.environ.get("HMS_BUDGET_HOURS", "9"))
MAX_FALLBACK = float(os.environ.get("HMS_MAX_FALLBACK", "0.5"))

# The project package is imported from the model dataset, so the notebook and the models can
# never drift apart.
# It is imported by name after the path is set, hence importlib rather than an import statement.
sys.path.insert(0, str(MODEL_DIR))
wheels = importlib.import_module("hmsbrain.hms.wheels")  # the standard library only
wheels.ensure_onnxruntime(MODEL_DIR)

# %%
kaggle = importlib.import_module("hmsbrain.hms.kaggle")
print(f"hmsbrain from {Path(kaggle.__file__).parents[1]}")
print(f"data: {DATA_DIR}\nmodels: {MODEL_DIR}\nruntime: {RUNTIME}")
DRY_RUN = not kaggle.on_kaggle()
print(f"dry run (not on Kaggle): {DRY_RUN}")

# %%
submission = kaggle.run_kernel(
    MODEL_DIR,
    DATA_DIR,
    "submission.csv",
    runtime=RUNTIME,
    budget_hours=BUDGET_HOURS,
    max_fallback=MAX_FALLBACK,
    dry_run=DRY_RUN,
)
print(f"wrote submission.csv: {len(submission)} rows")
submission.head()
