"""Throughput yardsticks a device reaches, measured, not assumed.

Model FLOPs utilisation (MFU) divides the FLOPs a model needs per second of
work (2 x params per token forward, 6 x params training) by the matmul peak.
Decoding is bound by memory instead: each step reads the weights and the KV
cache, so its roofline is those bytes over the memory bandwidth.
"""

from __future__ import annotations

import concurrent.futures
import os
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


def torch_matmul_peak_flops(dtype, *, n: int = 4096, repeats: int = 5) -> float | None:
  """FLOP/s of repeated [n, n] x [n, n] products through torch on the host CPU (its
  oneDNN kernels, AMX for bfloat16 where the CPU offers it), after a warm-up; None
  where torch is not installed. A second matmul yardstick, independent of XLA."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  a = torch.randn(n, n).to(getattr(torch, jnp.dtype(dtype).name))
  out = torch.empty_like(a)
  return _product_rate(lambda: torch.matmul(a, a, out=out), n, repeats)


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
