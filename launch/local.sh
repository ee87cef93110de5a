#!/usr/bin/env bash
# Runs a wcse_jax command on this machine: its GPUs if JAX sees any, else the CPU.
#
#   launch/local.sh python -m wcse_jax.sample --budget=high
#   launch/local.sh python -m wcse_jax.sample --config=configs/sample.py:paper_gsm8k --budget=low
#
# Installs the package (with the CUDA build of JAX when nvidia-smi finds a GPU), then runs
# the command. Re-running the same line resumes an interrupted run.
set -euo pipefail
if [[ $# -eq 0 ]]; then
  echo "usage: $0 COMMAND..." >&2
  exit 2
fi
cd "$(dirname "$0")/.."
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  python -m pip install -q -e . "jax[${JAX_CUDA:-cuda12}]"  # JAX_CUDA=cuda13 for CUDA 13 drivers
  # Let XLA take the memory it needs for weights and KV cache up front.
  export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
else
  python -m pip install -q -e .
fi
exec "$@"
