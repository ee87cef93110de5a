"""Row operations on a `KVCache`: copy, select and clear whole rows.

A row is one sequence: its keys and values in every layer, the positions its
slots hold, and whether it continues the shared prefix. Copying all of it,
positions included, is exact even for the sliding-window rings, whose slot
order depends on the row's length. Stacked layers carry a leading layer axis
(`[R, B, ...]`), so the row axis is 1 there and 0 everywhere else.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int

from wcse_jax.model import KVCache


def map_rows(fn, *caches: KVCache) -> KVCache:
  """Applies `fn(*leaves, axis=row_axis)` to matching leaves of the caches."""

  def over(part, axis):
    return jax.tree.map(lambda *leaves: fn(*leaves, axis=axis), *[part(c) for c in caches])

  return KVCache(
      blocks=over(lambda c: c.blocks, 1),
      tail=over(lambda c: c.tail, 0),
      positions=over(lambda c: c.positions, 0),
      prefixed=over(lambda c: c.prefixed, 0),
  )


def take_rows(cache: KVCache, rows: Int[Array, 'N']) -> KVCache:
  """A cache of the given rows, in that order."""
  return map_rows(lambda x, axis: jnp.take(x, rows, axis=axis), cache)


def where_rows(mask: Bool[Array, 'B'], new: KVCache, old: KVCache) -> KVCache:
  """Row b of `new` where `mask[b]`, else of `old`; a one-row `new` is broadcast.

  >>> import dataclasses
  >>> from wcse_jax.model import get_preset, init_cache
  >>> config = dataclasses.replace(get_preset('gemma3-270m'), num_layers=1)
  >>> row = init_cache(config, batch_size=1, max_len=4)      # one row, broadcast
  >>> row = row.replace(positions={k: v + 1 for k, v in row.positions.items()})
  >>> cache = where_rows(jnp.array([True, False]), row, init_cache(config, 2, 4))
  >>> cache.positions['global'].tolist()                    # row 0 := row
  [[0, 0, 0, 0], [-1, -1, -1, -1]]
  """

  def select(a, b, axis):
    shape = [1] * b.ndim
    shape[axis] = mask.shape[0]
    return jnp.where(mask.reshape(shape), a, b)

  return map_rows(select, new, old)


def clear_rows(cache: KVCache, mask: Bool[Array, 'B'], prefixed: Bool[Array, 'B']) -> KVCache:
  """Empties the masked rows: their slots hold no position (keys stay, unread),
  and they continue the shared prefix where `prefixed`."""
  positions = {k: jnp.where(mask[:, None], -1, v) for k, v in cache.positions.items()}
  return cache.replace(positions=positions, prefixed=jnp.where(mask, prefixed, cache.prefixed))
