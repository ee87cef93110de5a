"""GPU's paged attention kernel by how it walks the pages: one decode step's attention
of one layer over each row's own pages, for block choices side by side.

    python benchmarks/gpu_paged_blocks.py                 # Gemma2-2B's heads, 256 and 64 rows
    python benchmarks/gpu_paged_blocks.py --rows=256 --pages=24 --page_size=16

Each configuration is (splits, pages per split, pages per compute block, warps):
JAX's wrapper's choice for the table (blocks that divide it: `k_splits` the gcd of
the pages and 16, a compute block the gcd of a split's pages and 8), ours
(`paged.gpu_blocks`), and a sweep around them. Rows' lengths are drawn uniformly up
to the table's length, their pages scattered over the pool. Reported per
configuration: microseconds per call (the mean of `--repeats` calls after a
warm-up), its speed-up over the first configuration that ran (JAX's wrapper's blocks,
timed in the same run) and the bandwidth of the keys and values the rows' lengths need, against
the device's copy bandwidth measured in the same run (torch's device copies on a
CUDA GPU; XLA's read elsewhere). Off a GPU the kernels run in Pallas interpret mode
at toy sizes (`--dry_run`), which checks the script, not the speed.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from wcse_jax import perf  # noqa: E402
from wcse_jax.model import paged  # noqa: E402


def _wrapper_blocks(pages: int) -> tuple[int, int, int]:
  """JAX's `paged_attention` wrapper's blocks as this package gave them before."""
  splits = int(np.gcd(pages, 16))
  per_split = pages // splits
  return splits, per_split, int(np.gcd(per_split, 8))


def _configs(ours, pages) -> list[tuple[int, int, int, int]]:
  """JAX's wrapper's blocks first (the baseline), then ours, then the sweep."""
  found = [(*_wrapper_blocks(pages), 8), (*ours, 8), (*ours, 4)]
  for per_block in (2, 4, 8):
    blocks = -(-pages // per_block)
    for splits in (1, 2, 4):
      if splits <= blocks:
        found.append((splits, -(-blocks // splits) * per_block, per_block, 8))
  return list(dict.fromkeys(found))


def run(rows, heads, kv_heads, head_dim, pages, page_size, repeats, interpret) -> dict:
  rng = np.random.default_rng(0)
  pool = rows * pages + 1  # page 0 is the null page
  dtype = jnp.bfloat16
  keys = jnp.asarray(rng.standard_normal((kv_heads, pool, page_size, head_dim)), dtype)
  values = jnp.asarray(rng.standard_normal((kv_heads, pool, page_size, head_dim)), dtype)
  q = jnp.asarray(rng.standard_normal((rows, heads, head_dim)) / head_dim ** 0.5, dtype)
  table = jnp.asarray(1 + rng.permutation(rows * pages).reshape(rows, pages), jnp.int32)
  lengths = jnp.asarray(rng.integers(1, pages * page_size + 1, rows), jnp.int32)
  needed = int(lengths.sum()) * kv_heads * head_dim * 2 * jnp.dtype(dtype).itemsize
  ours = paged.gpu_blocks(rows, heads, kv_heads, pages, page_size, head_dim)
  results, reference, baseline = [], None, None
  for splits, per_split, per_block, warps in _configs(ours, pages):
    call = jax.jit(lambda q, k, v, t, n, b=(splits, per_split, per_block), w=warps: paged._gpu_kernel_with_lse(
        q, k, v, t, n, softcap=50.0, interpret=interpret, blocks=b, warps=w))
    entry = dict(splits=splits, pages_per_split=per_split, pages_per_compute_block=per_block, warps=warps)
    try:
      out, _ = jax.block_until_ready(call(q, keys, values, table, lengths))
      start = time.perf_counter()
      for _ in range(repeats):
        out, _ = call(q, keys, values, table, lengths)
      jax.block_until_ready(out)
      seconds = (time.perf_counter() - start) / repeats
    except Exception as error:  # a configuration the compiler refuses is reported, not fatal
      results.append({**entry, 'error': f'{type(error).__name__}: {str(error)[:200]}'})
      continue
    if reference is None:
      reference, baseline = out, seconds
    entry.update(
        us=round(seconds * 1e6, 1), gb_per_s=round(needed / seconds / 1e9, 1),
        speedup_over_first=round(baseline / seconds, 2),
        max_abs_difference_from_first=float(jnp.abs(out - reference).max()),
    )
    results.append(entry)
    print(json.dumps(entry), file=sys.stderr, flush=True)
  return dict(rows=rows, heads=heads, kv_heads=kv_heads, head_dim=head_dim, pages=pages,
              page_size=page_size, kv_bytes_needed=needed, ours=ours, configs=results)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rows', default='256,64', help='comma-separated')
  parser.add_argument('--heads', type=int, default=8)
  parser.add_argument('--kv_heads', type=int, default=4)
  parser.add_argument('--head_dim', type=int, default=256)
  parser.add_argument('--pages', type=int, default=24, help="table columns: a row's own pages")
  parser.add_argument('--page_size', type=int, default=16)
  parser.add_argument('--repeats', type=int, default=20)
  parser.add_argument('--dry_run', action='store_true', help='toy sizes, interpret mode')
  args = parser.parse_args()
  interpret = jax.default_backend() != 'gpu'
  if interpret and not args.dry_run:
    parser.error('no GPU here: pass --dry_run for a check of the script at toy sizes')
  sizes = dict(heads=args.heads, kv_heads=args.kv_heads, head_dim=args.head_dim, pages=args.pages,
               page_size=args.page_size, repeats=args.repeats)
  if args.dry_run:
    sizes.update(heads=4, kv_heads=2, head_dim=16, pages=6, page_size=4, repeats=1)
  bandwidth = perf.torch_device_copy_bandwidth(gib=4.0) if not interpret else None
  report = dict(
      backend=jax.default_backend(), device=str(jax.devices()[0].device_kind),
      bandwidth_gb_per_s=dict(
          torch_device_copy=bandwidth and round(bandwidth / 1e9, 1),
          xla_read=round(perf.memory_bandwidth(gib=4.0 if not interpret else 0.05) / 1e9, 1),
      ),
      runs=[run(int(rows), interpret=interpret, **sizes) for rows in args.rows.split(',')],
  )
  print(json.dumps(report, indent=1))


if __name__ == '__main__':
  main()
