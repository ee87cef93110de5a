"""`Transformer(config)`: the one Gemma forward pass, shared by sampler and trainer.

Layers are stored as one stack per position in the attention pattern and run
with `jax.lax.scan` over the whole periods, so a 62-layer model compiles one
period (six layers for Gemma 3), not 62. Layers after the last whole period
(26 = 4 * 6 + 2 for Gemma 3 1B) are kept unstacked in `tail`.

Masks. Without a cache, `attention_mask[b, t, u]` says whether token t of row b
may attend to token u of the same call. For two right-padded rows (`.` is
padding) the default causal mask is:

    tokens       input_mask    attention_mask[0]   attention_mask[1]
    a b c d      1 1 1 1       1 . . .             1 . . .
    e f . .      1 1 0 0       1 1 . .             1 1 . .
                               1 1 1 .             1 1 . .
                               1 1 1 1             1 1 . .

Packed rows pass `attention_mask` from `segment_mask(segment_ids)` and
per-segment positions. Local layers further restrict every mask to keys with
`query_position - key_position < sliding_window`.

With a cache, each token also attends to the cached keys whose recorded
position is at most its own; this call's valid tokens are then written to
slot `(position - origin) % S` of every layer and recorded in
`cache.positions`, where `origin` is the position of the row's first own
token (the prefix's end for a row that continues `shared`, else 0): a row's
tokens fill its slots from slot 0 on. Because the positions travel with the
cache, ragged rows need no padding inside the cache and a row is reset by
marking its positions -1. A caller that knows how far its rows reach passes
`cache_view`, and the call reads and writes only the cache's spans below it
(`LayerCache`).

A shared prefix. `shared` is a one-row cache holding a prompt prefix that
many rows continue; the rows marked `prefixed` attend to its slots as to
their own (same position and window rules), so the prefix is stored and read
once, and each row stores only its own tokens, from the prefix's end on:

    shared (1 row)    positions 0 .. 699        the few-shot prefix
    row 0, prefixed   positions 700 .. 760      a question and its sample
    row 1, prefixed   positions 700 .. 742      the same question, another sample
    row 2             positions 0 .. 790        a prompt held whole

A one-token call (decoding) writes each unscanned layer's keys and values
into the cache before attending to it (XLA then updates the cache in place);
longer calls attend to the cache and to their own tokens apart and write
afterwards, so that a chunk longer than a sliding window sees every key it
needs. `config.scan_layers=False` (`unstack_layers`) runs every layer on its
own: slower to compile, but on CPU nothing is sliced out of a stack.

A paged cache (`init_paged_cache`, drawn in `paged`) replaces the rows, the
ring slots and `shared`: every row is a page table handed over with the call,
sequences share pages, and each layer writes its keys and values into its
pool before attending, on TPU and GPU through JAX's Pallas kernels.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from wcse_jax.model import cpu_kernels, paged
from wcse_jax.model.config import AttentionKind, GemmaConfig
from wcse_jax.model.modules import (
    Block, Embedder, LayerCache, RMSNorm, is_16bit_float, rope_rotations, span_widths, write_cache,
)


@flax.struct.dataclass
class KVCache:
  """The cache of a whole model, laid out like its parameters.

  `blocks[j]` holds the stacked layers at pattern position j (`[R, B, ...]`),
  `tail[i]` the i-th layer run on its own (`[B, ...]`; see `LayerCache` for the
  key and value layouts); `positions[kind]` (`[B, S]`) records which position
  each slot of that kind of layer holds, -1 if none; `prefixed[b]` whether row
  b continues the one-row `shared` prefix the model is called with.
  """

  blocks: tuple[LayerCache, ...]
  tail: tuple[LayerCache, ...]
  positions: dict[str, Int[Array, 'B S']]
  prefixed: Bool[Array, 'B']

  @property
  def batch_size(self) -> int:
    return next(iter(self.positions.values())).shape[0]


def cache_sizes(config: GemmaConfig, max_len: int) -> dict[AttentionKind, int]:
  """Slots per row for each kind of layer: local layers keep only their window."""
  sizes = {AttentionKind.GLOBAL: max_len}
  if AttentionKind.LOCAL in config.layer_pattern:
    sizes[AttentionKind.LOCAL] = min(config.sliding_window, max_len)
  return sizes


def init_cache(
    config: GemmaConfig, batch_size: int, max_len: int, dtype=jnp.float32, *,
    span: int | None = None, transposed: bool = False, slot_rows: bool = False, bits: bool = False,
) -> KVCache:
  """An empty cache for `batch_size` rows of up to `max_len` positions, its slots
  in spans of `span` (one span if None), keys `[B, K, H, S]` and values
  `[B, K, S, H]`, or the other way round if `transposed`, or both `[B, K, S, H]`
  if `slot_rows` (see `LayerCache`); with `bits`, a bfloat16 cache is held as its bits."""
  if transposed and slot_rows:
    raise ValueError('a cache is transposed (a shared prefix) or of slot rows, not both')
  bits_of = None
  if bits and jnp.dtype(dtype) == jnp.bfloat16:
    bits_of, dtype = 'bfloat16', jnp.uint16
  sizes = cache_sizes(config, max_len)
  k, h = config.num_kv_heads, config.head_dim

  def layer(kind, *lead):
    widths = span_widths(sizes[kind], span)
    slots_last, slots_first = (*lead, batch_size, k, h), (*lead, batch_size, k)
    keys = lambda w: (*slots_first, w, h) if transposed or slot_rows else (*slots_last, w)
    values = lambda w: (*slots_last, w) if transposed else (*slots_first, w, h)
    return LayerCache(
        keys=tuple(jnp.zeros(keys(w), dtype) for w in widths),
        values=tuple(jnp.zeros(values(w), dtype) for w in widths),
        transposed=transposed,
        slot_rows=slot_rows,
        bits_of=bits_of,
    )

  return KVCache(
      blocks=tuple(layer(kind, config.num_repeats) for kind in stacked_kinds(config)),
      tail=tuple(layer(kind) for kind in tail_kinds(config)),
      positions={
          kind.value: jnp.full((batch_size, size), -1, jnp.int32)
          for kind, size in sizes.items()
      },
      prefixed=jnp.zeros((batch_size,), bool),
  )


def init_paged_cache(
    config: GemmaConfig,
    num_pages: dict[str, int],
    *,
    page_size: int,
    layout: str = 'tokens',
    attention: str = 'xla',
    dtype=jnp.float32,
    bits: bool = False,
) -> paged.PagedKVCache:
  """Empty page pools: `num_pages[kind]` pages per layer of each kind (page 0 the null page).

  `bits`: a 16-bit float `dtype` is held as its bit patterns (`paged.empty_pool`;
  for XLA:CPU, which writes into 16-bit floats through a float32 copy).

  The rows' tables are handed over with each call (`cache.replace(tables=...)`).
  """
  if layout not in paged.LAYOUTS or attention not in paged.ATTENTION:
    raise ValueError(f'Unknown page layout {layout!r} or attention {attention!r}.')
  k, h = config.num_kv_heads, config.head_dim
  bits = bits and is_16bit_float(dtype)
  pool = lambda kind, layers=1: paged.empty_pool(
      layout, layers * num_pages[kind.value], page_size, k, h, dtype, bits=bits
  )
  return paged.PagedKVCache(
      blocks=tuple(pool(kind, config.num_repeats) for kind in stacked_kinds(config)),
      tail=tuple(pool(kind) for kind in tail_kinds(config)),
      tables={},
      page_size=page_size, layout=layout, attention=attention,
      bits_of=jnp.dtype(dtype).name if bits else None,
  )


def copy_pages(
    config: GemmaConfig,
    cache: paged.PagedKVCache,
    source: dict[str, Int[Array, 'M']],
    target: dict[str, Int[Array, 'M']],
) -> paged.PagedKVCache:
  """The cache with page `target[kind][m]` a copy of `source[kind][m]` in every layer of that kind."""
  copy = lambda pool, kind, layers: paged.copy_in_pool(
      cache.layout, pool, source[kind.value], target[kind.value], layers
  )
  return cache.replace(
      blocks=tuple(
          copy(pool, kind, config.num_repeats) for pool, kind in zip(cache.blocks, stacked_kinds(config))
      ),
      tail=tuple(copy(pool, kind, 1) for pool, kind in zip(cache.tail, tail_kinds(config))),
  )


def stacked_kinds(config: GemmaConfig) -> tuple[AttentionKind, ...]:
  """The kind of each stack in `Transformer.blocks` (none if no whole period)."""
  return config.layer_pattern if config.num_repeats else ()


def tail_kinds(config: GemmaConfig) -> tuple[AttentionKind, ...]:
  """The kind of each layer in `Transformer.tail`."""
  return config.layer_kinds[config.num_layers - config.num_tail_layers :]


def causal_mask(
    positions: Int[Array, 'B T'], input_mask: Bool[Array, 'B T']
) -> Bool[Array, 'B T T']:
  """Token t attends to valid tokens at positions up to its own."""
  return (positions[:, None, :] <= positions[:, :, None]) & input_mask[:, None, :]


def segment_mask(
    positions: Int[Array, 'B T'], segment_ids: Int[Array, 'B T']
) -> Bool[Array, 'B T T']:
  """Causal within each packed segment; segment id 0 marks padding."""
  same = segment_ids[:, None, :] == segment_ids[:, :, None]
  return causal_mask(positions, segment_ids != 0) & same


def _window(mask, q_pos, k_pos, window):
  return mask & (q_pos[:, :, None] - k_pos[:, None, :] < window)


class Transformer(nnx.Module):
  """A Gemma 1, 2 or 3 text model.

  >>> import dataclasses
  >>> from wcse_jax.model import get_preset
  >>> config = dataclasses.replace(get_preset('gemma3-270m'), vocab_size=512, num_layers=2)
  >>> model = Transformer(config, rngs=nnx.Rngs(0))        # random weights
  >>> tokens, positions = jnp.array([[2, 7, 9]]), jnp.array([[0, 1, 2]])
  >>> logits, _ = model(tokens, positions)
  >>> logits.shape                                          # [B, T, V]
  (1, 3, 512)
  >>> cache = init_cache(config, batch_size=1, max_len=16)
  >>> _, cache = model(tokens, positions, cache=cache)      # prefill
  >>> step, cache = model(jnp.array([[11]]), jnp.array([[3]]), cache=cache)
  >>> bool(jnp.allclose(step[0, 0], model(jnp.array([[2, 7, 9, 11]]), jnp.arange(4)[None])[0][0, 3], atol=1e-4))
  True
  """

  def __init__(
      self,
      config: GemmaConfig,
      *,
      rngs: nnx.Rngs,
      dtype=jnp.float32,
      param_dtype=jnp.float32,
  ):
    self.config = config
    self.dtype = dtype
    self.embedder = Embedder(config, rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def stacked_block(kind: AttentionKind) -> Block:
      @nnx.split_rngs(splits=config.num_repeats)
      @nnx.vmap(in_axes=(0,), out_axes=0)
      def create(rngs):
        return Block(config, kind, rngs=rngs, dtype=dtype, param_dtype=param_dtype)

      return create(rngs)

    self.blocks = nnx.List([stacked_block(kind) for kind in stacked_kinds(config)])
    self.tail = nnx.List([
        Block(config, kind, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        for kind in tail_kinds(config)
    ])
    self.final_norm = RMSNorm(
        config.embed_dim, eps=config.rms_norm_eps, param_dtype=param_dtype
    )

  def __call__(
      self,
      tokens: Int[Array, 'B T'],
      positions: Int[Array, 'B T'],
      *,
      attention_mask: Bool[Array, 'B T T'] | None = None,
      input_mask: Bool[Array, 'B T'] | None = None,
      cache: KVCache | None = None,
      shared: KVCache | None = None,
      remat: bool = False,
      return_hidden: bool = False,
      cache_view: int | None = None,
      rotations: dict | None = None,
  ) -> tuple[Float[Array, 'B T V'], KVCache | None]:
    """Logits (float32) for every token, and the cache with this call's tokens.

    Args:
      tokens: token ids.
      positions: position of each token in its sequence (or packed segment).
      attention_mask: which of this call's tokens each token attends to;
        defaults to `causal_mask(positions, input_mask)`.
      input_mask: which tokens are real (False for padding): padding is neither
        attended to by default nor written to the cache.
      cache: keys and values of earlier calls, from `init_cache`; or page
        pools from `init_paged_cache` with the rows' page tables (`paged`),
        over which every call writes its tokens' keys and values and then
        attends by position (no `shared`, no `attention_mask`).
      shared: a one-row cache of a prompt prefix (read-only), which the rows
        of `cache` marked `prefixed` continue: they attend to its keys as to
        their own, and it is stored once for all of them.
      remat: recompute each layer's activations in the backward pass.
      return_hidden: return the final normed hidden states [B, T, D] instead
        of logits; `logits(hidden)` turns any slice of them into logits, which
        lets a trainer never hold [B, T, V] at once.
      cache_view: read and write only the first `cache_view` slots of each
        row of `cache` (all if None). The caller promises that each row's
        tokens, cached and new, lie at positions below `origin + cache_view`.
      rotations: `rope_rotations(config, positions)`, if the caller has them.
        A decode loop computes the next step's in this one and carries them:
        XLA:CPU otherwise evaluates the sines and cosines again inside every
        layer's rotation of its queries and keys.
    """
    config = self.config
    if rotations is None:
      rotations = rope_rotations(config, positions)
    if isinstance(cache, paged.PagedKVCache):
      if shared is not None or attention_mask is not None:
        raise ValueError('A paged cache holds the prefix in its pages and masks by position.')
      return self._paged(tokens, positions, input_mask, cache, return_hidden, rotations)
    if shared is not None and cache is None:
      raise ValueError('A shared prefix is read by the rows of a cache: pass `cache` too.')
    if input_mask is None:
      input_mask = jnp.ones(tokens.shape, bool)
    if attention_mask is None:
      attention_mask = causal_mask(positions, input_mask)
    masks = {AttentionKind.GLOBAL: attention_mask}
    cache_masks, tail_masks, slots = {}, {}, {}
    if AttentionKind.LOCAL in config.layer_pattern:
      masks[AttentionKind.LOCAL] = _window(
          attention_mask, positions, positions, config.sliding_window
      )
    # A one-token call (decoding) writes each tail layer's cache before reading
    # it (`write_slots`), which lets XLA update it in place; the scanned stacks
    # and longer calls attend to the cache and this call's keys apart, then write.
    write_first = cache is not None and tokens.shape[1] == 1
    new_positions, shared_masks = {}, {}
    if cache is not None:
      origin = jnp.zeros(cache.prefixed.shape, jnp.int32)
      if shared is not None:
        prefix_end = jnp.max(next(iter(shared.positions.values()))) + 1
        origin = jnp.where(cache.prefixed, prefix_end, 0)
      for kind in masks:
        cached_pos = cache.positions[kind.value]
        slots[kind] = _write_slots(positions, input_mask, cached_pos.shape[1], origin)
        new_positions[kind] = _scatter_rows(cached_pos, slots[kind], positions)
        cache_masks[kind] = self._cache_mask(cached_pos, positions, kind)
        if write_first:
          tail_masks[kind] = self._cache_mask(new_positions[kind], positions, kind)
        if shared is not None:
          shared_pos = jnp.where(cache.prefixed[:, None], shared.positions[kind.value], -1)
          shared_masks[kind] = self._cache_mask(shared_pos, positions, kind)

    def run_block(block_def, block_state, x, layer_cache, shared_cache, kind, write=False):
      block = nnx.merge(block_def, block_state)
      return block(
          x, positions, masks[kind], rotations=rotations, cache=layer_cache,
          cache_mask=(tail_masks if write else cache_masks).get(kind),
          write_slots=slots[kind] if write else None,
          shared=shared_cache, shared_mask=shared_masks.get(kind), view=cache_view,
      )

    if remat:
      run_block = jax.checkpoint(run_block, static_argnums=(0, 5, 6))

    x = self.embedder.encode(tokens)
    block_caches = ()
    if config.num_repeats:
      split_blocks = [nnx.split(b) for b in self.blocks]
      block_defs = [d for d, _ in split_blocks]

      # The stacked caches go in as scan inputs (one layer's slice per step) and
      # this call's keys and values come out stacked; they are written after the
      # scan, so XLA never copies a whole stack inside the loop.
      def period(x, inputs):
        states, caches, shared_caches = inputs
        new_kv = []
        for j, kind in enumerate(stacked_kinds(config)):
          layer_cache = caches[j] if caches is not None else None
          shared_cache = shared_caches[j] if shared_caches is not None else None
          x, k, v = run_block(block_defs[j], states[j], x, layer_cache, shared_cache, kind, False)
          new_kv.append((k, v))
        return x, (tuple(new_kv) if caches is not None else None)

      scanned = (
          tuple(s for _, s in split_blocks),
          cache.blocks if cache is not None else None,
          shared.blocks if shared is not None else None,
      )
      x, new_kv = jax.lax.scan(period, x, scanned, length=config.num_repeats)
      if cache is not None:
        block_caches = tuple(
            write_cache(layer_cache, k, v, slots[kind], stacked=True, view=cache_view)
            for layer_cache, (k, v), kind in zip(cache.blocks, new_kv, stacked_kinds(config))
        )
    tail_caches = []
    for i, (block, kind) in enumerate(zip(self.tail, tail_kinds(config))):
      block_def, block_state = nnx.split(block)
      layer_cache = cache.tail[i] if cache is not None else None
      shared_cache = shared.tail[i] if shared is not None else None
      x, k, v = run_block(block_def, block_state, x, layer_cache, shared_cache, kind, write_first)
      if write_first:
        tail_caches.append(k)  # the written cache
      elif cache is not None:
        tail_caches.append(write_cache(layer_cache, k, v, slots[kind], view=cache_view))

    out = self.final_norm(x) if return_hidden else self.logits(self.final_norm(x))
    if cache is None:
      return out, None
    positions_by_kind = {kind.value: p for kind, p in new_positions.items()}
    return out, KVCache(
        blocks=block_caches, tail=tuple(tail_caches), positions=positions_by_kind,
        prefixed=cache.prefixed,
    )

  def _paged(self, tokens, positions, input_mask, cache: paged.PagedKVCache, return_hidden, rotations):
    """The forward pass over a paged cache: each layer writes its keys and values
    into its pool and attends to the rows' pages (see `paged`)."""
    config = self.config
    if input_mask is None:
      input_mask = jnp.ones(tokens.shape, bool)

    def run(block, x, pool, kind, offset):
      pages = paged.LayerPages(
          pool=pool, table=cache.tables[kind.value], offset=offset, input_mask=input_mask,
          page_size=cache.page_size, layout=cache.layout, attention=cache.attention,
          first=cache.first.get(kind.value, 0), prefix=cache.prefix.get(kind.value),
          prefixed=cache.prefixed, bits_of=cache.bits_of,
      )
      x, pool, _ = block(x, positions, None, rotations=rotations, pages=pages)
      return x, pool

    x = self.embedder.encode(tokens)
    blocks = ()
    if config.num_repeats:
      split_blocks = [nnx.split(b) for b in self.blocks]
      kinds = stacked_kinds(config)

      # Pools ride in the carry and are updated in place; layer r's pages start
      # at r * P of its stack's pool.
      def period(carry, inputs):
        x, pools = carry
        states, r = inputs
        new = []
        for j, kind in enumerate(kinds):
          per_layer = paged.pool_pages(cache.layout, pools[j]) // config.num_repeats
          block = nnx.merge(split_blocks[j][0], states[j])
          x, pool = run(block, x, pools[j], kind, r * per_layer)
          new.append(pool)
        return (x, tuple(new)), None

      states = tuple(s for _, s in split_blocks)
      (x, blocks), _ = jax.lax.scan(
          period, (x, cache.blocks), (states, jnp.arange(config.num_repeats)),
      )
    tail = []
    for block, pool, kind in zip(self.tail, cache.tail, tail_kinds(config)):
      x, pool = run(block, x, pool, kind, jnp.int32(0))
      tail.append(pool)
    out = self.final_norm(x) if return_hidden else self.logits(self.final_norm(x))
    return out, cache.replace(blocks=blocks, tail=tuple(tail))

  def _cache_mask(self, cached_pos: Int[Array, 'B S'], positions: Int[Array, 'B T'], kind) -> Bool[Array, 'B T S']:
    """Which cached slots each token sees: held positions up to its own (within the window)."""
    seen = (cached_pos[:, None, :] >= 0) & (cached_pos[:, None, :] <= positions[:, :, None])
    if kind == AttentionKind.LOCAL:
      seen = _window(seen, positions, cached_pos, self.config.sliding_window)
    return seen

  def logits(self, hidden: Float[Array, '*B D'], *, vocab_major: bool = False) -> Float[Array, '*B V']:
    """Float32 logits (soft-capped where the model does) from final hidden states;
    `vocab_major`: of hidden states `[B, D]`, the logits `[V, B]` (`Embedder.decode`)."""
    logits = self.embedder.decode(hidden, vocab_major=vocab_major).astype(jnp.float32)
    if self.config.final_logit_softcap is not None:
      cap = self.config.final_logit_softcap
      logits = jnp.tanh(logits / cap) * cap
    return logits

  def logits_with_statistics(
      self, hidden: Float[Array, 'B D']
  ) -> tuple[Float[Array, 'V B'], tuple[Float[Array, 'N B'], Float[Array, 'N B']] | None]:
    """The vocabulary-major logits `[V, B]` (`logits(hidden, vocab_major=True)`) and,
    where our CPU kernel computes the logits (`cpu_kernels.logits_with_statistics`:
    its bfloat16 products chosen, no final soft-cap), each row's maxima and exp-sums
    over blocks of the vocabulary, which `rules.sample_next` takes; else None."""
    table = self.embedder.input_embedding[...]
    if self.config.final_logit_softcap is None and cpu_kernels.used(
        'VD,BD->VB', table, hidden, self.embedder.dtype
    ):
      logits, maxima, sums = cpu_kernels.logits_with_statistics(table, hidden)
      return logits, (maxima, sums)
    return self.logits(hidden, vocab_major=True), None

  def top_logits(
      self, hidden: Float[Array, 'B D'], k: int
  ) -> tuple[Float[Array, 'B k'], Int[Array, 'B k'], tuple[Float[Array, 'N B'], Float[Array, 'N B']]] | None:
    """Each row's k largest logits (`jax.lax.top_k`'s values and indices) with the
    block statistics of `logits_with_statistics`, without the logits themselves,
    where our CPU kernel computes them (`cpu_kernels.logits_top_k`); else None."""
    table = self.embedder.input_embedding[...]
    if self.config.final_logit_softcap is None and k <= table.shape[0] and cpu_kernels.used(
        'VD,BD->VB', table, hidden, self.embedder.dtype
    ):
      values, indices, maxima, sums = cpu_kernels.logits_top_k(table, hidden, k)
      return values, indices, (maxima, sums)
    return None


def _write_slots(
    positions: Int[Array, 'B T'], input_mask: Bool[Array, 'B T'], size: int, origin: Int[Array, 'B']
) -> Int[Array, 'B T']:
  """Cache slot of each token (counted from its row's `origin`), or `size` (out of
  range: dropped) if not written.

  Only a row's last `size` positions are written, so a chunk longer than a
  sliding window writes each slot once.
  """
  last = jnp.max(jnp.where(input_mask, positions, -1), axis=1, keepdims=True)
  keep = input_mask & (positions > last - size)
  return jnp.where(keep, (positions - origin[:, None]) % size, size)


def _scatter_rows(buffer, slots, values):
  """Writes `values` ([B, T]) at each row's slots of `buffer` ([B, S])."""
  rows = jnp.arange(slots.shape[0])[:, None]
  return buffer.at[rows, slots].set(values.astype(buffer.dtype), mode='drop')


def unstack_layers(
    config: GemmaConfig, graphdef: nnx.GraphDef, params: nnx.State, *, donate: bool = False
) -> tuple[GemmaConfig, nnx.GraphDef, nnx.State]:
  """The same model with every layer on its own (`scan_layers=False`), same arrays.

  On CPU and GPU, slicing a layer out of a stack inside a loop copies it, weights
  and cache alike; one array per layer is read where it lies. Compiles every layer.

  `donate`: each stacked array is deleted as soon as its layers are sliced out of
  it, so that the model is held about once, not twice, along the way (`params`
  is unusable afterwards); else both are held until the caller drops `params`.
  """
  if not config.scan_layers:
    return config, graphdef, params
  flat = config.replace(scan_layers=False)
  model = nnx.merge(graphdef, params)
  period = len(config.layer_pattern)
  layers: list = [None] * config.num_layers

  def slices(x):
    parts = [x[r] for r in range(config.num_repeats)]
    if donate and isinstance(x, jax.Array):
      jax.block_until_ready(parts)
      x.delete()
    return tuple(parts)

  for j, stack in enumerate(model.blocks):
    sliced = jax.tree.map(slices, nnx.split(stack)[1])
    for r in range(config.num_repeats):
      layers[r * period + j] = jax.tree.map(lambda parts: parts[r], sliced, is_leaf=lambda x: isinstance(x, tuple))
  for i, block in enumerate(model.tail):
    layers[config.num_repeats * period + i] = nnx.split(block)[1]
  target = nnx.eval_shape(lambda: Transformer(
      flat, rngs=nnx.Rngs(0), dtype=model.dtype, param_dtype=_param_dtype(params)
  ))
  new_graphdef, new_params = nnx.split(target)
  pure = nnx.to_pure_dict(new_params)
  pure['tail'] = {i: nnx.to_pure_dict(state) for i, state in enumerate(layers)}
  old = nnx.to_pure_dict(params)
  pure['embedder'], pure['final_norm'] = old['embedder'], old['final_norm']
  nnx.replace_by_pure_dict(new_params, pure)
  return flat, new_graphdef, new_params


def _param_dtype(params: nnx.State):
  """The parameters' float dtype (the lookup table `embedding_bits` holds integers)."""
  return next(x.dtype for x in jax.tree.leaves(params) if jnp.issubdtype(x.dtype, jnp.floating))


def with_embedding_bits(
    config: GemmaConfig, graphdef: nnx.GraphDef, params: nnx.State
) -> tuple[GemmaConfig, nnx.GraphDef, nnx.State]:
  """The same model with a 16-bit embedding table also held as its bits (integers), from
  which `Embedder.encode` gathers the input tokens' rows: XLA:CPU gathers from a
  bfloat16 table by converting the whole table first, on every call. A float32 table
  is gathered as it is (the model comes back unchanged but for the flag).
  """
  if config.embedding_bits:
    return config, graphdef, params

  def fill(pure):
    table = pure['embedder']['input_embedding']
    if is_16bit_float(table.dtype):
      pure['embedder']['embedding_bits'] = jax.lax.bitcast_convert_type(table, jnp.uint16)

  return _flagged(config, graphdef, params, fill, embedding_bits=True)


def _flagged(config: GemmaConfig, graphdef: nnx.GraphDef, params: nnx.State, fill, **flags):
  """The model under `config.replace(**flags)`: its parameters as they were, changed by
  `fill` (given their pure dict), in the places that config's model has."""
  flagged = config.replace(**flags)
  model = nnx.merge(graphdef, params)
  target = nnx.eval_shape(lambda: Transformer(
      flagged, rngs=nnx.Rngs(0), dtype=model.dtype, param_dtype=_param_dtype(params)
  ))
  new_graphdef, new_params = nnx.split(target)
  pure = nnx.to_pure_dict(params)
  fill(pure)
  nnx.replace_by_pure_dict(new_params, pure)
  return flagged, new_graphdef, new_params


def _layers(pure) -> list[dict]:
  """Every layer's parameters in a model's pure dict: the stacks' (`[R, ...]`) and the tail's."""
  return [*pure.get('blocks', {}).values(), *pure.get('tail', {}).values()]


def with_fused_projections(
    config: GemmaConfig, graphdef: nnx.GraphDef, params: nnx.State, *, donate: bool = False
) -> tuple[GemmaConfig, nnx.GraphDef, nnx.State]:
  """The same model with each layer's q, k and v weights side by side in one matrix
  `qkv_proj` [D, (N + 2K) * H] and the GeGLU's gate and up in one `gate_up_proj`
  [D, 2F] (`config.fused_projections`): one product each, the same columns.

  A decode step then runs two products where it ran five: on GPU two launches,
  each wider (not yet timed on a GPU: `benchmarks/device_check.sh` compares the
  two); on CPU, packed after this (`with_packed_weights`), one call and one walk
  over the parts that both threads share (`cpu_kernels.packed_product_parts`).
  `donate`: each layer's separate weights are deleted once fused (`params` is
  unusable afterwards), so that a large model is not held twice along the way.
  """
  if config.fused_projections:
    return config, graphdef, params
  if config.packed_weights:
    raise ValueError('with_fused_projections: fuse the weights before packing them (with_packed_weights)')
  d = config.embed_dim

  def fill(pure):
    for layer in _layers(pure):
      attn, mlp = layer['attn'], layer['mlp']
      lead = attn['q_proj'].shape[:-3]  # [R] in a stack
      parts = [attn.pop(name) for name in ('q_proj', 'k_proj', 'v_proj')]
      attn['qkv_proj'] = jnp.concatenate([w.reshape(*lead, d, -1) for w in parts], axis=-1)
      parts += [mlp.pop(name) for name in ('gate_proj', 'up_proj')]
      mlp['gate_up_proj'] = jnp.concatenate(parts[3:], axis=-1)
      if donate:
        jax.block_until_ready((attn['qkv_proj'], mlp['gate_up_proj']))
        for w in parts:
          if isinstance(w, jax.Array):
            w.delete()

  return _flagged(config, graphdef, params, fill, fused_projections=True)


def with_packed_weights(
    config: GemmaConfig, graphdef: nnx.GraphDef, params: nnx.State
) -> tuple[GemmaConfig, nnx.GraphDef, nnx.State]:
  """The same model with each layer's weight matrices packed for our CPU kernel
  (`cpu_kernels.pack`: bfloat16, flat) in place of the matrices (`config.packed_weights`).

  Our kernel otherwise packs a weight on every product, reading it across its rows;
  packed once, a decode step reads each weight once, in the order it lies (on a
  2-core Xeon with AMX the layers' products of a 64-slot decode step took 15 ms
  instead of 25). Products with them are our kernel's only (`modules.project`):
  for a model that computes in bfloat16, with its layers unstacked
  (`unstack_layers`), where that kernel is chosen (`cpu_kernels.chosen`).
  """
  if config.packed_weights:
    return config, graphdef, params
  if config.scan_layers:
    raise ValueError('with_packed_weights: unstack the layers first (unstack_layers)')
  d, f, h = config.embed_dim, config.hidden_dim, config.head_dim
  qkv = (config.num_heads * h, config.num_kv_heads * h, config.num_kv_heads * h)

  def fill(pure):
    for layer in pure['tail'].values():
      attn, mlp = layer['attn'], layer['mlp']
      for name in ('q_proj', 'k_proj', 'v_proj'):
        if name in attn:
          attn[name] = jnp.asarray(cpu_kernels.pack(attn[name].reshape(d, -1)))
      attn['o_proj'] = jnp.asarray(cpu_kernels.pack(attn['o_proj'].reshape(-1, d)))
      for name in ('gate_proj', 'up_proj', 'down_proj'):
        if name in mlp:
          mlp[name] = jnp.asarray(cpu_kernels.pack(mlp[name]))
      # Weights side by side (`with_fused_projections`): each part packed on its own.
      for group, name, sizes in ((attn, 'qkv_proj', qkv), (mlp, 'gate_up_proj', (f, f))):
        if name in group:
          group[name] = jnp.asarray(cpu_kernels.pack_parts(jnp.split(group[name], np.cumsum(sizes)[:-1], axis=1)))

  return _flagged(config, graphdef, params, fill, packed_weights=True)


def packable(config: GemmaConfig) -> bool:
  """Whether every layer weight of a model of `config` can be `cpu_kernels.pack`ed."""
  d, f, h = config.embed_dim, config.hidden_dim, config.head_dim
  shapes = [(d, config.num_heads * h), (d, config.num_kv_heads * h), (config.num_heads * h, d), (d, f), (f, d)]
  return all(cpu_kernels.packable(k, n) for k, n in shapes)
