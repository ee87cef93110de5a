#!/usr/bin/env bash
# The paged KV cache on a GPU or TPU, in one run of about 8 minutes (an H200, a TPU v5e):
# the backend's Pallas kernel against the XLA path, then the dense and paged layouts of
# Gemma2-2B (random weights) at 64 and 256 slots against the HBM roofline, and pages through
# the XLA path (the prefix read once for all slots) at 256 slots; the dense and paged runs
# are profiled too (device time by kernel in their JSON, traces beside it).
#
#   bash benchmarks/device_bundle.sh       # here: builds .device/ (needs a package index)
#   bash benchmarks/device_check.sh        # there, with .device/ sent along
#   bash benchmarks/device_check.sh --dry-run   # the same steps at toy sizes, on any backend
#
# Needs JAX for the accelerator, flax, optax, orbax, transformers and pytest. With .device/
# (from device_bundle.sh) it installs the few pure-Python packages such a machine lacks and
# tokenizes with the bundled model's tokenizer, so it needs neither a package index nor the
# bundled GGUF; without it, this package's dependencies must be installed
# (`pip install -e '.[test]'`). The kernel tests' log and each benchmark's JSON are written to
# $OUT (or a new temporary folder, printed at the end) as well as printed; a failed step does
# not stop the later ones, and the script fails at the end if any did.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
dry_run=0
case "${1:-}" in
  '') ;;
  --dry-run) dry_run=1 ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
out=${OUT:-$(mktemp -d)} && mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
tokenizer=()
if [[ -d .device ]]; then
  site=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" .device/wheels/*.whl
  export PYTHONPATH="$PYTHONPATH:$site"
  mkdir -p "$site/tokenizer" && tar xzf .device/tokenizer.tar.gz -C "$site/tokenizer"
  tokenizer=(--tokenizer="$site/tokenizer")
fi
"$PYTHON" -c 'import jax; print("jax", jax.__version__, jax.devices())'

if ((dry_run)); then
  model=gemma3-270m slots=8 slots_xla=8 size=(--problems=1 --samples=4 --new_tokens=8)
else
  model=gemma2-2b slots=64,256 slots_xla=256 size=(--problems=8)
fi
# Each step runs whatever an earlier one gave (one device run must bring back all it can).
failed=()
"$PYTHON" -m pytest -q -p no:cacheprovider -m 'not slow' tests/test_paged.py -k on_the_device \
    2>&1 | tee "$out/kernel_tests.log" || failed+=(kernel_tests)
bench() {
  local name=$1; shift
  "$PYTHON" benchmarks/decode.py --random="$model" "${tokenizer[@]}" "${size[@]}" --peers= \
      --dtypes=bfloat16 "$@" | tee "$out/$name.json" || failed+=("$name")
}
# Each dense and paged run once more under jax.profiler: its device time by kernel is in the
# JSON ('profile'), and each trace small enough to come back is copied beside it.
profiles=$(mktemp -d)
bench decode_dense_paged --num_slots="$slots" --kv_layouts=dense,paged --profile="$profiles"
for trace in "$profiles"/*/plugins/profile/*/*.trace.json.gz; do
  [[ -f "$trace" && $(stat -c %s "$trace") -lt 15000000 ]] || continue
  run=${trace#"$profiles"/}
  cp "$trace" "$out/trace_${run%%/*}.json.gz"
done
bench decode_paged_xla --num_slots="$slots_xla" --kv_layouts=paged_xla
echo "written to $out; failed: ${failed[*]:-none}"
((${#failed[@]} == 0))
