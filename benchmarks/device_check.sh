#!/usr/bin/env bash
# The paged KV cache on a GPU or TPU, in one run of about 8 minutes (an H200, a TPU v5e):
# the backend's Pallas kernel against the XLA path, then the dense and paged layouts of
# Gemma2-2B (random weights) at 64 and 256 slots against the HBM roofline, and pages through
# the XLA path (the prefix read once for all slots) at 256 slots. Needs JAX for
# the accelerator and this package's dependencies (`pip install -e '.[test]'`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python -m pytest -q -p no:cacheprovider -m 'not slow' tests/test_paged.py -k on_the_device
python benchmarks/decode.py --random=gemma2-2b --num_slots=64,256 --problems=8 --peers= \
    --dtypes=bfloat16 --kv_layouts=dense,paged
python benchmarks/decode.py --random=gemma2-2b --num_slots=256 --problems=8 --peers= \
    --dtypes=bfloat16 --kv_layouts=paged_xla
