#!/usr/bin/env bash
# Runs a wcse_jax command on every host of a Cloud TPU VM slice.
#
#   launch/tpu_vm.sh NAME ZONE ACCELERATOR -- python -m wcse_jax.sample --config=configs/sample.py:paper_math --budget=high
#   e.g. launch/tpu_vm.sh wcse-v4 us-central2-b v4-32 -- python -m wcse_jax.sample --budget=low
#
# Creates the TPU VM if it does not exist (set SPOT=1 for a preemptible one), copies this
# checkout to every worker, installs it, and starts the command on all workers at once
# inside a tmux session named wcse, so it survives a dropped SSH connection. Every host
# joins the slice through jax.distributed (wcse_jax.parallel.initialize_multihost), samples
# its share of the problems and writes its own shard; after a preemption, run the same
# line again and the run resumes. Hub weights: set HF_TOKEN in your environment; it is
# passed to the workers.
#
# Run directory: with BUCKET=gs://my-bucket/runs the command gets --output_dir=$BUCKET/NAME
# (unless it sets --output_dir itself), which every host shares, and host 0 summarises the
# whole run there. Without a bucket each host writes under ~/wcse_jax/runs on its own disk;
# host 0 then stops before the summary, naming the shards it cannot see. Gather them, for
# each worker W of the slice, with
#   gcloud compute tpus tpu-vm scp --recurse --worker=W NAME:~/wcse_jax/runs . --zone ZONE
# and run the same command here as one process: it draws nothing and summarises.
set -euo pipefail
if [[ $# -lt 5 || "$4" != "--" ]]; then
  echo "usage: $0 NAME ZONE ACCELERATOR -- COMMAND..." >&2
  exit 2
fi
name=$1 zone=$2 accelerator=$3
shift 4
if [[ -n "${BUCKET:-}" ]] && ! printf '%s\n' "$@" | grep -q -- '--output_dir'; then
  set -- "$@" "--output_dir=${BUCKET%/}/$name"
fi
command=$(printf '%q ' "$@")
version=${TPU_SOFTWARE_VERSION:-tpu-ubuntu2204-base}

if ! gcloud compute tpus tpu-vm describe "$name" --zone "$zone" >/dev/null 2>&1; then
  gcloud compute tpus tpu-vm create "$name" --zone "$zone" \
    --accelerator-type "$accelerator" --version "$version" ${SPOT:+--spot}
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
tar -C "$repo" --exclude=.git --exclude=runs -czf /tmp/wcse_jax.tgz .
gcloud compute tpus tpu-vm scp /tmp/wcse_jax.tgz "$name":/tmp/ --worker=all --zone "$zone"
gcloud compute tpus tpu-vm ssh "$name" --worker=all --zone "$zone" --command "
  set -e
  mkdir -p ~/wcse_jax && tar -C ~/wcse_jax -xzf /tmp/wcse_jax.tgz
  cd ~/wcse_jax && python3 -m pip install -q -U pip && python3 -m pip install -q -e '.[gcs]' 'jax[tpu]'
  tmux kill-session -t wcse 2>/dev/null || true
  tmux new-session -d -s wcse 'cd ~/wcse_jax && HF_TOKEN=${HF_TOKEN:-} $command 2>&1 | tee -a ~/wcse_jax/launch.log'
"
echo "Started on every worker of $name. Follow it with:"
echo "  gcloud compute tpus tpu-vm ssh $name --worker=0 --zone $zone --command 'tail -f ~/wcse_jax/launch.log'"
