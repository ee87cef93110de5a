"""The building blocks of a Gemma layer, in Flax NNX.

Dimension letters used in shapes and einsums:
  B batch, T query tokens of this call, S cached key slots, U keys of this call,
  D embed_dim, F hidden_dim (each GeGLU branch), N query heads, K key/value
  heads, G query heads per key/value head (N = K * G), H head_dim, V vocab,
  Q = T * G query rows per key/value head.

Precision. Every product with a weight takes its inputs in the compute dtype
(`dtype`: bfloat16 or float32) and accumulates and returns float32 (`dot`);
activations between products (residual stream, norms, RoPE, softmax) stay
float32. Products with cached keys and values take theirs in the wider of the
compute dtype and the cache's dtype, so a float32 cache is never rounded.
With bfloat16 weights this is the usual mixed-precision recipe. On CPU, bfloat16 weights with a
float32 cache decode fastest (a bfloat16 cache is slower there: XLA:CPU
copies it whole where a step writes it); float32 throughout is the exact default.
"""

from __future__ import annotations

import dataclasses
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from wcse_jax.model import cpu_kernels
from wcse_jax.model.config import AttentionKind, GemmaConfig

_MASKED = -2.3819763e38  # the reference's fill value for masked logits


def dot(spec: str, x: Array, y: Array, dtype, *, seen=None, over=None) -> Float[Array, '...']:
  """`einsum(spec, x, y)` of inputs rounded to `dtype`, summed and returned in float32.

  A bfloat16 product that is one matrix product, or one batched over rows
  (attention over a cache), runs our kernel on CPU (`cpu_kernels`) where it is
  faster than XLA's on the machine. `seen` and `over`: which of y's columns or
  rows count in a batched one (`cpu_kernels.product`: the others may be skipped,
  a column's result is then 0, a row adds nothing); XLA's einsum reads them all.
  """
  if y.dtype == jnp.uint16:  # a bfloat16 cache held as its bits (`LayerCache.bits_of`)
    logical = jax.ShapeDtypeStruct(y.shape, jnp.bfloat16)
    if cpu_kernels.kind_of(spec, x, logical, dtype) == 'bf16_batched' and cpu_kernels.used(spec, x, logical, dtype):
      return cpu_kernels.product_of_bits(spec, x, y, seen, over)
    y = jax.lax.bitcast_convert_type(y, jnp.bfloat16)
  if cpu_kernels.used(spec, x, y, dtype):
    if over is not None and cpu_kernels.kind_of(spec, x, y, dtype).endswith('batched'):
      return cpu_kernels.product(spec, x, y, seen, over)
    return cpu_kernels.product(spec, x, y)
  return jnp.einsum(spec, x.astype(dtype), y.astype(dtype), preferred_element_type=jnp.float32)


def project(spec: str, x: Array, w: Array, dtype, out_shape: tuple[int, ...]) -> Float[Array, '...']:
  """`dot(spec, x, w, dtype)` for a weight `w` that x's last axis contracts with; a 1-D
  `w` is the weight packed for our CPU kernel (`cpu_kernels.pack`, `config.packed_weights`),
  whose product has x's leading axes and then `out_shape`."""
  if w.ndim == 1:
    out = cpu_kernels.packed_product(x, w, math.prod(out_shape))
    return out.reshape(*x.shape[:-1], *out_shape)
  return dot(spec, x, w, dtype)


def project_parts(spec: str, x: Array, w: Array, dtype, shapes) -> list[Float[Array, '...']]:
  """`project` with a weight that is several side by side (`config.fused_projections`):
  each part's product, shaped x's leading axes and then its own of `shapes`."""
  sizes = [math.prod(s) for s in shapes]
  if w.ndim == 1:
    outs = cpu_kernels.packed_product_parts(x, w, sizes)
  else:
    outs = jnp.split(dot(spec, x, w, dtype), np.cumsum(sizes)[:-1].tolist(), axis=-1)
  return [out.reshape(*x.shape[:-1], *shape) for out, shape in zip(outs, shapes)]


def _weight(rngs: nnx.Rngs, shape, config: GemmaConfig, param_dtype) -> nnx.Param:
  """A weight matrix of `shape`; with `config.packed_weights` its place, flat bfloat16
  (`with_packed_weights` fills it with the packed matrix)."""
  if config.packed_weights:
    return nnx.Param(jnp.zeros((math.prod(shape),), jnp.bfloat16))
  return nnx.Param(_normal(rngs, shape, param_dtype))


def _normal(rngs: nnx.Rngs, shape, dtype, std=0.02):
  return std * jax.random.normal(rngs.params(), shape, dtype)


class RMSNorm(nnx.Module):
  """RMS normalisation with a zero-centred scale: `x / rms(x) * (1 + scale)`.

  `kernel`: on CPU, a float32 x is normalised by our kernel (`cpu_kernels.rms_norm`:
  one pass; XLA's reduction and loops cost ~15 microseconds a call at a decode
  step's size). Layers with a 16-bit compute dtype ask for it.
  """

  def __init__(self, dim: int, *, eps: float, param_dtype, kernel: bool = False):
    self.eps = eps
    self.kernel = kernel
    self.scale = nnx.Param(jnp.zeros((dim,), param_dtype))

  def __call__(self, x: Float[Array, '*B D'], *, residual=None, dtype=None) -> Float[Array, '*B D']:
    """The normalised x in x's dtype; plus `residual` if given; then as `dtype` if given
    (what a product rounds its input to anyway)."""
    out = jnp.dtype(dtype or x.dtype)
    if (self.kernel and x.dtype == jnp.float32 and out in (jnp.float32, jnp.bfloat16)
        and cpu_kernels.softmax_applies()):
      return cpu_kernels.rms_norm(x, self.scale[...], self.eps, residual, out)
    return cpu_kernels.rms_norm_reference(x, self.scale[...], self.eps, residual, out)


def is_16bit_float(dtype) -> bool:
  return jnp.dtype(dtype).itemsize == 2 and jnp.issubdtype(dtype, jnp.floating)


class Embedder(nnx.Module):
  """Token embedding, shared with the output projection.

  The table is `input_embedding` ([vocab, embed]). With
  `config.embedding_bits` a 16-bit table comes with `embedding_bits`, its bits
  as integers, for lookups (see `encode`).
  """

  def __init__(self, config: GemmaConfig, *, rngs: nnx.Rngs, dtype, param_dtype):
    shape = (config.vocab_size, config.embed_dim)
    self.dtype = dtype
    self.input_embedding = nnx.Param(_normal(rngs, shape, param_dtype))
    if config.embedding_bits and is_16bit_float(param_dtype):
      self.embedding_bits = nnx.Param(jnp.zeros(shape, jnp.uint16))

  def encode(self, tokens: Int[Array, 'B T']) -> Float[Array, 'B T D']:
    # A 16-bit float table is gathered as integers: XLA:CPU gathers bfloat16 by
    # converting the whole table to float32 first, on every call, and converting
    # it to integers inside the call is a whole copy too (0.1 s per call for
    # Gemma 3's 262k x 640), which `embedding_bits` spares.
    table = self.input_embedding[...]
    if hasattr(self, 'embedding_bits'):
      rows = jax.lax.bitcast_convert_type(jnp.take(self.embedding_bits[...], tokens, axis=0), table.dtype)
    elif is_16bit_float(table.dtype):
      rows = jnp.take(jax.lax.bitcast_convert_type(table, jnp.uint16), tokens, axis=0)
      rows = jax.lax.bitcast_convert_type(rows, table.dtype)
    else:
      rows = jnp.take(table, tokens, axis=0)
    x = rows.astype(self.dtype).astype(jnp.float32)
    # The reference rounds sqrt(D) to the compute dtype before multiplying.
    return x * jnp.asarray(x.shape[-1] ** 0.5, self.dtype).astype(jnp.float32)

  def decode(self, x: Float[Array, '*B D'], *, vocab_major: bool = False) -> Float[Array, '*B V']:
    """Logits `[..., V]` of `x`; `vocab_major`: of `x` `[B, D]`, the logits `[V, B]`."""
    if vocab_major:
      return dot('VD,BD->VB', self.input_embedding[...], x, self.dtype)
    return dot('...D,VD->...V', x, self.input_embedding[...], self.dtype)


def apply_rope(
    x: Float[Array, 'B T N H'],
    positions: Int[Array, 'B T'],
    *,
    base: float,
    scale: float = 1.0,
    rotation: tuple[Array, Array] | None = None,
) -> Float[Array, 'B T N H']:
  """Rotary embedding on the two halves of the head dimension.

  With `scale` > 1 positions are divided by it (linear scaling, as Gemma 3 does
  on its global layers). `rotation`: `rope_rotation` of these positions,
  computed once for every layer that shares it.
  """
  sin, cos = rope_rotation(positions, x.shape[-1], base=base, scale=scale) if rotation is None else rotation
  first, second = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  rotated = jnp.concatenate(
      [first * cos - second * sin, second * cos + first * sin], axis=-1
  )
  return rotated.astype(x.dtype)


def rope_rotation(
    positions: Int[Array, 'B T'], head_dim: int, *, base: float, scale: float = 1.0
) -> tuple[Float[Array, 'B T 1 H/2'], Float[Array, 'B T 1 H/2']]:
  """The sines and cosines `apply_rope` turns the two halves of a head by."""
  half = head_dim // 2
  inv_freq = 1.0 / base ** (jnp.arange(half, dtype=jnp.float32) * 2 / head_dim)
  angles = (positions.astype(jnp.float32) / scale)[..., None] * inv_freq
  return jnp.sin(angles)[:, :, None, :], jnp.cos(angles)[:, :, None, :]


def rope_rotations(config: GemmaConfig, positions: Int[Array, 'B T']) -> dict[str, tuple[Array, Array]]:
  """`rope_rotation` of `positions` for each kind of layer, computed once per call (or
  once per decode step: `Transformer.__call__`'s `rotations`)."""
  out = {}
  for kind in dict.fromkeys(config.layer_kinds):
    base, scale = Attention.rope_of(config, kind)
    out[kind.value] = rope_rotation(positions, config.head_dim, base=base, scale=scale)
  return out


@flax.struct.dataclass
class LayerCache:
  """Keys and values of one layer: a ring of `S` slots, slot = (position - origin) % S.

  `origin` is where the row's own tokens begin (`Transformer` says which), so
  a row's tokens fill its slots from 0 on. Global layers get as many slots as
  the longest sequence, so they never wrap; local (sliding-window) layers keep
  only their window. Heads come before slots, so each head's keys (and
  values) of a row are one contiguous matrix: on CPU the attention products
  read it twice as fast as the `[B, S, K, H]` layout. Keys are stored
  transposed (`[B, K, H, S]`, values `[B, K, S, H]`) so that both products are
  plain, untransposed matrix products: on XLA:CPU the query-key product over
  `[S, H]` keys ran 3.5x slower. A stack of layers carries a leading layer
  axis: `[R, B, K, H, S]`.

  Spans. The slots are held as a tuple of arrays of consecutive slots, span i
  holding slots `i * W` to `(i + 1) * W - 1` (the last may be narrower); one
  span is the plain layout. A call whose rows reach no further than its
  `view` reads and writes only the spans below it, and nothing is sliced or
  copied to do so. For 64 rows of 256 slots on CPU, the attention of 18
  layers took 80 ms over one span, 60 ms over four of 64 slots and 35 ms over
  the first two of them.

      slot       0 ........ 63 | 64 ....... 127 | 128 ...... 191 | 192 ..... 255
      keys[i]    span 0        | span 1         | span 2         | span 3
      row b      question and sample so far ----->|
      view=128   read and written: spans 0 and 1; spans 2 and 3 untouched
  """

  keys: tuple[Float[Array, '*R B K H W'], ...]
  values: tuple[Float[Array, '*R B K W H'], ...]
  # True: keys stored `[B, K, S, H]` and values `[B, K, H, S]`. For a one-row
  # cache that many rows read (a shared prefix) both products are true matrix
  # products, which XLA:CPU reads in these layouts: it otherwise transposes
  # the prefix's keys and values in every layer, every decode step.
  transposed: bool = flax.struct.field(pytree_node=False, default=False)
  # True: keys stored `[B, K, S, H]` like the values (not with `transposed`): a
  # step's key is then one contiguous row to write, where `[B, K, H, S]` scatters
  # it over H cache lines. Our CPU kernel reads such keys with the same sums
  # (`cpu_kernels.product`, the transposed batched form; a little slower alone,
  # faster in a step); XLA:CPU much slower. Chosen where that kernel runs.
  slot_rows: bool = flax.struct.field(pytree_node=False, default=False)
  # 'bfloat16': the keys and values are that dtype's bit patterns, uint16. XLA:CPU
  # writes into a 16-bit float array through a float32 copy of all of it (and, at a
  # bitcast of the loop's carry, copies it whole); into bits, in place. Our kernel
  # reads the bits as they are (`cpu_kernels.product_of_bits`).
  bits_of: str | None = flax.struct.field(pytree_node=False, default=None)

  @property
  def keys_slots_last(self) -> bool:
    """Whether the keys are `[..., H, S]`."""
    return not (self.transposed or self.slot_rows)

  @property
  def size(self) -> int:
    """Slots per row, all spans together."""
    return sum(w for _, w in self.spans())

  @property
  def dtype(self):
    return jnp.dtype(self.bits_of) if self.bits_of else self.keys[0].dtype

  def spans(self, view: int | None = None) -> list[tuple[int, int]]:
    """(first slot, width) of each span holding a slot below `view` (every span if None)."""
    out, start = [], 0
    for keys in self.keys:
      if view is not None and start >= view:
        break
      width = keys.shape[-1 if self.keys_slots_last else -2]
      out.append((start, width))
      start += width
    return out


def span_widths(size: int, span: int | None) -> list[int]:
  """Widths of the spans of a `size`-slot ring cut every `span` slots (one span if None)."""
  if span is None or span >= size:
    return [size]
  return [span] * (size // span) + ([size % span] if size % span else [])


def _scatter_heads(buffer, slots, values, *, stacked: bool, slots_last: bool, bits_of=None):
  """Writes keys or values ([B, T, K, H], or [R, B, T, K, H] if stacked) at each
  row's slots of a `[B, K, S, H]` buffer (`[B, K, H, S]` if `slots_last`; with a
  leading `R` if stacked; of `bits_of`'s bits if given)."""
  b, k = slots.shape[0], buffer.shape[-3]
  rows = jnp.arange(b)[:, None, None]
  heads = jnp.arange(k)[None, :, None]
  where = (rows, heads, slots[:, None, :])  # each [B, K, T] after broadcasting
  values = jnp.moveaxis(values, -2, -3)  # [..., B, K, T, H]
  if bits_of is not None:
    values = jax.lax.bitcast_convert_type(values.astype(bits_of), jnp.uint16)
  values = values.astype(buffer.dtype)
  if stacked:
    where = (jnp.arange(buffer.shape[0])[:, None, None, None], *(w[None] for w in where))
  if slots_last:  # indices split by a slice: their dimensions come first, [..., B, K, T] + [H]
    where = (*where[:-1], slice(None), where[-1])
  if is_16bit_float(buffer.dtype) and jax.default_backend() == 'cpu':
    # XLA:CPU scatters into a 16-bit float array by converting all of it to float32
    # and back, every call; into its bits, in place.
    bits = jax.lax.bitcast_convert_type
    return bits(bits(buffer, jnp.uint16).at[where].set(bits(values, jnp.uint16), mode='drop'), buffer.dtype)
  return buffer.at[where].set(values, mode='drop')


def write_cache(
    layer_cache: LayerCache, k, v, slots: Int[Array, 'B T'], *, stacked: bool = False,
    view: int | None = None,
) -> LayerCache:
  """The cache with keys and values `[(R,) B, T, K, H]` written at `slots` (out of range:
  dropped); only the spans below `view` are written (the caller's slots all lie there)."""
  keys, values = list(layer_cache.keys), list(layer_cache.values)
  for i, (start, width) in enumerate(layer_cache.spans(view)):
    inside = (slots >= start) & (slots < start + width)
    local = jnp.where(inside, slots - start, width)
    bits_of = layer_cache.bits_of
    keys[i] = _scatter_heads(keys[i], local, k, stacked=stacked, slots_last=layer_cache.keys_slots_last,
                             bits_of=bits_of)
    values[i] = _scatter_heads(values[i], local, v, stacked=stacked, slots_last=layer_cache.transposed,
                               bits_of=bits_of)
  return layer_cache.replace(keys=tuple(keys), values=tuple(values))


def _span_segments(cache: LayerCache, mask, view, dtype, *, one_row: bool = False) -> list:
  """Attention segments (see `Attention._attend`) for the spans of `cache` below `view`,
  then one of no keys for the slots past them.

  The slots past the view hold no key any token may see (the caller says so),
  and are masked whatever they hold: the softmax still runs over every slot,
  so that each row's scores are summed in the same order whatever the view,
  and a sample's numbers do not depend on how far its batch-mates reach.
  """
  segments = []
  lead = '' if one_row else 'B'
  keys_spec = 'KHS' if cache.keys_slots_last else 'KSH'
  values_spec = 'KHS' if cache.transposed else 'KSH'
  spans = cache.spans(view)
  for i, (start, width) in enumerate(spans):
    keys, values = cache.keys[i], cache.values[i]
    if one_row:
      keys, values = keys[0], values[0]
    segments.append(
        (lead + keys_spec, lead + values_spec, keys, values, mask[..., start : start + width], dtype)
    )
  seen = sum(width for _, width in spans)
  if seen < cache.size:
    segments.append((None, None, None, None, jnp.zeros_like(mask[..., seen:]), None))
  return segments


class Attention(nnx.Module):
  """Grouped-query attention over this call's tokens and, optionally, a cache."""

  def __init__(
      self, config: GemmaConfig, kind: AttentionKind, *, rngs: nnx.Rngs, dtype, param_dtype
  ):
    d, n, k, h = config.embed_dim, config.num_heads, config.num_kv_heads, config.head_dim
    self.kind = kind
    self.dtype = dtype
    self.num_kv_heads, self.groups, self.head_dim = k, n // k, h
    self.query_scale = config.query_pre_attn_scalar**-0.5
    self.softcap = config.attn_logit_softcap
    self.window = config.sliding_window if kind == AttentionKind.LOCAL else None
    self.rope_base, self.rope_scale = self.rope_of(config, kind)
    self.embed_dim = d
    self.fused = config.fused_projections
    if self.fused:
      self.qkv_proj = _weight(rngs, (d, (n + 2 * k) * h), config, param_dtype)
    else:
      self.q_proj = _weight(rngs, (d, n, h), config, param_dtype)
      self.k_proj = _weight(rngs, (d, k, h), config, param_dtype)
      self.v_proj = _weight(rngs, (d, k, h), config, param_dtype)
    self.o_proj = _weight(rngs, (n, h, d), config, param_dtype)
    if config.use_qk_norm:
      kernel = is_16bit_float(dtype)
      self.query_norm = RMSNorm(h, eps=config.rms_norm_eps, param_dtype=param_dtype, kernel=kernel)
      self.key_norm = RMSNorm(h, eps=config.rms_norm_eps, param_dtype=param_dtype, kernel=kernel)
    else:
      self.query_norm = self.key_norm = None

  @staticmethod
  def rope_of(config: GemmaConfig, kind: AttentionKind) -> tuple[float, float]:
    """The rotary embedding's base and position scale in layers of `kind`."""
    if kind == AttentionKind.LOCAL:
      return config.rope_base_local, 1.0
    return config.rope_base_global, config.rope_scale_global

  def __call__(
      self,
      x: Float[Array, 'B T D'],
      positions: Int[Array, 'B T'],
      mask: Bool[Array, 'B T U'],
      *,
      rotations: dict[str, tuple[Array, Array]] | None = None,
      cache: LayerCache | None = None,
      cache_mask: Bool[Array, 'B T S'] | None = None,
      write_slots: Int[Array, 'B T'] | None = None,
      shared: LayerCache | None = None,
      shared_mask: Bool[Array, 'B T P'] | None = None,
      pages=None,
      view: int | None = None,
  ) -> tuple[Float[Array, 'B T D'], Float[Array, 'B T K H'], Float[Array, 'B T K H']]:
    """Returns the layer output and this call's keys and values (to cache).

    Scores and outputs are float32 sums of products of `dtype` inputs: the
    cached keys and values (stored in the cache's dtype) and this call's, so a
    prefill followed by decoding computes what one pass over the whole
    sequence does when the cache's dtype is the compute dtype.

    With `write_slots` (one token per row, as in decoding) this call's keys
    and values are first written into the cache at those slots and the token
    attends to the cache alone (`cache_mask` then covers its own slot); the
    updated cache is returned in place of this call's keys, and None in
    place of its values.
    Read-after-write lets XLA update the cache in place: reading the cache
    and then writing it makes XLA:CPU copy every layer's cache each step.

    `rotations`: `rope_rotations` of `positions` (computed here if None).

    `shared` is a one-row cache (`[1, K, P, H]`: a prompt prefix) that every
    row reads where `shared_mask` allows, without a copy per row.

    `view`: the cache's slots this call reads and writes, from 0 (all if
    None); every slot it writes and every cached key it may attend to lies
    below it (see `LayerCache`, spans).

    With `pages` (a `paged.LayerPages`) this call's keys and values are
    written into the layer's page pool first and every token attends to its
    row's pages (positions up to its own); the new pool is returned in place
    of the keys, and None in place of the values.
    """
    dt = self.dtype
    b, t = x.shape[:2]
    kv, g, h = self.num_kv_heads, self.groups, self.head_dim
    n = kv * g
    if self.fused:
      q, k, v = project_parts('BTD,DX->BTX', x, self.qkv_proj[...], dt, [(n, h), (kv, h), (kv, h)])
    else:
      q = project('BTD,DNH->BTNH', x, self.q_proj[...], dt, (n, h))
      k = project('BTD,DKH->BTKH', x, self.k_proj[...], dt, (kv, h))
      v = project('BTD,DKH->BTKH', x, self.v_proj[...], dt, (kv, h))
    rotation = rotations[self.kind.value] if rotations is not None else None
    if self.query_norm is not None and self.query_norm.kernel and cpu_kernels.softmax_applies() and \
        q.dtype == k.dtype == jnp.float32:
      # The norms, the rotation and the query's scale in one pass each. Where every product
      # with the query is a bfloat16 one, the query comes out rounded, as they take it.
      sin, cos = rotation if rotation is not None else rope_rotation(
          positions, self.head_dim, base=self.rope_base, scale=self.rope_scale)
      narrow = pages is None and jnp.dtype(dt) == jnp.bfloat16 and all(
          c is None or jnp.dtype(c.dtype) == jnp.bfloat16 for c in (shared, cache))
      q = cpu_kernels.norm_rope(q, self.query_norm.scale[...], self.query_norm.eps, sin, cos, self.query_scale,
                                jnp.bfloat16 if narrow else jnp.float32)
      k = cpu_kernels.norm_rope(k, self.key_norm.scale[...], self.key_norm.eps, sin, cos)
    else:
      if self.query_norm is not None:
        q, k = self.query_norm(q), self.key_norm(k)
      q = apply_rope(q, positions, base=self.rope_base, scale=self.rope_scale, rotation=rotation)
      k = apply_rope(k, positions, base=self.rope_base, scale=self.rope_scale, rotation=rotation)
      q = q * self.query_scale

    if pages is not None:
      return self._attend_pages(q, k, v, positions, pages)
    # One [T * G, H] block of queries per key/value head: the products with the
    # cache are then one matrix product per (row, head).
    q = q.reshape(b, t, kv, g, h).transpose(0, 2, 1, 3, 4).reshape(b, kv, t * g, h)
    # (keys spec, values spec, keys, values, mask [B T S], product dtype). A
    # float32 cache is read as it is, never rounded to a narrower compute dtype.
    wide = lambda c: jnp.promote_types(dt, c.dtype)
    segments = []
    if shared is not None:
      segments += _span_segments(shared, shared_mask, None, wide(shared), one_row=True)
    if write_slots is not None:
      cache = write_cache(cache, k, v, write_slots, view=view)
      segments += _span_segments(cache, cache_mask, view, wide(cache))
    else:
      if cache is not None:
        segments += _span_segments(cache, cache_mask, view, wide(cache))
      segments.append(('BSKH', 'BSKH', k, v, mask, dt))
    out = self._attend(q, segments, t)
    out = out.reshape(b, kv, t, g, h).transpose(0, 2, 1, 3, 4).reshape(b, t, n * h)
    out = self._output(out)
    if write_slots is not None:
      return out, cache, None
    return out, k, v

  def _attend_pages(self, q, k, v, positions, pages):
    """Writes this call's keys and values into the pool, then attends to the rows' pages."""
    pool = pages.write(k, v, positions)
    pages = dataclasses.replace(pages, pool=pool)
    b, t, n, h = q.shape
    dtype = jnp.promote_types(self.dtype, pages.dtype)  # of the products with keys and values
    out = pages.kernel(q, positions, window=self.window, softcap=self.softcap, dtype=dtype)
    if out is None:
      kv, g = self.num_kv_heads, n // self.num_kv_heads
      grouped = q.reshape(b, t, kv, g, h).transpose(0, 2, 1, 3, 4).reshape(b, kv, t * g, h)
      out = self._attend(grouped, pages.segments(positions, self.window, dtype), t)
      out = out.reshape(b, kv, t, g, h).transpose(0, 2, 1, 3, 4)
    return self._output(out.reshape(b, t, n * h)), pool, None

  def _output(self, out: Float[Array, 'B T X']) -> Float[Array, 'B T D']:
    """The output projection of the heads' outputs, merged (`X = N * H`)."""
    w = self.o_proj[...]
    # Heads and head_dim merged on both sides: XLA:CPU otherwise copies the
    # weight into another layout on every call.
    w = w if w.ndim == 1 else w.reshape(out.shape[-1], -1)
    return project('BTX,XD->BTD', out, w, self.dtype, (self.embed_dim,))

  def _attend(self, q: Float[Array, 'B K Q H'], segments, t: int) -> Float[Array, 'B K Q H']:
    """Softmax attention of the queries over the keys of every segment together.

    A segment is (keys spec, values spec, keys, values, mask [B T S], product
    dtype); one without keys stands for S slots no token sees.
    """
    b, kv, q_len, h = q.shape
    scores = [
        dot(f'BKQH,{spec}->BKQS', q, keys, dtype, seen=m.any(1), over='n') if keys is not None else None
        for spec, _, keys, _, m, dtype in segments
    ]
    if self.softcap is not None:
      scores = [None if x is None else jnp.tanh(x / self.softcap) * self.softcap for x in scores]
    as_rows = lambda x: x.reshape(b, kv, t, -1, x.shape[-1])  # B K T G S
    if cpu_kernels.softmax_applies() and is_16bit_float(self.dtype):  # float32 stays jax's, exact
      # Each part's probabilities come out as its product takes them, and the scores are
      # never concatenated.
      kinds = ['bfloat16' if jnp.dtype(dtype) == jnp.bfloat16 else 'float32'
               for (*_, dtype), x in zip(segments, scores) if x is not None]
      parts = cpu_kernels.masked_softmax_parts(
          [as_rows(x) for x in scores if x is not None],
          [m for (*_, m, _), x in zip(segments, scores) if x is not None],
          [None if x is not None else m.shape[-1] for (*_, m, _), x in zip(segments, scores)], kinds)
      parts = iter(p.reshape(b, kv, q_len, -1) for p in parts)
      probs = [next(parts) if x is not None else None for x in scores]
    else:
      logits = jnp.concatenate(
          [x if x is not None else jnp.full((b, kv, q_len, m.shape[-1]), _MASKED, jnp.float32)
           for x, (*_, m, _) in zip(scores, segments)], axis=-1)
      mask = jnp.concatenate([m for *_, m, _ in segments], axis=-1)[:, None, :, None, :]  # B 1 T 1 S
      whole = jax.nn.softmax(jnp.where(mask, as_rows(logits), _MASKED), axis=-1).reshape(logits.shape)
      ends = np.cumsum([m.shape[-1] for *_, m, _ in segments])[:-1]
      probs = jnp.split(whole, ends, axis=-1)
    out = 0.0
    for (_, spec, _, values, m, dtype), p in zip(segments, probs):
      if values is not None:
        out = out + dot(f'BKQS,{spec}->BKQH', p, values, dtype, seen=m.any(1), over='k')
    return out


class FeedForward(nnx.Module):
  """GeGLU: `down(gelu_tanh(gate(x)) * up(x))` (gate and up one weight with
  `config.fused_projections`)."""

  def __init__(self, config: GemmaConfig, *, rngs: nnx.Rngs, dtype, param_dtype):
    d, f = config.embed_dim, config.hidden_dim
    self.dtype = dtype
    self.embed_dim, self.hidden_dim = d, f
    self.fused = config.fused_projections
    if self.fused:
      self.gate_up_proj = _weight(rngs, (d, 2 * f), config, param_dtype)
    else:
      self.gate_proj = _weight(rngs, (d, f), config, param_dtype)
      self.up_proj = _weight(rngs, (d, f), config, param_dtype)
    self.down_proj = _weight(rngs, (f, d), config, param_dtype)

  def __call__(self, x: Float[Array, 'B T D']) -> Float[Array, 'B T D']:
    f = (self.hidden_dim,)
    if self.fused:
      gate, up = project_parts('BTD,DX->BTX', x, self.gate_up_proj[...], self.dtype, [f, f])
    else:
      gate = project('BTD,DF->BTF', x, self.gate_proj[...], self.dtype, f)
      up = project('BTD,DF->BTF', x, self.up_proj[...], self.dtype, f)
    if jnp.dtype(self.dtype) == jnp.bfloat16 and gate.dtype == jnp.float32 and cpu_kernels.softmax_applies():
      hidden = cpu_kernels.geglu(gate, up, self.dtype)  # one pass, rounded as the product takes it
    else:
      hidden = jax.nn.gelu(gate, approximate=True) * up
    return project('BTF,FD->BTD', hidden, self.down_proj[...], self.dtype, (self.embed_dim,))


class Block(nnx.Module):
  """One transformer layer: attention and GeGLU, each with pre- (and post-) norm."""

  def __init__(
      self, config: GemmaConfig, kind: AttentionKind, *, rngs: nnx.Rngs, dtype, param_dtype
  ):
    norm = lambda: RMSNorm(config.embed_dim, eps=config.rms_norm_eps, param_dtype=param_dtype,
                           kernel=is_16bit_float(dtype))
    self.dtype = dtype
    self.pre_attention_norm = norm()
    self.attn = Attention(config, kind, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
    self.post_attention_norm = norm() if config.use_post_attn_norm else None
    self.pre_ffw_norm = norm()
    self.mlp = FeedForward(config, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
    self.post_ffw_norm = norm() if config.use_post_ffw_norm else None

  def __call__(self, x, positions, mask, **cache_args):
    """`cache_args` go to `Attention`: rotations, cache, cache_mask, write_slots, shared,
    shared_mask, pages."""
    # The pre-norms' outputs only feed products, which round them to the compute dtype.
    attended, k, v = self.attn(self.pre_attention_norm(x, dtype=self.dtype), positions, mask, **cache_args)
    if self.post_attention_norm is not None:
      x = self.post_attention_norm(attended, residual=x)
    else:
      x = x + attended
    fed = self.mlp(self.pre_ffw_norm(x, dtype=self.dtype))
    if self.post_ffw_norm is not None:
      return self.post_ffw_norm(fed, residual=x), k, v
    return x + fed, k, v
