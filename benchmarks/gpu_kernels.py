"""The kernels a GPU runs for one decode step, found without a GPU.

    pip install "jax-cuda12-plugin[with-cuda]==$(python -c 'import jax; print(jax.__version__)')"
    python benchmarks/gpu_kernels.py --random=gemma2-2b --num_slots=256          # JSON on stdout
    python benchmarks/gpu_kernels.py --random=gemma2-2b --list --hlo=step.hlo   # every kernel, and the HLO

XLA compiles for a GPU it is only told about (a target description: an H100 or
H200 here), so the structure of the sampler's decode step on a GPU can be read
on any machine with JAX's CUDA plugin installed: which kernels each step
launches, how many a layer, which products are Triton's or cuBLAS's and which
small loops XLA could not fuse. The sampler runs here on CPU as it would on the
GPU (layers on their own, fused projections, the 'heads' page layout; the
Pallas kernels interpreted) until its first decode call, whose arguments are
then compiled for the target. With no device to time them on, XLA's tilings are
its defaults rather than the autotuned ones (`--xla_gpu_autotune_level=0`): the
kernels' count and fusion are the device's, their tile sizes and split-K need
not be. Times need the device: `benchmarks/device_check.sh`.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import pathlib
import re
import sys
import time
from unittest import mock

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

_DEVICE_INFO = """
gpu_device_info {{
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: 132
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: {bandwidth}
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  device_memory_size: {memory}
  shared_memory_per_block_optin: 232448
  cuda_compute_capability {{ major: 9 }}
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}}
platform_name: "CUDA"
dnn_version_info {{ major: 9 minor: 8 }}
runtime_version {{ major: 12 minor: 9 patch: 0 }}
device_description_str: "{name}"
"""
# Hopper parts: 132 multiprocessors; HBM bandwidth and size from NVIDIA's data sheets.
TARGETS = {
    'h100': _DEVICE_INFO.format(name='NVIDIA H100 80GB HBM3', bandwidth=3352320000000, memory=84929347584),
    'h200': _DEVICE_INFO.format(name='NVIDIA H200', bandwidth=4800000000000, memory=150754820096),
}


def _computations(text: str) -> dict[str, list[str]]:
  """The HLO module's computations by name, each its instruction lines."""
  computations, current = {}, None
  for line in text.splitlines():
    header = re.match(r'(?:ENTRY )?%?([\w.\-]+) .*\{$', line)
    if header and not line.startswith(' '):
      current = computations.setdefault(header.group(1), [])
    elif line.startswith('}'):
      current = None
    elif current is not None and line.strip():
      current.append(line.strip())
  return computations


_KERNEL_OPS = ('copy', 'copy-start', 'sort', 'scatter', 'gather', 'dynamic-update-slice', 'all-reduce',
               'all-gather', 'reduce-scatter', 'all-to-all', 'collective-permute')


def step_kernels(text: str) -> list[dict]:
  """The kernels of the largest while loop's body in an optimised GPU HLO module (the
  decode loop's step), in order: each `{'kind', 'name', 'shape'}`. A fusion's kind is
  XLA's (`kLoop`, `kInput`, ...) and its emitter where it has one (a Triton gemm or
  softmax); a custom call's is its target (a Pallas kernel is `__gpu$xla.gpu.triton`);
  calls and conditionals are followed into, nested loops counted once."""
  computations = _computations(text)
  bodies = {m for lines in computations.values() for line in lines
            for m in re.findall(r'\bbody=%?([\w.\-]+)', line)}

  def walk(name: str) -> list[dict]:
    out = []
    for line in computations.get(name, []):
      m = re.match(r'(?:ROOT )?%?([\w.\-]+) = (.*?) ([a-z][\w\-]*)\(', line)
      if not m:
        continue
      name_, shape, op = m.groups()
      if op == 'fusion':
        kind = re.search(r'kind=(\w+)', line).group(1)
        emitter = re.search(r'"kind":"(\w+)"', line)
        kind = f'fusion {kind}' + (f' {emitter.group(1)}' if emitter else '')
      elif op == 'custom-call':
        kind = 'custom-call ' + re.search(r'custom_call_target="([^"]+)"', line).group(1)
      elif op in _KERNEL_OPS:
        kind = op
      elif op in ('call', 'conditional', 'async-start'):
        for callee in re.findall(r'(?:calls|to_apply|branch_computations)=\{?%?([\w.\-]+)', line):
          out += walk(callee)
        continue
      elif op == 'while':
        kind = 'while'
      else:
        continue
      out.append({'kind': kind, 'name': name_, 'shape': shape[:120]})
    return out

  loops = [walk(body) for body in bodies]
  return max(loops, key=len, default=[])


def capture_decode(loaded, prefix, questions, num_slots: int, fuse: bool):
  """Runs the sampler on CPU laid out as on a GPU up to its first decode call, and returns
  that call: (the jitted functions' maker, its keyword arguments, the call's arguments
  and keyword arguments). `loaded` is given up (its stacked weights are deleted)."""
  from wcse_jax.sampling import SamplingParams, Sampler, context_length, kv, sampler  # pylint: disable=g-import-not-at-top

  captured = {}

  class Captured(Exception):
    pass

  make = kv._compiled_paged  # pylint: disable=protected-access

  def capturing(graphdef, config, mesh, **kwargs):
    def decode(*args, **call_kwargs):
      captured.update(maker=(graphdef, config, kwargs), call=(args, call_kwargs))
      raise Captured
    return dataclasses.replace(make(graphdef, config, mesh, **kwargs), decode=decode)

  max_len = context_length(loaded.tokenizer, loaded.config, prefix, questions, 128)
  with mock.patch.object(sampler, '_platform', lambda model: 'gpu'), \
       mock.patch.object(kv, '_compiled_paged', capturing):
    # Laid out once and given up (as the entry points do): the weights are not held twice.
    loaded = sampler.sampling_layout(loaded, donate=True, fuse=fuse)
    s = Sampler(loaded, max_len=max_len, num_slots=num_slots, kv_layout='paged', attention='interpret',
                page_layout='heads', cache_dtype=loaded.model.dtype, fuse_projections=fuse)
    try:
      list(s.sample(prefix, questions, num_samples=-(-num_slots // len(questions)),
                    params=SamplingParams(temperature=0.7, top_k=40, max_new_tokens=128), seed=0))
    except Captured:
      pass
  if not captured:
    raise RuntimeError('the sampler ended without a decode call')
  return make, captured


def gpu_mesh(target: str):
  """A one-device mesh of `target` (a key of `TARGETS`), a GPU that need not be here."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top

  try:
    topology = topologies.get_topology_desc(platform='cuda', target_config=TARGETS[target], topology='1x1x1')
  except Exception as e:  # pylint: disable=broad-except
    raise SystemExit(
        f'no CUDA compiler for a GPU target ({type(e).__name__}: {(str(e).splitlines() or [""])[0]}): '
        'pip install "jax-cuda12-plugin[with-cuda]==' + jax.__version__ + '"') from e
  return topologies.make_mesh(topology, (1, 1), ('data', 'model'))


def compile_for_gpu(make, captured, mesh):
  """The captured decode call compiled for `mesh`'s GPU (`gpu_mesh`): its HLO text and the
  seconds it took."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding, PartitionSpec  # pylint: disable=g-import-not-at-top

  replicated = NamedSharding(mesh, PartitionSpec())

  def on_gpu(x):  # a pool held as bits on CPU is bfloat16 on a GPU
    if not hasattr(x, 'shape'):
      return x
    return jax.ShapeDtypeStruct(x.shape, jnp.bfloat16 if x.dtype == jnp.uint16 else x.dtype, sharding=replicated)

  graphdef, config, kwargs = captured['maker']
  (params, cache, *rest), call_kwargs = captured['call']
  cache = cache.replace(bits_of=None, attention='pallas')
  args = jax.tree.map(on_gpu, (params, cache, *rest))
  fn = make(graphdef, config, mesh, **dict(kwargs, attention='pallas'))
  start = time.perf_counter()
  # The model's choices of kernels follow the default backend: a GPU's here.
  with mock.patch.object(jax, 'default_backend', lambda: 'gpu'):
    compiled = fn.decode.lower(*args, **call_kwargs).compile()
  return compiled.as_text(), time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--random', default='gemma2-2b', help='the preset whose shape is sampled, random weights')
  parser.add_argument('--num_slots', type=int, default=256)
  parser.add_argument('--samples', type=int, default=32, help='samples per problem')
  parser.add_argument('--target', default='h200', choices=sorted(TARGETS))
  parser.add_argument('--fused_projections', default='true', choices=('true', 'false'))
  parser.add_argument('--list', action='store_true', help='every kernel of the step, in order')
  parser.add_argument('--hlo', default='', help='a file for the compiled step\'s HLO text')
  args = parser.parse_args()
  if args.num_slots < 1 or args.samples < 1:
    parser.error('--num_slots and --samples must be positive')
  if 'jax' in sys.modules:
    raise RuntimeError('gpu_kernels.main sets up JAX itself: run it as a script')
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')  # the sampler itself runs on CPU
  os.environ.setdefault('JAX_SKIP_CUDA_CONSTRAINTS_CHECK', '1')  # no driver to check against
  os.environ['XLA_FLAGS'] = ' '.join(filter(None, [os.environ.get('XLA_FLAGS'), '--xla_gpu_autotune_level=0']))

  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import decode  # pylint: disable=g-import-not-at-top  (benchmarks/decode.py)

  mesh = gpu_mesh(args.target)  # first: without JAX's CUDA plugin there is nothing to compile for
  loaded = decode.random_model(args.random, jnp.bfloat16)
  prefix, questions = decode.gsm8k_prompt(max(1, -(-args.num_slots // args.samples)))
  start = time.perf_counter()
  make, captured = capture_decode(loaded, prefix, questions, args.num_slots, args.fused_projections == 'true')
  capture_seconds = time.perf_counter() - start
  text, compile_seconds = compile_for_gpu(make, captured, mesh)
  if args.hlo:
    pathlib.Path(args.hlo).write_text(text)
  kernels = step_kernels(text)
  layers = loaded.config.num_layers
  report = {
      'model': f'{args.random} (random weights, bfloat16)',
      'target': args.target,
      'num_slots': args.num_slots,
      'fused_projections': args.fused_projections == 'true',
      'capture_seconds': round(capture_seconds, 1),
      'compile_seconds': round(compile_seconds, 1),
      'kernels_per_step': len(kernels),
      'kernels_per_layer': round(len(kernels) / layers, 1),
      'by_kind': dict(collections.Counter(k['kind'] for k in kernels).most_common()),
      **({'kernels': kernels} if args.list else {}),
  }
  print(json.dumps(report, indent=1))


if __name__ == '__main__':
  main()
