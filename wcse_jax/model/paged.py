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

The host owns the tables (`wcse_jax.sampling.pages`) and hands every call
its rows' view of them (`PagedKVCache.view`); the device holds the pools.
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
    When every row of a call continues the shared prefix, the kernel reads
    each row's pages past the prefix's whole pages only, and XLA reads the
    prefix's pages once, one matrix product with every row's queries; the
    two softmaxes are merged by their log-sum-exps (`LayerPages._cascade`).
    The kernel walks a table in compute blocks of 16,384 key elements, split
    only as far as the grid needs programs (`gpu_blocks`), not in the blocks
    that divide the table that JAX's wrapper takes.
  'xla' (CPU, and wherever no kernel fits): each call reads a view
    (`PagedKVCache`): the shared prefix's whole pages gathered once and
    attended to by every row that continues it (a cascade, as the dense
    layout reads its one-row prefix), then each row's table columns from the
    first page any row can see (the window's start, for local layers) to
    the furthest any reaches, with masks by position. With the prefix of
    the picture above and a view of columns 2-3:

        prefix segment   [P0 P1]               once, for slots 12 and 40
        slot 12          [ -  - Q0 S0]         columns 2-3: Q0 S0
        slot 40          [ -  - Q0 S1]         columns 2-3: Q0 S1

  'interpret': the Pallas kernels in interpret mode (tests on CPU);
  'reference': for the TPU layout, JAX's reference implementation of the
    ragged kernel's interface (the TPU interpreter of this JAX cannot run
    the kernel itself), which checks on CPU what is handed to the kernel.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.struct
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

NULL_PAGE = 0
LAYOUTS = ('tokens', 'heads')
ATTENTION = ('xla', 'pallas', 'interpret', 'reference')


@flax.struct.dataclass
class PagedKVCache:
  """The page pools of a whole model and the view of one call's rows.

  `blocks[j]` is the pool of the stacked layers at pattern position j,
  `tail[i]` that of the i-th unstacked layer; each pool is a tuple of arrays
  in `layout` (see the module docstring). A cache is made without a view,
  and each call is handed its rows' (`view`):

  - `tables[kind]` (`[B, n]`) maps each row's logical pages `first[kind]`,
    `first[kind] + 1`, ... to pages of that kind's pools (`first` 0 where
    absent: the whole table);
  - `prefix[kind]` (`[W]`, optional) names the pages of a shared prefix's
    first `W * page_size` positions, read once for every row that
    `prefixed` marks (a cascade: those rows' tables then need no column
    below W).
  """

  blocks: tuple[tuple[Array, ...], ...]
  tail: tuple[tuple[Array, ...], ...]
  tables: dict[str, Int[Array, 'B n']]
  page_size: int = flax.struct.field(pytree_node=False)
  layout: str = flax.struct.field(pytree_node=False)
  attention: str = flax.struct.field(pytree_node=False)
  # The 16-bit float dtype whose bit patterns the pools hold as uint16 (`empty_pool`), or None.
  bits_of: str | None = flax.struct.field(pytree_node=False, default=None)
  first: dict[str, Int[Array, '']] = flax.struct.field(default_factory=dict)
  prefix: dict[str, Int[Array, 'W']] = flax.struct.field(default_factory=dict)
  prefixed: Bool[Array, 'B'] | None = None

  def view(self, view: dict) -> PagedKVCache:
    """The cache with a call's view (`tables` and optionally `first`, `prefix`, `prefixed`)."""
    return self.replace(**{**_NO_VIEW, **view})

  def without_view(self) -> PagedKVCache:
    return self.replace(**_NO_VIEW)


_NO_VIEW = dict(tables={}, first={}, prefix={}, prefixed=None)


def kernel_fits(attention: str, layout: str, *, tokens: int, window: int | None, length: int) -> bool:
  """Whether the backend's kernel reads a layer of `window` for calls of `tokens` tokens
  per row over tables addressing `length` positions (else the XLA path does).

  TPU's ragged kernel reads every call; GPU's paged kernel only one-token calls of
  layers whose window (if any) is no shorter than a row: it has no window.
  """
  if attention == 'xla':
    return False
  return layout == 'tokens' or (tokens == 1 and (window is None or window >= length))


def kernel_takes_cascade(layout: str) -> bool:
  """Whether the kernel of `layout` can read a row's own pages apart from a shared
  prefix's (it yields the log-sum-exp of its scores, so the two parts can be merged):
  GPU's paged kernel can (`_gpu_kernel_with_lse`); TPU's ragged kernel returns only
  its normalised output, so its rows' tables name the prefix's pages too."""
  return layout == 'heads'


def layout_for(platform: str) -> str:
  """The pool layout the backend's kernel reads."""
  return 'heads' if platform == 'gpu' else 'tokens'


def empty_pool(
    layout: str, pages: int, page_size: int, kv_heads: int, head_dim: int, dtype, *, bits: bool = False
):
  """One layer's (or stack's) pool of `pages` pages, zeros; with `bits`, a 16-bit float
  `dtype` is held as its bit patterns, uint16 (`LayerPages.bits_of`).

  XLA:CPU writes into a 16-bit float array through a float32 copy of all of it:
  every call that writes a page would convert the whole pool there and back
  (a bfloat16 pool of 1.3 GB took 2.7 GB of temporaries in each prefill and
  decode program). Integers it writes in place.
  """
  if bits:
    if jnp.dtype(dtype).itemsize != 2 or not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f'Only a 16-bit float pool is held as bits, not a {jnp.dtype(dtype).name} one.')
    dtype = jnp.uint16
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

  `table` holds the rows' page numbers within a layer's pool for logical
  pages `first`, `first + 1`, ...; `offset` is where this layer's pages begin
  in a stacked pool (`r * P`). `prefix` (`[W]`) names a shared prefix's
  pages, read once for the rows `prefixed` marks (see `PagedKVCache`).
  """

  pool: tuple[Array, ...]
  table: Int[Array, 'B n']
  offset: Int[Array, '']
  input_mask: Bool[Array, 'B T']
  page_size: int
  layout: str
  attention: str
  first: Int[Array, ''] | int = 0
  prefix: Int[Array, 'W'] | None = None
  prefixed: Bool[Array, 'B'] | None = None
  bits_of: str | None = None  # the pool holds this 16-bit float dtype's bit patterns

  @property
  def dtype(self):
    """Of the keys and values the pool holds."""
    return jnp.dtype(self.bits_of) if self.bits_of else self.pool[0].dtype

  def _stored(self, x: Array) -> Array:
    """Keys or values as the pool holds them."""
    x = x.astype(self.dtype)
    return jax.lax.bitcast_convert_type(x, self.pool[0].dtype) if self.bits_of else x

  def _values(self, x: Array) -> Array:
    """Keys or values read from the pool."""
    return jax.lax.bitcast_convert_type(x, self.dtype) if self.bits_of else x

  @property
  def length(self) -> int:
    """Positions a row's table can address."""
    return self.table.shape[1] * self.page_size

  @property
  def whole(self) -> bool:
    """Whether the table is each row's whole table (from position 0), not columns from
    `first` (a view's, handed over as an array): the kernels read only whole tables."""
    return isinstance(self.first, int) and self.first == 0

  def write(self, k: Float[Array, 'B T K H'], v: Float[Array, 'B T K H'], positions) -> tuple[Array, ...]:
    """The pool with each valid token's key and value at its position's page.

    Padding, positions outside the table's columns, and entries naming the
    null page are dropped, so page 0 stays empty.
    """
    logical = positions // self.page_size - self.first
    n = self.table.shape[1]
    inside = self.input_mask & (logical >= 0) & (logical < n)
    entry = jnp.take_along_axis(self.table, jnp.clip(logical, 0, n - 1), axis=1)
    total = pool_pages(self.layout, self.pool)
    page = jnp.where(inside & (entry != NULL_PAGE), entry + self.offset, total)
    slot = positions % self.page_size
    if self.layout == 'tokens':
      (kv,) = self.pool
      new = self._stored(jnp.stack([k, v], axis=-2))  # B T K 2 H
      return (kv.at[page, slot].set(new, mode='drop'),)
    keys, values = self.pool
    heads_first = lambda x: self._stored(jnp.moveaxis(x, 2, 0))  # K B T H
    return (
        keys.at[:, page, slot].set(heads_first(k), mode='drop'),
        values.at[:, page, slot].set(heads_first(v), mode='drop'),
    )

  def _gather(self, pages: Int[Array, '*B n']) -> tuple[str, Array, Array]:
    """The keys and values of `pages` (rows' tables `[B, n]`, or one `[n]`), positions
    in page order, and the einsum spec of both."""
    lead = 'B' * (pages.ndim - 1)
    pages = pages + self.offset
    merge = lambda x, axis: x.reshape(*x.shape[:axis], -1, *x.shape[axis + 2:])
    if self.layout == 'tokens':
      kv = self._values(merge(jnp.take(self.pool[0], pages, axis=0), pages.ndim - 1))  # *B S K 2 H
      return lead + 'SKH', kv[..., 0, :], kv[..., 1, :]
    keys, values = (self._values(merge(jnp.take(x, pages, axis=1), pages.ndim)) for x in self.pool)  # K *B S H
    return 'K' + lead + 'SH', keys, values

  def segments(self, positions: Int[Array, 'B T'], window: int | None, dtype) -> list:
    """Attention segments (`modules.Attention._attend`) over the view: the prefix's pages
    once (rows it marks), then each row's columns. A position s is seen by a query at
    position p if s <= p (and p - s < window); a prefixed row sees the prefix's
    positions in the prefix segment only."""
    p = positions[:, :, None]

    def seen(s):
      out = s <= p
      if window is not None:
        out &= p - s < window
      return out

    s = self.first * self.page_size + jnp.arange(self.length)[None, None, :]
    row_mask = seen(s)
    segments = []
    if self.prefix is not None and self.prefix.shape[0]:
      shared = self.prefix.shape[0] * self.page_size
      marked = self.prefixed[:, None, None]
      row_mask &= ~(marked & (s < shared))
      spec, keys, values = self._gather(self.prefix)
      segments.append((spec, spec, keys, values, marked & seen(jnp.arange(shared)[None, None, :]), dtype))
    spec, keys, values = self._gather(self.table)
    segments.append((spec, spec, keys, values, row_mask, dtype))
    return segments

  def kernel(
      self, q: Float[Array, 'B T N H'], positions: Int[Array, 'B T'], *, window, softcap, dtype
  ) -> Float[Array, 'B T N H'] | None:
    """Attention by the backend's Pallas kernel, or None where none fits.

    Every row's real tokens come first, at consecutive positions (right
    padding); `q` is already scaled. Padded tokens' outputs are not used.
    Only a whole table is read by a kernel (`whole`): they take a row's
    positions from 0, and GPU's cascade its columns past the prefix's. Columns
    from `first` (a local layer's window, in a view) take the XLA path, which
    masks by position.
    `dtype`: of the cascade's products over the prefix (the attention's product
    dtype, as the XLA path's); the kernels take q in the pool's dtype.
    """
    b, t, n, h = q.shape
    if not (self.whole and kernel_fits(self.attention, self.layout, tokens=t, window=window, length=self.length)):
      return None
    interpret = self.attention in ('interpret', 'reference')
    table = self.table + self.offset
    if self.layout == 'heads' and self.prefix is not None:  # GPU, the prefix read once
      return self._cascade(q[:, 0], positions[:, 0], table, softcap, interpret, dtype)[:, None]
    if self.layout == 'heads':  # GPU: the kernel has no window (`kernel_fits`)
      keys, values = map(self._values, self.pool)
      out, _ = _gpu_kernel_with_lse(
          q[:, 0].astype(keys.dtype), keys, values, table, positions[:, 0] + 1,
          softcap=softcap, interpret=interpret, null_page=self.offset,
      )
      return out[:, None]
    from jax.experimental.pallas.ops.tpu.ragged_paged_attention import kernel as tpu_ragged

    kv = self._values(self.pool[0])
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

  def _cascade(self, q: Float[Array, 'B N H'], positions: Int[Array, 'B'], table, softcap, interpret, dtype):
    """One-token attention over the shared prefix's pages, read once by XLA for every
    row (a matrix product of all the rows' queries), and over each row's own pages,
    from the prefix's end, by GPU's kernel; the two softmaxes merged by their
    log-sum-exps. Every row continues the prefix (the host hands a kernel the
    prefix only then), so no row masks it: a row's own positions all follow it.
    The prefix's two products take their inputs in `dtype` (a bfloat16 model's
    queries and weights rounded as the kernel and the XLA path round them) and
    sum in float32."""
    b, n, h = q.shape
    keys, values = map(self._values, self.pool)
    k = keys.shape[0]
    shared = self.prefix.shape[0] * self.page_size
    own, own_lse = _gpu_kernel_with_lse(
        q.astype(keys.dtype), keys, values, table[:, self.prefix.shape[0]:],
        jnp.maximum(positions + 1 - shared, 0).astype(jnp.int32), softcap=softcap, interpret=interpret,
        null_page=self.offset,
    )
    _, prefix_keys, prefix_values = self._gather(self.prefix)  # K S H
    # Each key/value head's queries of every row, Q = B x G of them: two batched matrix
    # products over K in their plain form (XLA:CPU cannot run the transposed form it
    # picks for 'BKGS,KSH' in bfloat16).
    g = n // k
    grouped = q.reshape(b, k, g, h).swapaxes(0, 1).reshape(k, b * g, h)
    scores = jnp.einsum('KQH,KSH->KQS', grouped.astype(dtype), prefix_keys.astype(dtype),
                        preferred_element_type=jnp.float32)
    if softcap is not None:
      scores = jnp.tanh(scores / softcap) * softcap
    top = scores.max(axis=-1)
    weights = jnp.exp(scores - top[..., None])
    before = jnp.einsum('KQS,KSH->KQH', weights.astype(dtype), prefix_values.astype(dtype),
                        preferred_element_type=jnp.float32)
    by_row = lambda x: x.reshape(k, b, g, *x.shape[2:]).swapaxes(0, 1).reshape(b, n, *x.shape[2:])
    # The kernel's normalised output is a part whose maximum is its log-sum-exp and whose sum is 1.
    out, _ = _merge_parts(
        jnp.stack([by_row(before), own]), jnp.stack([by_row(top), own_lse]),
        jnp.stack([by_row(weights.sum(axis=-1)), jnp.ones_like(own_lse)]),
    )
    return out


def _merge_parts(out, top, total):
  """One softmax's output from parts of its keys (axis 0), each given as its unnormalised
  output, its scores' maximum and its sum of exponentials: the normalised output and the
  log-sum-exp of all the scores (minus infinity, and zeros, where no part has a key)."""
  top_all = top.max(axis=0)
  scale = jnp.exp(top - top_all)
  total_all = (total * scale).sum(axis=0)
  out = (out * scale[..., None]).sum(axis=0) / jnp.maximum(total_all, 1e-30)[..., None]
  lse = jnp.where(total_all > 0, top_all + jnp.log(jnp.maximum(total_all, 1e-30)), -jnp.inf)
  return out, lse


# Programs (rows x key/value heads x query blocks x splits) the GPU kernel is given
# at least, where a row's pages allow: a few waves over an H100's or H200's 132
# multiprocessors, so that rows of unequal lengths even out.
_GPU_PROGRAMS = 1024


_GPU_BLOCK_H = 16  # query heads of a group per program of GPU's kernel (its dots need 16 rows)


def gpu_blocks(
    rows: int, heads: int, kv_heads: int, pages: int, page_size: int, head_dim: int
) -> tuple[int, int, int]:
  """How GPU's paged kernel walks the tables of `rows` rows of `pages` columns for
  `heads` query heads over `kv_heads` key/value heads: (splits, pages per split,
  pages per compute block). A compute block holds 16,384 key elements: 8
  pages of 16 positions at head_dim 128 (JAX's default), 4 at 256 (its keys and
  values 32 KB each in 16 bits); the pages are split only as far as the grid
  needs programs (`_GPU_PROGRAMS`). The table is padded to `splits *
  pages_per_split` columns with the null page, which the row's length masks.

  JAX's wrapper takes blocks that divide the table: for Gemma2-2B's own pages
  of 24 columns that was 8 splits of one 16-position page each, 8,192 programs
  of 8 warps each doing a [16, 256] x [256, 16] product three times: 172 us a
  layer at 256 slots on an H200, 0.9 TB/s of keys and values.
  """
  per_block = max(1, min(pages, 16384 // (page_size * head_dim)))
  blocks = max(1, -(-pages // per_block))
  programs_per_row = kv_heads * -(-(heads // kv_heads) // _GPU_BLOCK_H)
  splits = max(1, min(blocks, -(-_GPU_PROGRAMS // max(1, rows * programs_per_row))))
  return splits, -(-blocks // splits) * per_block, per_block


def _gpu_kernel_with_lse(
    q: Float[Array, 'B N H'], keys, values, table: Int[Array, 'B n'], lengths: Int[Array, 'B'], *,
    softcap, interpret: bool, null_page=0, blocks: tuple[int, int, int] | None = None, warps: int = 8,
) -> tuple[Float[Array, 'B N H'], Float[Array, 'B N']]:
  """JAX's GPU paged attention kernel (`paged_attention_kernel`, which reads each row's
  first `lengths` positions of its `table`'s pages) with its partial sums combined here
  rather than by JAX's wrapper, which drops them: the normalised output in float32 and
  the log-sum-exp of each query's scores (minus infinity where a row has no key).

  The grid is (key/value head, block of 16 query heads of its group, split of the
  table's pages); each split yields an unnormalised output, its scores' maximum and its
  sum of exponentials, which are merged across splits. `blocks`: (splits, pages per
  split, pages per compute block), by default `gpu_blocks`'s; the table is padded with
  `null_page` (a page of finite values: the masked part of a block still multiplies
  its values by zero) to `splits * pages per split` columns. `warps`: per program.
  """
  from jax.experimental import pallas as pl
  from jax.experimental.pallas import triton as plgpu
  from jax.experimental.pallas.ops.gpu import paged_attention as gpu_paged

  b, n, h = q.shape
  k, _, page, _ = keys.shape
  group, block_h = n // k, _GPU_BLOCK_H
  padded = -(-group // block_h) * block_h
  splits, per_split, per_block = blocks or gpu_blocks(b, n, k, table.shape[1], page, h)
  columns = splits * per_split
  if columns < table.shape[1] or per_split % per_block:
    raise ValueError(f'blocks {(splits, per_split, per_block)} do not walk a table of {table.shape[1]} pages')
  table = jnp.pad(table, ((0, 0), (0, columns - table.shape[1])), constant_values=null_page)
  body = functools.partial(
      gpu_paged.paged_attention_kernel, num_heads=group,
      pages_per_compute_block=per_block, mask_value=gpu_paged.DEFAULT_MASK_VALUE,
      attn_logits_soft_cap=softcap,
  )

  def one_row(q, table, length):
    q = jnp.pad(q.reshape(k, group, h), ((0, 0), (0, padded - group), (0, 0)))
    whole_pool = pl.BlockSpec((None, *keys.shape[1:]), lambda i, j, s: (i, 0, 0, 0))
    outputs = pl.BlockSpec((None, None, block_h, h), lambda i, j, s: (s, i, j, 0))
    sums = pl.BlockSpec((None, None, block_h), lambda i, j, s: (s, i, j))  # and maxima
    out, total, top = pl.pallas_call(
        body,
        grid=(k, padded // block_h, splits),
        in_specs=[
            pl.BlockSpec((None, block_h, h), lambda i, j, s: (i, j, 0)),
            whole_pool, None, whole_pool, None,  # no key or value scales
            pl.BlockSpec((None, per_split), lambda i, j, s: (s, 0)),
            pl.BlockSpec((1,), lambda i, j, s: (0,)),
        ],
        out_specs=[outputs, sums, sums],
        out_shape=[
            jax.ShapeDtypeStruct((splits, k, padded, h), jnp.float32),
            jax.ShapeDtypeStruct((splits, k, padded), jnp.float32),
            jax.ShapeDtypeStruct((splits, k, padded), jnp.float32),
        ],
        interpret=interpret,
        compiler_params=plgpu.CompilerParams(num_warps=warps, num_stages=2),
        name='paged_attention_with_lse',
    )(q, keys, None, values, None, table.reshape(splits, per_split), length[None])
    out, lse = _merge_parts(out, top, total)  # across the splits
    return out[:, :group].reshape(n, h), lse[:, :group].reshape(n)

  return jax.vmap(one_row)(q, table, lengths)


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
