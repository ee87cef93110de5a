#!/usr/bin/env bash
# The paged KV cache on a GPU or TPU, in one run of at most 9 minutes (an H200, a TPU v5e):
# the backend's Pallas kernel against the XLA path, GPU's paged kernel by how it walks the
# pages, then the paged layout of Gemma2-2B (random weights) at 64 and 256 slots against the
# HBM roofline (profiled: device time by kernel in its JSON, traces beside it), the same at
# 256 slots in decode chunks of 64 steps (`--chunk_steps=64`, 16 by default: what the host's
# work between chunks costs a step), and the dense layout at 256 slots (pages through the XLA
# path, `--kv_layouts=paged_xla`, 0.12 of the roofline on an H200, and separate q, k, v and
# gate, up weights, which XLA's GPU compiler merges into the same products itself
# (`benchmarks/gpu_kernels.py`), are no longer run here).
# Each step has its share of the time (compiling Gemma2-2B with every layer on its own takes
# a minute or more a layout) and the later ones are skipped once `DEADLINE` seconds
# (default 540) are spent, so the machine's one command always brings back what it ran.
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
backend=$("$PYTHON" -c 'import jax, sys; print("jax", jax.__version__, jax.devices(), file=sys.stderr)
print(jax.default_backend())')

if ((dry_run)); then
  model=gemma3-270m slots=8 slots_one=8 size=(--problems=1 --samples=4 --new_tokens=8)
  blocks=(--dry_run --rows=3)
else
  model=gemma2-2b slots=64,256 slots_one=256 size=(--problems=8)
  blocks=()
fi
start=$SECONDS
failed=()
# step NAME SECONDS COMMAND...: runs COMMAND with at most SECONDS (less if the deadline is
# nearer), its output to $out/NAME.json (.log for the tests); skipped once too little is left.
# $OUT ends with at most 7 files (a device machine brings back 8), the traces included.
step() {
  local name=$1 secs=$2 file=$out/$1.json; shift 2
  [[ $name == kernel_tests ]] && file=$out/$name.log
  local left=$((${DEADLINE:-540} - (SECONDS - start)))
  if ((left < 30)); then echo "skipped $name: the deadline is near" >&2; failed+=("$name"); return; fi
  ((secs > left)) && secs=$left
  echo "== $name (at most ${secs} s)" >&2
  local rc=0
  timeout -k 5 "$secs" "$@" >"$file" || rc=$?  # its stderr to the console: $OUT keeps few files
  cat "$file"
  ((rc == 0)) || failed+=("$name")
}
step kernel_tests 90 "$PYTHON" -m pytest -q -p no:cacheprovider -m 'not slow' tests/test_paged.py -k on_the_device
if [[ $backend == gpu ]] || ((dry_run)); then
  step gpu_paged_blocks 60 "$PYTHON" benchmarks/gpu_paged_blocks.py "${blocks[@]}"
fi
decode=("$PYTHON" benchmarks/decode.py --random="$model" "${tokenizer[@]}" "${size[@]}" --peers= --dtypes=bfloat16)
# The paged runs once more under jax.profiler: their device time by kernel is in the JSON
# ('profile'), and each trace small enough to come back is copied beside it.
profiles=$(mktemp -d)
step decode_paged 200 "${decode[@]}" --num_slots="$slots" --kv_layouts=paged --profile="$profiles"
for trace in "$profiles"/*/plugins/profile/*/*.trace.json.gz; do
  [[ -f "$trace" && $(stat -c %s "$trace") -lt 15000000 ]] || continue
  run=${trace#"$profiles"/}
  cp "$trace" "$out/trace_${run%%/*}.json.gz"
done
step decode_chunks 130 "${decode[@]}" --num_slots="$slots_one" --kv_layouts=paged --chunk_steps=64
step decode_dense 150 "${decode[@]}" --num_slots="$slots_one" --kv_layouts=dense
echo "written to $out in $((SECONDS - start)) s; failed: ${failed[*]:-none}"
((${#failed[@]} == 0))
