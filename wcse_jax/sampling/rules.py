"""How one token is drawn from the model's logits: greedy, temperature, top-k, top-p, min-p.

The rules compose in the order transformers applies them: the logits are
divided by the temperature, cut to the `top_k` largest, then to the smallest
set of most probable tokens whose (renormalised) mass reaches `top_p`, then to
the tokens with at least `min_p` times the probability of the most probable
one. The token is drawn exactly from what is left, renormalised. With
probabilities (.50, .30, .15, .05) after the temperature:

    top_k=3     keeps .50 .30 .15     mass .95, renormalised (.526, .316, .158)
    top_p=0.8   keeps .50 .30         .50 < .8 <= .50 + .30
    min_p=0.2   keeps .50 .30 .15     each >= 0.2 * .50

Tokens tied with the last one kept by top-p are kept too. Nothing is sorted
over the whole vocabulary (262k entries for Gemma 3): top-k ranks blocks of
the vocabulary by their maxima and takes the top-k of the best k blocks
(`top_k`, exact), top-p finds its probability threshold among the 256 most
probable tokens or by bisection, each row on its own, and the draw inverts the
cumulative distribution block by block with one uniform number per row. Where
our CPU kernel computes the logits and the rules need only a top-k (or the
greedy token), it keeps the top-k itself and no logits are written
(`sample_from_top`: the same draws).

Every draw takes its own key, `token_key(seed, problem, sample, step)`, so a
sample's tokens do not depend on which slot, batch or device computed them.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Key

from wcse_jax.model import cpu_kernels

_BLOCK = 512  # the cumulative distribution is inverted over blocks of this many tokens
_MAX_BLOCK = 32  # block maxima for the log-normaliser and the top-k's first stage


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenRules:
  """How each token is drawn; temperature 0 is greedy (the other rules then do nothing)."""

  temperature: float = 1.0
  top_k: int | None = None
  top_p: float = 1.0
  min_p: float = 0.0

  def __post_init__(self):
    if self.temperature < 0:
      raise ValueError(f'temperature must be >= 0 (0 is greedy), not {self.temperature}.')
    if self.top_k is not None and self.top_k < 1:
      raise ValueError(f'top_k must be >= 1 or None (no limit), not {self.top_k}.')
    if not 0 < self.top_p <= 1:
      raise ValueError(f'top_p must be in (0, 1] (1 keeps everything), not {self.top_p}.')
    if not 0 <= self.min_p <= 1:
      raise ValueError(f'min_p must be in [0, 1] (0 keeps everything), not {self.min_p}.')


@dataclasses.dataclass(frozen=True, kw_only=True)
class SamplingParams(TokenRules):
  """Token rules plus when a sample ends: `max_new_tokens`, EOS, or a stop string.

  >>> params = SamplingParams(temperature=0.7, top_k=40, max_new_tokens=256,
  ...                         stop_strings=('\\n\\nQ:',))
  >>> params.token_rules
  TokenRules(temperature=0.7, top_k=40, top_p=1.0, min_p=0.0)
  """

  max_new_tokens: int = 256
  stop_strings: tuple[str, ...] = ()

  def __post_init__(self):
    super().__post_init__()
    if self.max_new_tokens < 1:
      raise ValueError(f'max_new_tokens must be >= 1, not {self.max_new_tokens}.')
    if isinstance(self.stop_strings, str) or not all(self.stop_strings):
      raise ValueError(
          f'stop_strings must be a tuple of non-empty strings, not {self.stop_strings!r}.'
      )

  @property
  def token_rules(self) -> TokenRules:
    """The part compiled into the decode loop (limits and stop strings are not)."""
    return TokenRules(
        temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p
    )


def token_keys(
    seed: Key[Array, ''], problems: Int[Array, 'B'], samples: Int[Array, 'B'], steps: Int[Array, 'B']
) -> Key[Array, 'B']:
  """The key of token `step` of sample `sample` of problem `problem`."""

  def one(problem, sample, step):
    fold = jax.random.fold_in
    return fold(fold(fold(seed, problem), sample), step)

  return jax.vmap(one)(problems, samples, steps)


def sample_next(
    logits: Float[Array, 'B V'],
    keys: Key[Array, 'B'],
    rules: TokenRules,
    *,
    rows: Bool[Array, 'B'] | None = None,
    vocab_major: bool = False,
    block_statistics: tuple[Float[Array, 'N B'], Float[Array, 'N B']] | None = None,
) -> tuple[Int[Array, 'B'], Float[Array, 'B']]:
  """Draws one token per row; returns it and its log-probability under the model.

  The log-probability is that of the raw model distribution, `log_softmax(logits)`,
  whatever the rules: it measures the sample, not how it was drawn. `rows`
  marks the rows whose draw is used (the others may hold stale logits); it only
  lets top-p skip work they would need.

  `vocab_major`: `logits` is `[V, B]`, a column per row. The passes over the
  whole vocabulary (maxima, the log-normaliser) then reduce over the leading
  axis, with the rows side by side in each vector: XLA:CPU sums Gemma 3's
  262k exponentials for 64 rows in about half the time of the `[B, V]` layout.
  The draws are the same in either layout.

  `block_statistics` (vocabulary-major only): each row's maximum over each
  block of `_MAX_BLOCK` entries and the sum of `exp(logit - maximum)` over the
  block, `[V / _MAX_BLOCK, B]` each, computed with the logits
  (`Transformer.logits_with_statistics`); the log-normaliser is then a pass
  over the blocks, not over the vocabulary. The draws are the same; the
  log-probabilities differ by float32 rounding.
  """
  num_rows = logits.shape[1 if vocab_major else 0]
  if block_statistics is not None:
    if not vocab_major:
      raise ValueError('block_statistics come with vocabulary-major logits only.')
    block_max = block_statistics[0]
    if block_max.shape != (-(-logits.shape[0] // _MAX_BLOCK), num_rows):
      raise ValueError(f'block statistics of shape {block_max.shape} for logits of {logits.shape}.')
    log_z = _log_normaliser(*block_statistics)
  else:
    block_max = _block_max(logits, vocab_major=vocab_major)
    # The maximum of the block maxima, which XLA would otherwise fold back into
    # one more pass over the whole vocabulary (about 1 ms of a 190 ms step on CPU).
    blocks = jax.lax.optimization_barrier(block_max)
    if vocab_major:
      top = jnp.max(blocks, axis=0)
      log_z = top + jnp.log(jnp.sum(jnp.exp(logits - top), axis=0))
    else:
      top = jnp.max(blocks, axis=-1)
      log_z = top + jnp.log(jnp.sum(jnp.exp(logits - top[:, None]), axis=-1))
  if rules.temperature == 0:
    # ties: lowest index, like argmax
    tokens = top_k(logits, 1, block_max=block_max, vocab_major=vocab_major)[1][:, 0]
  else:
    kept, candidates = logits.T if vocab_major else logits, None
    if rules.top_k is not None and rules.top_k < kept.shape[-1]:
      # The temperature keeps the order, so the top-k are taken before it.
      kept, candidates = top_k(logits, rules.top_k, block_max=block_max, vocab_major=vocab_major)
    tokens = _draw(kept, candidates, keys, rules, rows)
  if vocab_major:
    chosen = logits[tokens, jnp.arange(num_rows)]
  else:
    chosen = jnp.take_along_axis(logits, tokens[:, None], axis=-1)[:, 0]
  return tokens, chosen - log_z


def fused_top_k(rules: TokenRules, vocab: int) -> int | None:
  """The k of the top-k that `sample_from_top` needs to draw by `rules` over a
  vocabulary of `vocab` entries (1 for greedy), or None where a draw needs every
  logit (no top-k, or one beyond `cpu_kernels.logits_top_k`'s limit)."""
  if rules.temperature == 0:
    return 1
  k = rules.top_k  # below the vocabulary's size, as `sample_next` cuts (else it draws from all)
  return k if k is not None and k < vocab and k <= cpu_kernels._TOP_K_LIMIT else None


def sample_from_top(
    values: Float[Array, 'B k'],
    indices: Int[Array, 'B k'],
    block_statistics: tuple[Float[Array, 'N B'], Float[Array, 'N B']],
    keys: Key[Array, 'B'],
    rules: TokenRules,
    *,
    rows: Bool[Array, 'B'] | None = None,
) -> tuple[Int[Array, 'B'], Float[Array, 'B']]:
  """`sample_next` from each row's top-k logits (`jax.lax.top_k`'s values and
  indices, k = `fused_top_k(rules, V)` or more) and the block statistics of all of
  them (`cpu_kernels.logits_top_k`): the same tokens and log-probabilities as
  `sample_next` of the whole logits with those statistics."""
  k = 1 if rules.temperature == 0 else rules.top_k
  if k is None or values.shape[-1] < k:
    raise ValueError(f'sample_from_top: the top {values.shape[-1]} logits of a row; {rules} need '
                     + ('every logit.' if k is None else f'the top {k}.'))
  if rules.temperature == 0:
    where = jnp.zeros(values.shape[:1], jnp.int32)
  else:
    where = _draw(values[:, :k], None, keys, rules, rows)
  tokens = jnp.take_along_axis(indices, where[:, None], axis=-1)[:, 0]
  chosen = jnp.take_along_axis(values, where[:, None], axis=-1)[:, 0]
  return tokens, chosen - _log_normaliser(*block_statistics)


def _log_normaliser(block_max: Float[Array, 'N B'], block_sums: Float[Array, 'N B']) -> Float[Array, 'B']:
  """log(sum(exp(logits))) of each row from its blocks' maxima and exp-sums."""
  top = jnp.max(block_max, axis=0)
  return top + jnp.log(jnp.sum(block_sums * jnp.exp(block_max - top), axis=0))


def _draw(
    kept: Float[Array, 'B C'], candidates: Int[Array, 'B C'] | None, keys: Key[Array, 'B'],
    rules: TokenRules, rows: Bool[Array, 'B'] | None,
) -> Int[Array, 'B']:
  """One draw per row by the rules from its kept logits (a top-k, or all of them), as
  the index into `candidates` (the kept logits' tokens) or into `kept` if None."""
  scaled = kept / rules.temperature
  # Unnormalised probabilities whose maximum is exactly 1.
  weights = jnp.exp(scaled - jnp.max(scaled, axis=-1, keepdims=True))
  if rules.top_p < 1:
    rows = jnp.ones(kept.shape[:1], bool) if rows is None else rows
    weights = jnp.where(weights >= nucleus_threshold(weights, rules.top_p, rows), weights, 0)
  if rules.min_p > 0:
    weights = jnp.where(weights >= rules.min_p, weights, 0)
  uniform = 1 - jax.vmap(jax.random.uniform)(keys)  # in (0, 1]
  tokens = inverse_cdf(weights, uniform)
  if candidates is not None:
    tokens = jnp.take_along_axis(candidates, tokens[:, None], axis=-1)[:, 0]
  return tokens


def _top_k_block(vocab: int, k: int) -> int:
  """Block size of the two-stage top-k: about sqrt(vocab / k), a power of two."""
  return 1 << max(0, round(0.5 * math.log2(max(vocab / k, 1))))


def _block_max(
    logits: Float[Array, 'B V'], block: int = _MAX_BLOCK, *, vocab_major: bool = False
) -> Float[Array, 'B V/block']:
  """The maximum of each block of `block` entries (padding counts as -inf): `[B, V/block]`,
  or `[V/block, B]` of vocabulary-major logits (`sample_next`)."""
  if vocab_major:
    v, b = logits.shape
    padded = jnp.pad(logits, ((0, -v % block), (0, 0)), constant_values=-jnp.inf)
    return jnp.max(padded.reshape(-1, block, b), axis=1)
  b, v = logits.shape
  padded = jnp.pad(logits, ((0, 0), (0, -v % block)), constant_values=-jnp.inf)
  return jnp.max(padded.reshape(b, -1, block), axis=-1)


def top_k(
    logits: Float[Array, 'B V'], k: int, *, block_max: Float[Array, 'B N'] | None = None,
    vocab_major: bool = False,
) -> tuple[Float[Array, 'B k'], Int[Array, 'B k']]:
  """`jax.lax.top_k` over the vocabulary, exactly (ties to the lowest index), in two stages.

  The k largest entries lie in the k blocks with the largest maxima, so the
  blocks are ranked first and the top-k taken over those k blocks only: for
  Gemma 3's 262,144 entries and k=40, a top-k over 2,048 block maxima and one
  over 5,120 candidates instead of one over the whole vocabulary. `logits` is
  `[B, V]`, or `[V, B]` if `vocab_major`; `block_max`, if given, is their
  `_block_max` in the same layout; the results are `[B, k]` either way. On CPU
  each stage's top-k is our kernel's (`cpu_kernels.top_k`, the same results).
  """
  v, b = logits.shape if vocab_major else logits.shape[::-1]
  block = _top_k_block(v, k)
  if k * block >= v // 2:
    return cpu_kernels.top_k(logits.T if vocab_major else logits, k)
  if block > _MAX_BLOCK:  # maxima of blocks of `block` entries from the finer ones
    finer = _block_max(logits, vocab_major=vocab_major) if block_max is None else block_max
    maxima = _block_max(finer, block // _MAX_BLOCK, vocab_major=vocab_major)
  else:
    maxima = _block_max(logits, block, vocab_major=vocab_major)
  # Vocabulary-major maxima are transposed only now, at their coarsest (the transpose
  # took 4.6 ms of a CPU decode step at Gemma 3's 8,192 finer maxima by 64 rows).
  _, blocks = cpu_kernels.top_k(maxima.T if vocab_major else maxima, k)
  blocks = jnp.sort(blocks, axis=-1)  # candidates in vocabulary order, so ties go to the lowest index
  if vocab_major:
    padded = jnp.pad(logits, ((0, -v % block), (0, 0)), constant_values=-jnp.inf)
    padded = padded.reshape(-1, block, b)
    within = jnp.arange(block)[None, None, :]
    candidates = padded[blocks[:, :, None], within, jnp.arange(b)[:, None, None]].reshape(b, k * block)
  else:
    padded = jnp.pad(logits, ((0, 0), (0, -v % block)), constant_values=-jnp.inf).reshape(b, -1, block)
    candidates = jnp.take_along_axis(padded, blocks[:, :, None], axis=1).reshape(b, k * block)
  values, where = cpu_kernels.top_k(candidates, k)
  index = jnp.take_along_axis(blocks, where // block, axis=-1) * block + where % block
  return values, index.astype(jnp.int32)


def nucleus_threshold(
    weights: Float[Array, 'B C'], top_p: float, rows: Bool[Array, 'B']
) -> Float[Array, 'B 1']:
  """The weight of the least probable token that top-p keeps (weights are at most 1).

  That is the largest `t` with `sum(weights[weights >= t]) >= top_p * sum(weights)`.
  The 256 largest weights usually hold the mass; when they do not for some row
  in `rows`, the threshold is found by bisection on the bits of `t` instead
  (positive floats order like their bit patterns): 32 passes, still exact.
  """
  target = top_p * jnp.sum(weights, axis=-1, keepdims=True)
  k = min(256, weights.shape[-1])
  top, _ = cpu_kernels.top_k(weights, k)
  before = jnp.cumsum(top, axis=-1) - top  # mass of the more probable candidates
  num_kept = jnp.sum(before < target, axis=-1, keepdims=True)
  covered = jnp.sum(top, axis=-1, keepdims=True) >= target

  from_top = jnp.take_along_axis(top, num_kept - 1, axis=-1)

  def by_bisection(_):
    def mass_from(bits):
      t = jax.lax.bitcast_convert_type(bits, jnp.float32)
      return jnp.sum(jnp.where(weights >= t, weights, 0), axis=-1, keepdims=True)

    def step(_, bounds):
      lo, hi = bounds  # mass_from(lo) >= target > mass_from(hi)
      mid = lo + (hi - lo) // 2
      enough = mass_from(mid) >= target
      return jnp.where(enough, mid, lo), jnp.where(enough, hi, mid)

    one = jax.lax.bitcast_convert_type(jnp.float32(1), jnp.int32)
    lo = jnp.zeros_like(num_kept)
    lo, _ = jax.lax.fori_loop(0, 32, step, (lo, lo + one + 1))
    return jax.lax.bitcast_convert_type(lo, jnp.float32)

  # Each row takes its own branch, so its threshold never depends on the other
  # rows; the bisection runs only when some row in `rows` needs it.
  bisected = jax.lax.cond(
      jnp.any(~covered & rows[:, None]), by_bisection, lambda _: from_top, None
  )
  return jnp.where(covered, from_top, bisected).astype(weights.dtype)


def inverse_cdf(weights: Float[Array, 'B C'], uniform: Float[Array, 'B']) -> Int[Array, 'B']:
  """The index where the cumulative weight first reaches `uniform * total`.

  `uniform` is in (0, 1], so a token of zero weight is never chosen. The
  cumulative sum runs over blocks of `_BLOCK` entries, then within the chosen
  block: two short scans instead of one over the whole vocabulary.
  """
  b, c = weights.shape
  block = min(_BLOCK, c)
  padded = jnp.pad(weights, ((0, 0), (0, -c % block))).reshape(b, -1, block)
  block_mass = jnp.sum(padded, axis=-1)
  block_cdf = jnp.cumsum(block_mass, axis=-1)
  x = uniform * block_cdf[:, -1]
  chosen = jnp.minimum(jnp.sum(block_cdf < x[:, None], axis=-1), block_cdf.shape[1] - 1)
  # Mass before the chosen block, read from the scan itself so that x - before > 0.
  before = jnp.pad(block_cdf, ((0, 0), (1, 0)))[jnp.arange(b), chosen]
  within = jnp.take_along_axis(padded, chosen[:, None, None], axis=1)[:, 0]
  index = jnp.sum(jnp.cumsum(within, axis=-1) < (x - before)[:, None], axis=-1)
  # Rounding can carry past the block's last token of nonzero weight: stop there.
  last = block - 1 - jnp.argmax((within > 0)[:, ::-1], axis=-1)
  return (chosen * block + jnp.minimum(index, last)).astype(jnp.int32)
