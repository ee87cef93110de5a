"""Throughput yardsticks a device reaches, measured, not assumed.

Model FLOPs utilisation (MFU) divides the FLOPs a model needs per second of
work (2 x params per token forward, 6 x params training) by the matmul peak.
Decoding is bound by memory instead: each step reads the weights and the KV
cache, so its roofline is those bytes over the memory bandwidth.
"""

from __future__ import annotations

import collections
import concurrent.futures
import gzip
import json
import os
import pathlib
import re
import time

import jax
import jax.numpy as jnp
import numpy as np


def _product_rate(product, n: int, repeats: int) -> float:
  """FLOP/s of `product()`, an [n, n] x [n, n] matmul that returns when done: the
  fastest of `repeats` runs after a warm-up (a peak; a slower run was disturbed)."""
  product()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    product()
    seconds.append(time.perf_counter() - start)
  return 2 * n**3 / min(seconds)


def matmul_peak_flops(*, n: int = 4096, dtype=jnp.float32, repeats: int = 5, device=None) -> float:
  """FLOP/s of repeated [n, n] x [n, n] products on one device, after a warm-up, with
  `dtype` inputs and float32 sums, as the model's products (`model.modules.dot`)."""
  device = device or jax.devices()[0]
  a = jax.device_put(jax.random.normal(jax.random.key(0), (n, n), dtype), device)
  dot = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
  return _product_rate(lambda: dot(a, a).block_until_ready(), n, repeats)


def host_matmul_peak_flops(*, n: int = 4096, repeats: int = 5) -> float:
  """FLOP/s of repeated float32 [n, n] x [n, n] products through numpy's BLAS (every
  core), after a warm-up: a matmul yardstick independent of XLA for the host CPU."""
  a = np.random.default_rng(0).standard_normal((n, n), np.float32)
  out = np.empty_like(a)
  return _product_rate(lambda: np.matmul(a, a, out=out), n, repeats)


def torch_matmul_peak_flops(dtype, *, n: int = 4096, repeats: int = 5, device: str = 'cpu') -> float | None:
  """FLOP/s of repeated [n, n] x [n, n] products through torch on `device` ('cpu': its
  oneDNN kernels, AMX for bfloat16 where the CPU offers it; 'cuda': cuBLAS), after a
  warm-up; None where torch (or its CUDA) is not there. A second matmul yardstick,
  independent of XLA."""
  torch = _torch(device)
  if torch is None:
    return None
  a = torch.randn(n, n, device=device).to(getattr(torch, jnp.dtype(dtype).name))
  out = torch.empty_like(a)
  sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)

  def product():
    torch.matmul(a, a, out=out)
    sync()

  try:
    return _product_rate(product, n, repeats)
  finally:
    del a, out
    if device == 'cuda':
      torch.cuda.empty_cache()  # what JAX sizes from free memory must not count it


def torch_device_copy_bandwidth(*, gib: float = 1.0, repeats: int = 10) -> float | None:
  """Bytes/s (read plus written) of device-to-device copies of a `gib` GiB array
  through torch on a CUDA GPU, after a warm-up; None without torch's CUDA. A
  bandwidth yardstick for the GPU independent of XLA."""
  torch = _torch('cuda')
  if torch is None:
    return None
  n = int(gib * 2**30) // 4
  source = torch.ones(n, device='cuda')
  target = torch.empty_like(source)
  try:
    target.copy_(source)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
      target.copy_(source)
    torch.cuda.synchronize()
    return 2 * 4 * n * repeats / (time.perf_counter() - start)
  finally:
    del source, target
    torch.cuda.empty_cache()


def _torch(device: str):
  """torch, where it is installed and (for 'cuda') sees a GPU; else None."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  if device == 'cuda' and not torch.cuda.is_available():
    return None
  return torch


def kernel_matmul_peak_flops(*, n: int = 4096, repeats: int = 5) -> float | None:
  """FLOP/s of repeated bfloat16 [n, n] x [n, n] products through our CPU kernel
  (`model.cpu_kernels`), as `matmul_peak_flops`; None where it does not run. It
  can beat XLA's and torch's products, so a roofline must count it too."""
  from wcse_jax.model import cpu_kernels  # pylint: disable=g-import-not-at-top
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
  if not cpu_kernels.applies('MK,KN->MN', a, a, jnp.bfloat16):
    return None
  product = jax.jit(lambda x, y: cpu_kernels.product('MK,KN->MN', x, y))
  return _product_rate(lambda: product(a, a).block_until_ready(), n, repeats)


def instruction_peak_flops(*, repeats: int = 3) -> float | None:
  """FLOP/s of the CPU's bfloat16 dot-product instruction itself (AMX or AVX512-BF16,
  as our kernel runs), from registers on every core, the fastest of `repeats`
  (`model.cpu_kernels.instruction_peak_flops`); None where our kernel does not run.
  The compute roof that products' peaks approach from below."""
  from wcse_jax.model import cpu_kernels  # pylint: disable=g-import-not-at-top
  if not cpu_kernels.available():
    return None
  return max(cpu_kernels.instruction_peak_flops() or 0.0 for _ in range(repeats)) or None


def memory_bandwidth(*, gib: float = 1.0, repeats: int = 5, device=None) -> float:
  """Bytes/s read by a jitted sum over a `gib` GiB array on one device, after a
  warm-up. A decode step mostly reads (weights, KV cache), so reading is the
  yardstick; on CPU XLA's reduction uses every core, where its elementwise
  passes use one (and would give a bandwidth several times too low)."""
  device = device or jax.devices()[0]
  n = int(gib * 2**30) // 4
  x = jax.device_put(jnp.ones((n,), jnp.float32), device)
  total = jax.jit(jnp.sum)
  total(x).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    out = total(x)
  out.block_until_ready()
  return 4 * n * repeats / (time.perf_counter() - start)


def host_copy_bandwidth(*, gib: float = 1.0, repeats: int = 5, threads: int | None = None) -> float:
  """Bytes/s (read plus written) of numpy copies of a `gib` GiB array split over
  `threads` threads (default: every core): an yardstick independent of XLA for
  the host's memory bandwidth."""
  threads = threads or os.cpu_count() or 1
  n = int(gib * 2**30) // 4
  source = np.ones(n, np.float32)
  target = np.empty_like(source)
  pairs = list(zip(np.array_split(source, threads), np.array_split(target, threads)))

  def copy(pair):
    for _ in range(repeats):
      np.copyto(pair[1], pair[0])  # releases the GIL

  np.copyto(target, source)  # warm-up: touch every page
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    start = time.perf_counter()
    list(pool.map(copy, pairs))
    seconds = time.perf_counter() - start
  return 2 * 4 * n * repeats / seconds


def trace_summary(directory, *, top: int = 40) -> dict:
  """Where a `jax.profiler.trace` into `directory` spent its device time: the newest
  trace's events on each accelerator's streams (on CPU, XLA's threads) summed by
  kernel or op name, the busiest first, and the device's busy time against the
  trace's span (idle gaps are the host's: dispatch, transfers, Python).

  Aggregate lines of a device's trace ('XLA Modules', 'XLA Ops', 'Steps') are
  reported apart, per name, so that no time is counted twice.
  """
  traces = sorted(pathlib.Path(directory).glob('**/*.trace.json.gz'), key=lambda p: p.stat().st_mtime)
  if not traces:
    raise FileNotFoundError(f'No *.trace.json.gz under {directory}: did jax.profiler.trace write there?')
  events = json.loads(gzip.open(traces[-1]).read())['traceEvents']
  processes = {e['pid']: e['args']['name'] for e in events if e.get('name') == 'process_name'}
  threads = {(e['pid'], e['tid']): e['args']['name'] for e in events if e.get('name') == 'thread_name'}
  devices = {pid for pid, name in processes.items() if name.startswith('/device:')}
  aggregate = ('XLA Modules', 'XLA Ops', 'Steps', 'TraceMe', 'Source')

  def kernel_line(e):
    if devices:
      return e['pid'] in devices and not threads.get((e['pid'], e['tid']), '').startswith(aggregate)
    # CPU: the ops of XLA's own threads (not the executor's wrappers around them).
    return threads.get((e['pid'], e['tid']), '').startswith('tf_XLA') and 'hlo_module' in e.get('args', {})

  spans = [e for e in events if e.get('ph') == 'X']
  kernels = [e for e in spans if kernel_line(e)]
  by_name, count, by_line = collections.Counter(), collections.Counter(), collections.Counter()
  by_kind = collections.Counter()  # names without their numbering: 'loop_fusion.12' -> 'loop_fusion'
  for e in kernels:
    key = (e.get('args', {}).get('hlo_module', ''), e['name'][:160])
    by_name[key] += e['dur']
    count[key] += 1
    by_kind[re.sub(r'[._]\d+$', '', key[1])] += e['dur']
  for e in spans:
    line = threads.get((e['pid'], e['tid']), '')
    if e['pid'] in devices and line.startswith(aggregate):
      by_line[(line, e['name'][:160])] += e['dur']
  # The union of the kernels' intervals: time the device was doing anything.
  busy, end = 0.0, -float('inf')
  for start, stop in sorted((e['ts'], e['ts'] + e['dur']) for e in kernels):
    if stop > end:
      busy += stop - max(start, end)
      end = stop
  first = min((e['ts'] for e in spans), default=0.0)
  last = max((e['ts'] + e['dur'] for e in spans), default=0.0)
  ms = lambda us: round(us / 1e3, 3)
  return {
      'trace': str(traces[-1]),
      'span_ms': ms(last - first),
      'device_busy_ms': ms(busy),
      'kernel_ms': ms(sum(by_name.values())),
      'lines': sorted({f'{processes.get(p, p)} / {t}' for (p, _), t in threads.items()}),
      'top': [{'module': m, 'name': n, 'ms': ms(t), 'count': count[(m, n)]}
              for (m, n), t in by_name.most_common(top)],
      'top_kinds': [{'name': n, 'ms': ms(t)} for n, t in by_kind.most_common(top)],
      'aggregate_lines': [{'line': l, 'name': n, 'ms': ms(t)} for (l, n), t in by_line.most_common(top)],
  }
