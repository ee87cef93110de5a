"""A paged KV cache: keys and values in fixed-size pages, read through page tables.

Each layer keeps its keys and values in a pool of pages of `page_size`
positions. A sequence is a page table: entry i names the page holding its
positions `i * page_size` to `(i + 1) * page_size - 1`. Sequences that begin
alike share those pages; where they part, the partly filled page is copied
once (copy on write) and the rest is their own. With page_size 4, a 10-token
few-shot prefix, a 5-token question and two of its samples:

    pages          positions held
    P0 P1 P2       0-3, 4-7, 8-9            the prefix, written once
    Q0             8-9 (copied from P2), 10-11
    Q1             12-14                    problem 7's question
    S0             12-14 (copied from Q1), 15-...    sample 3
    S1             12-14 (copied from Q1), 15-...    sample 4

    prefix         [P0 P1 P2]
    problem 7      [P0 P1 Q0 Q1]
    slot 12  ->    [P0 P1 Q0 S0 ...]        sample 3 of problem 7
    slot 40  ->    [P0 P1 Q0 S1 ...]        sample 4 of problem 7

Starting a sample fills table entries and copies at most one page per kind
of layer; no row is copied. Local (sliding-window) layers have a pool and
tables of their own: once every position of a page has left the window the
page is given back and its entry reads page 0, the null page, which is never
written. A local table therefore holds about `window / page_size` live pages.

The host owns the tables (`wcse_jax.sampling.pages`) and hands the rows'
tables to every call (`PagedKVCache.tables`); the device holds the pools.
A stack of R layers (`Transformer.blocks[j]`) keeps one pool of `R * P`
pages, layer r's page p at `r * P + p`, so one table serves every layer of
its kind and no layer's pool is sliced out of a stack (a kernel's operand
would be a copy).

Attention over pages, per backend, behind `LayerPages.attend`:
  'pallas' on TPU: JAX's ragged paged attention kernel (prefill and decode,
    sliding windows, soft-capping); pools laid out `[P, page, K, 2, H]`,
    which is its `[P, page, 2K, H]` (keys and values interleaved) for free.
  'pallas' on GPU: JAX's paged attention kernel for one-token calls of
    layers whose window (if any) is no shorter than a row (Gemma 2's 4096);
    pools `keys, values: [K, P, page, H]`. Prefill and layers whose window
    binds (Gemma 3's 512 and 1024) take the XLA path: the kernel has no
    window, and its key scales cannot mask the part of a page before one.
  'xla' (CPU, and wherever no kernel fits): the table's pages gathered
    into `[B, S, K, H]` and attended to with position masks.
  'interpret': the Pallas kernels in interpret mode (tests on CPU);
  'reference': for the TPU layout, JAX's reference implementation of the
    ragged kernel's interface (the TPU interpreter of this JAX cannot run
    the kernel itself), which checks on CPU what is handed to the kernel.
"""

from __future__ import annotations

import dataclasses
import math

import flax.struct
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

NULL_PAGE = 0
LAYOUTS = ('tokens', 'heads')
ATTENTION = ('xla', 'pallas', 'interpret', 'reference')


@flax.struct.dataclass
class PagedKVCache:
  """The page pools of a whole model and the page tables of the rows of one call.

  `blocks[j]` is the pool of the stacked layers at pattern position j,
  `tail[i]` that of the i-th unstacked layer; each pool is a tuple of arrays
  in `layout` (see the module docstring). `tables[kind]` (`[B, n]`) maps each
  row's logical pages to pages of that kind's pools; a cache is made without
  tables, and each call is handed its rows'.
  """

  blocks: tuple[tuple[Array, ...], ...]
  tail: tuple[tuple[Array, ...], ...]
  tables: dict[str, Int[Array, 'B n']]
  page_size: int = flax.struct.field(pytree_node=False)
  layout: str = flax.struct.field(pytree_node=False)
  attention: str = flax.struct.field(pytree_node=False)


def layout_for(platform: str) -> str:
  """The pool layout the backend's kernel reads."""
  return 'heads' if platform == 'gpu' else 'tokens'


def empty_pool(layout: str, pages: int, page_size: int, kv_heads: int, head_dim: int, dtype):
  """One layer's (or stack's) pool of `pages` pages, zeros."""
  if layout == 'tokens':
    return (jnp.zeros((pages, page_size, kv_heads, 2, head_dim), dtype),)
  shape = (kv_heads, pages, page_size, head_dim)
  return (jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def pool_pages(layout: str, pool: tuple[Array, ...]) -> int:
  return pool[0].shape[0 if layout == 'tokens' else 1]


def pool_axes(layout: str) -> tuple[tuple[str, ...], ...]:
  """Logical axes of a pool's arrays (pages are not split over devices)."""
  if layout == 'tokens':
    return (('pages', 'page', 'kv_heads', 'kv', 'head_dim'),)
  return (('kv_heads', 'pages', 'page', 'head_dim'),) * 2


@dataclasses.dataclass(frozen=True)
class LayerPages:
  """One layer's view of a paged cache inside a forward call.

  `table` holds the rows' page numbers within a layer's pool; `offset` is
  where this layer's pages begin in a stacked pool (`r * P`).
  """

  pool: tuple[Array, ...]
  table: Int[Array, 'B n']
  offset: Int[Array, '']
  input_mask: Bool[Array, 'B T']
  page_size: int
  layout: str
  attention: str

  @property
  def length(self) -> int:
    """Positions a row's table can address."""
    return self.table.shape[1] * self.page_size

  def write(self, k: Float[Array, 'B T K H'], v: Float[Array, 'B T K H'], positions) -> tuple[Array, ...]:
    """The pool with each valid token's key and value at its position's page.

    Padding, positions past the table, and entries naming the null page are
    dropped, so page 0 stays empty.
    """
    logical = positions // self.page_size
    inside = self.input_mask & (logical < self.table.shape[1])
    entry = jnp.take_along_axis(self.table, jnp.clip(logical, 0, self.table.shape[1] - 1), axis=1)
    total = pool_pages(self.layout, self.pool)
    page = jnp.where(inside & (entry != NULL_PAGE), entry + self.offset, total)
    slot = positions % self.page_size
    if self.layout == 'tokens':
      (kv,) = self.pool
      new = jnp.stack([k, v], axis=-2).astype(kv.dtype)  # B T K 2 H
      return (kv.at[page, slot].set(new, mode='drop'),)
    keys, values = self.pool
    heads_first = lambda x: jnp.moveaxis(x, 2, 0).astype(keys.dtype)  # K B T H
    return (
        keys.at[:, page, slot].set(heads_first(k), mode='drop'),
        values.at[:, page, slot].set(heads_first(v), mode='drop'),
    )

  def gather(self) -> tuple[str, Array, Array]:
    """Every row's keys and values at logical positions 0..length-1, and their einsum spec."""
    table = self.table + self.offset
    b, n = table.shape
    if self.layout == 'tokens':
      pages = jnp.take(self.pool[0], table, axis=0)  # B n page K 2 H
      pages = pages.reshape(b, n * self.page_size, *pages.shape[3:])
      return 'BSKH', pages[..., 0, :], pages[..., 1, :]
    keys, values = (jnp.take(x, table, axis=1) for x in self.pool)  # K B n page H
    flat = lambda x: x.reshape(x.shape[0], b, n * self.page_size, x.shape[-1])
    return 'KBSH', flat(keys), flat(values)

  def mask(self, positions: Int[Array, 'B T'], window: int | None) -> Bool[Array, 'B T S']:
    """Logical position s is seen by a query at position p if s <= p (and p - s < window)."""
    s = jnp.arange(self.length)[None, None, :]
    seen = s <= positions[:, :, None]
    if window is not None:
      seen &= positions[:, :, None] - s < window
    return seen

  def kernel(
      self, q: Float[Array, 'B T N H'], positions: Int[Array, 'B T'], *, window, softcap
  ) -> Float[Array, 'B T N H'] | None:
    """Attention by the backend's Pallas kernel, or None where none fits.

    Every row's real tokens come first, at consecutive positions (right
    padding); `q` is already scaled. Padded tokens' outputs are not used.
    """
    if self.attention == 'xla':
      return None
    interpret = self.attention in ('interpret', 'reference')
    platform = 'gpu' if self.layout == 'heads' else 'tpu'
    b, t, n, h = q.shape
    table = self.table + self.offset
    if platform == 'gpu':
      # The kernel has no window; a window no shorter than the table never masks.
      if t != 1 or (window is not None and window < self.length):
        return None
      from jax.experimental.pallas.ops.gpu import paged_attention as gpu_paged

      keys, values = self.pool
      pages = table.shape[1]
      splits = math.gcd(pages, 16)
      out = gpu_paged.paged_attention(
          q[:, 0].astype(keys.dtype), keys, values, table, positions[:, 0] + 1,
          k_splits=splits, pages_per_compute_block=math.gcd(pages // splits, 8),
          attn_logits_soft_cap=softcap, interpret=interpret,
      )
      return out[:, None].astype(jnp.float32)
    from jax.experimental.pallas.ops.tpu.ragged_paged_attention import kernel as tpu_ragged

    (kv,) = self.pool
    total, page, k, _, _ = kv.shape
    # The kernel takes each row's real tokens packed one row after another (padding
    # would count as keys past the row's end, even past its table), the last of them
    # at the row's kv length. Rows hold their tokens first, at consecutive positions.
    real = self.input_mask
    count = real.sum(axis=1).astype(jnp.int32)
    order = jnp.argsort(~real.reshape(-1), stable=True)  # real tokens first, row by row
    args = (
        q.reshape(b * t, n, h)[order].astype(kv.dtype),
        kv.reshape(total, page, 2 * k, h),
        jnp.where(count > 0, positions[:, 0] + count, 0).astype(jnp.int32),
        table.astype(jnp.int32),
        jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(count)]).astype(jnp.int32),
        jnp.array([b], jnp.int32),
    )
    options = dict(sm_scale=1.0, sliding_window=window, soft_cap=softcap)
    if self.attention == 'reference':
      out = tpu_ragged.ref_ragged_paged_attention(*args, **options)  # only the real tokens
      out = jnp.zeros((b * t, n, h), out.dtype).at[: out.shape[0]].set(out)
    elif interpret:
      from jax.experimental.pallas import tpu as pltpu

      # Block sizes are tuned per TPU generation; off a TPU they are given.
      blocks = dict(num_kv_pages_per_block=1, num_queries_per_block=8)
      with pltpu.force_tpu_interpret_mode():
        out = tpu_ragged.ragged_paged_attention(*args, **options, **blocks)
    else:
      out = tpu_ragged.ragged_paged_attention(*args, **options)
    out = jnp.zeros_like(out).at[order].set(out)  # back to [row, token] order
    return out.reshape(b, t, n, h).astype(jnp.float32)


def pages_for(positions: int, page_size: int) -> int:
  return -(-positions // page_size)


def copy_in_pool(
    layout: str, pool: tuple[Array, ...], source: Int[Array, 'M'], target: Int[Array, 'M'], layers: int
) -> tuple[Array, ...]:
  """The pool with page `target[m]` a copy of page `source[m]` in each of its `layers`
  layers (pairs (0, 0) copy the null page onto itself: padding)."""
  per_layer = pool_pages(layout, pool) // layers
  shift = (jnp.arange(layers) * per_layer)[:, None]
  src, dst = (source[None] + shift).ravel(), (target[None] + shift).ravel()
  if layout == 'tokens':
    return tuple(x.at[dst].set(x[src]) for x in pool)
  return tuple(x.at[:, dst].set(x[:, src]) for x in pool)
