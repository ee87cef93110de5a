#!/usr/bin/env bash
# Builds .device/, what `benchmarks/device_check.sh` needs on an accelerator machine that
# has JAX, flax, optax, orbax, transformers and pytest but no package index and no copy of
# the bundled model:
#   .device/wheels/          pure-Python wheels of this package's imports such a machine
#                            usually lacks (gguf, universal_pathlib, pathlib-abc), at the
#                            versions installed here. Not flax: it must match the machine's
#                            JAX (this one's flax 0.12.8 fails to import under JAX 0.11.2,
#                            whose hijax lacks a class it uses), so the machine's own serves
#   .device/tokenizer.tar.gz the bundled Gemma 3 tokenizer (the random-weight benchmark
#                            tokenizes its prompts with it; the 253 MB GGUF stays here)
# Run it here, where the package and a package index are; .device/ is ignored by git, so
# send it along with the working tree (about 6 MB) and run `bash benchmarks/device_check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
out=.device
rm -rf "$out" && mkdir -p "$out/wheels"
version() { "$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
for name in gguf universal_pathlib pathlib-abc; do
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$out/wheels" "$name==$(version "$name")"
done
for wheel in "$out"/wheels/*.whl; do  # they go to another Python: only pure ones will do
  [[ "$wheel" == *-py3-none-any.whl ]] || { echo "not a pure-Python wheel: $wheel" >&2; exit 1; }
done
tokenizer=$(mktemp -d)
trap 'rm -rf "$tokenizer"' EXIT
"$PYTHON" - "$tokenizer" <<'EOF'
import sys
from benchmarks.decode import gsm8k_prompt
from wcse_jax.checkpoints import load_tokenizer
from wcse_jax.checkpoints.load import bundled_gguf_path

bundled = load_tokenizer(bundled_gguf_path())
bundled.save_pretrained(sys.argv[1])
saved = load_tokenizer(sys.argv[1])
prefix, questions = gsm8k_prompt(8)
for text in [prefix, *questions]:  # the saved copy must tokenize as the bundled one does
  assert saved(text)['input_ids'] == bundled(text)['input_ids'], 'the saved tokenizer differs'
assert (saved.eos_token_id, saved.pad_token_id, saved.bos_token_id) == (
    bundled.eos_token_id, bundled.pad_token_id, bundled.bos_token_id), 'special tokens differ'
EOF
tar czf "$out/tokenizer.tar.gz" -C "$tokenizer" .
du -sh "$out"
