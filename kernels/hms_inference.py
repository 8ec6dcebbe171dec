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
# package, the ONNX and Keras fold models and the blend weights all come from the dataset.
#
# The runtime is picked automatically, fastest first: TensorRT (GPU, if installed, and only
# after its engine matched ONNX Runtime on packaged windows), ONNX Runtime (CUDA or CPU
# provider), Keras. Set `HMS_RUNTIME` to force one.
#
# It always writes a submission: a test EEG that cannot be read (missing, corrupt, too short,
# not parquet...) gets the ensemble's class prior, and a log line starting `FALLBACK` names it.
#
# Local runs: `HMS_INPUT_DIR` replaces `/kaggle/input`; `HMS_DATA_DIR` and `HMS_MODEL_DIR`
# point at the competition folder and the model dataset directly.

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

# The project package is imported from the model dataset, so the notebook and the models can
# never drift apart.
# It is imported by name after the path is set, hence importlib rather than an import statement.
sys.path.insert(0, str(MODEL_DIR))
kaggle = importlib.import_module("hmsbrain.hms.kaggle")
run_kernel = kaggle.run_kernel

print(f"hmsbrain from {Path(kaggle.__file__).parents[1]}")
print(f"data: {DATA_DIR}\nmodels: {MODEL_DIR}\nruntime: {RUNTIME}")

# %%
submission = run_kernel(MODEL_DIR, DATA_DIR, "submission.csv", runtime=RUNTIME)
print(f"wrote submission.csv: {len(submission)} rows")
submission.head()
