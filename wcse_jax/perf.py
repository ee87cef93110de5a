"""Throughput yardsticks: the matmul peak a device reaches, measured, not assumed.

Model FLOPs utilisation (MFU) divides the FLOPs a model needs per second of
work (2 x params per token forward, 6 x params training) by this peak.
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
