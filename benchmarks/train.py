"""Training throughput: tokens/s and model FLOPs utilisation (MFU) of the train step.

    python benchmarks/train.py                         # bundled Gemma 3 270M, CPU-sized batch
    python benchmarks/train.py --random=gemma2-2b --rows=8 --seq_len=2048 --dtype=bfloat16   # on a GPU

Runs the real sharded train step (remat, chunked loss, AdamW) on packed rows of
random tokens, after warm-up steps, and prints JSON with tokens/s, the model
FLOPs per second (6 x params per token) and their ratio to the matmul peak
measured in the same process on the same devices (the baseline).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wcse_jax import parallel, perf
from wcse_jax.checkpoints import load_model
from wcse_jax.finetune import device_batch
from wcse_jax.model import Transformer, count_params, get_preset
from wcse_jax.train.data import Batch
from wcse_jax.train.step import OptimizerConfig, init_state, make_optimizer, make_train_step


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', default='gemma3-270m', help='model to load')
  parser.add_argument('--random', default='', help='a preset to build with random weights instead')
  parser.add_argument('--rows', type=int, default=2)
  parser.add_argument('--seq_len', type=int, default=256)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--dtype', default='float32', help='compute dtype (weights stay float32)')
  args = parser.parse_args()

  dtype = jnp.dtype(args.dtype)
  mesh = parallel.make_mesh()
  if args.random:
    config = get_preset(args.random)
    graphdef, params = nnx.split(Transformer(config, rngs=nnx.Rngs(0), dtype=dtype))
    params = nnx.to_pure_dict(params)
    params = jax.device_put(params, parallel.param_shardings(params, mesh, fsdp=True))
  else:
    loaded = load_model(args.model, mesh=mesh, dtype=dtype, param_dtype=jnp.float32, fsdp=True,
                        with_tokenizer=False)
    config, graphdef, params = loaded.config, loaded.graphdef, nnx.to_pure_dict(loaded.params)
  optimizer = make_optimizer(OptimizerConfig(learning_rate=1e-5, total_steps=args.steps + args.warmup))
  state = init_state(params, optimizer, mesh)
  step = jax.jit(make_train_step(graphdef, optimizer, remat=True, loss_chunk=256), donate_argnums=0)

  rng = np.random.default_rng(0)
  shape = (args.rows, args.seq_len)
  rows = Batch(  # one example a row; sharded over the mesh as the trainer does
      tokens=rng.integers(3, config.vocab_size, shape).astype(np.int32),
      segment_ids=np.ones(shape, np.int32),
      positions=np.broadcast_to(np.arange(args.seq_len, dtype=np.int32), shape),
      loss_mask=np.ones(shape, bool),
  )
  batch = device_batch(rows, 1, mesh)
  for _ in range(args.warmup):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(args.steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start

  tokens = args.steps * args.rows * args.seq_len
  model_flops = 6 * count_params(config) * tokens / seconds
  peak = perf.matmul_peak_flops(dtype=dtype) * mesh.devices.size
  print(json.dumps({
      'model': args.random or args.model,
      'device': str(jax.devices()[0].device_kind),
      'devices': mesh.devices.size,
      'dtype': args.dtype,
      'rows': args.rows,
      'seq_len': args.seq_len,
      'tokens_per_s': round(tokens / seconds, 2),
      'model_tflop_per_s': round(model_flops / 1e12, 4),
      'matmul_peak_tflop_per_s': round(peak / 1e12, 4),
      'mfu': round(model_flops / peak, 4),
  }, indent=2))


if __name__ == '__main__':
  main()
