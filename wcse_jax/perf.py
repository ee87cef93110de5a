"""Throughput yardsticks a device reaches, measured, not assumed.

Model FLOPs utilisation (MFU) divides the FLOPs a model needs per second of
work (2 x params per token forward, 6 x params training) by the matmul peak.
Decoding is bound by memory instead: each step reads the weights and the KV
cache, so its roofline is those bytes over the memory bandwidth.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


def matmul_peak_flops(*, n: int = 4096, dtype=jnp.float32, repeats: int = 5, device=None) -> float:
  """FLOP/s of repeated [n, n] x [n, n] products on one device, after a warm-up."""
  device = device or jax.devices()[0]
  a = jax.device_put(jax.random.normal(jax.random.key(0), (n, n), dtype), device)
  dot = jax.jit(jnp.dot)
  dot(a, a).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    out = dot(a, a)
  out.block_until_ready()
  return 2 * n**3 * repeats / (time.perf_counter() - start)


def memory_bandwidth(*, gib: float = 1.0, repeats: int = 5, device=None) -> float:
  """Bytes/s of a jitted elementwise pass over a `gib` GiB array on one device
  (each element read once and written once), after a warm-up."""
  device = device or jax.devices()[0]
  n = int(gib * 2**30) // 4
  x = jax.device_put(jnp.ones((n,), jnp.float32), device)
  scale = jax.jit(lambda a: a * 1.0001)
  x = scale(x).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    x = scale(x)
  x.block_until_ready()
  return 2 * 4 * n * repeats / (time.perf_counter() - start)
