#!/usr/bin/env bash
# The GPU check (python src/benchmark.py gpu) on a machine with one GPU, JAX and no TensorFlow,
# such as the lent H100/H200 machines, in under 8 minutes. Figures go to gpu_check.json (or
# --out); any other argument is the check's own (--steps, --onnx PATH, --dry-run).
#
# Those machines reach no network and lack Keras and librosa, so their wheels travel in .whl/
# (ignored by git): fetch them beforehand on a machine with internet access,
#   bench/gpu_check.sh wheels
# and they are installed from there into a scratch folder here (offline, nothing else touched).
set -euo pipefail
cd "$(dirname "$0")/.."
# What the check imports beyond the lent machines' image (JAX, NumPy, pandas, SciPy, PyYAML,
# scikit-learn, numba, ...), read off the modules a dry run had loaded: Keras and librosa, and
# those of their needs the image lacks.
WHEELS="keras==3.15.1 namex optree librosa==0.11.0 decorator pooch platformdirs"
if [ "${1:-}" = "wheels" ]; then
    # shellcheck disable=SC2086  # one argument per wheel
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl $WHEELS
    exit 0
fi
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/hmsbrain-site .whl/*.whl
    export PYTHONPATH=/tmp/hmsbrain-site
fi
# Keras on JAX; JAX allocates as it goes instead of taking 75% of the GPU up front, so that
# ONNX Runtime and TensorRT, later in the same process, find memory too.
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
# The check writes its JSON after every section: a run stopped here keeps what it measured.
exec timeout 470 python3 src/benchmark.py gpu "$@"
