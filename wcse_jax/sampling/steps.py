"""The device side of the sampler: prefill, refill, and chunks of decode steps.

These are pure functions of the parameters, the KV caches and the slot state;
the sampler jits them and donates what they replace.

Slots. The decode batch is a fixed number of slots. Each holds one sample in
progress: its problem and sample index, the position of its next token, how
many tokens it has emitted, and the token drawn to come next (with its
log-probability). One decode step, for every active slot:

    emit token
    the sample ends if token is EOS or the max_new_tokens-th token
    otherwise feed token at `position`: logits, position + 1
    token = draw(logits, key(seed, problem, sample, generated))

A sample's first token is drawn when it starts (`refill`), from its prompt's
last logits. No logits outlive the step that computes them: carried from one
step to the next, XLA:CPU copied them twice a step (4-5 ms of a ~190 ms step
of the bundled model at 64 slots, 67 MB each).

Prefix. The few-shot prefix shared by every prompt is prefilled once into a
one-row cache that every row of the pool and of the slots reads (`shared`),
never copied: each row stores only its own tokens.

    prefix (one row)    [ few-shot prefix, ~700 tokens ]     read by all
    pool row 3          [ problem 7's question ]             prefixed
    slot 12             [ problem 7's question | sample 3 ]  prefixed
    slot 40             [ problem 7's question | sample 4 ]  prefixed

A row's own tokens fill its slots from slot 0, in spans of slots (see
`wcse_jax.model.LayerCache`); each decode chunk reads and writes only the
spans the host says its samples reach (`view`).

Pool. Each problem's own text is prefilled once into a row of a small pool
cache, which also keeps the logits of its last prompt token. A slot starts a
sample by copying a pool row and drawing from its logits (fan-out: N samples
of a problem cost one prefill, and the copy is the question's tokens only).

Paged. With a `PagedKVCache` there is no prefix cache, pool cache or slot
cache: every row is a page table, the prefix's pages are shared by every
problem and a problem's by its samples, and a slot starts a sample with the
problem's table (one page copied where they part) and a draw from its logits. The same
functions run over pages: `extend`, `extend_last` and `decode_chunk` take the
paged cache with the rows' tables and `shared=None`; `refill_slots` and
`wcse_jax.model.copy_pages` replace `refill`.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int, Key

from wcse_jax.model import KVCache
from wcse_jax.model.modules import rope_rotations
from wcse_jax.sampling import cache_rows
from wcse_jax.sampling.rules import TokenRules, fused_top_k, sample_from_top, sample_next, token_keys


@flax.struct.dataclass
class Slots:
  """The decode batch: one sample in progress per active slot."""

  token: Int[Array, 'B']  # drawn, to be emitted and fed by the next step
  logprob: Float[Array, 'B']  # its log-probability
  problem: Int[Array, 'B']
  sample: Int[Array, 'B']
  position: Int[Array, 'B']  # where the next token goes
  generated: Int[Array, 'B']  # tokens drawn so far
  active: Bool[Array, 'B']


def empty_slots(num_slots: int) -> Slots:
  zeros = jnp.zeros((num_slots,), jnp.int32)
  return Slots(
      token=zeros,
      logprob=jnp.zeros((num_slots,), jnp.float32),
      problem=zeros,
      sample=zeros,
      position=zeros,
      generated=zeros,
      active=jnp.zeros((num_slots,), bool),
  )


@flax.struct.dataclass
class Refill:
  """The host's orders for the slots between two chunks of decode steps."""

  start: Bool[Array, 'B']  # begin sample (problem, sample) from pool row `row`
  row: Int[Array, 'B']
  problem: Int[Array, 'B']
  sample: Int[Array, 'B']
  position: Int[Array, 'B']  # the prompt's length
  stop: Bool[Array, 'B']  # the host ended this slot's sample (a stop string)


def extend(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    cache: KVCache,
    tokens: Int[Array, 'B T'],
    positions: Int[Array, 'B T'],
    input_mask: Bool[Array, 'B T'],
    shared: KVCache | None,
) -> KVCache:
  """Writes a chunk of prompt tokens into the cache; no logits are computed."""
  _, cache = nnx.merge(graphdef, params)(
      tokens, positions, input_mask=input_mask, cache=cache, shared=shared, return_hidden=True
  )
  return cache


def extend_last(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    cache: KVCache,
    logits: Float[Array, 'B V'],
    tokens: Int[Array, 'B'],
    positions: Int[Array, 'B'],
    input_mask: Bool[Array, 'B'],
    shared: KVCache | None,
) -> tuple[KVCache, Float[Array, 'B V']]:
  """Writes each row's last prompt token and keeps its logits (unmasked rows keep theirs).

  Kept apart from `extend` because the model computes logits for every token
  it is given, and a prompt needs them for its last token only.
  """
  new_logits, cache = nnx.merge(graphdef, params)(
      tokens[:, None], positions[:, None], input_mask=input_mask[:, None], cache=cache,
      shared=shared,
  )
  return cache, jnp.where(input_mask[:, None], new_logits[:, 0], logits)


def begin_rows(pool: KVCache, begin: Bool[Array, 'P'], prefixed: Bool[Array, 'P']) -> KVCache:
  """Empties pool rows for new prompts, which continue the shared prefix where `prefixed`."""
  return cache_rows.clear_rows(pool, begin, prefixed)


def refill(
    cache: KVCache,
    slots: Slots,
    pool: KVCache,
    pool_logits: Float[Array, 'P V'],
    orders: Refill,
    seed: Key[Array, ''],
    *,
    rules: TokenRules,
) -> tuple[KVCache, Slots]:
  """Starts new samples in slots from pool rows, and stops the slots the host ended."""
  cache = cache_rows.where_rows(orders.start, cache_rows.take_rows(pool, orders.row), cache)
  return cache, refill_slots(slots, pool_logits, orders, seed, rules=rules)


def refill_slots(
    slots: Slots, pool_logits: Float[Array, 'P V'], orders: Refill, seed: Key[Array, ''], *,
    rules: TokenRules,
) -> Slots:
  """The slot state after the host's orders, each new sample's first token drawn (with
  a paged cache, all a refill does: the new samples' pages are named by the tables
  of the next decode call)."""
  start = orders.start

  def first_draw(_):
    keys = token_keys(seed, orders.problem, orders.sample, jnp.zeros_like(orders.sample))
    return sample_next(jnp.take(pool_logits, orders.row, axis=0), keys, rules, rows=start)

  # Orders that only stop slots draw nothing.
  token, logprob = jax.lax.cond(
      jnp.any(start), first_draw, lambda _: (slots.token, slots.logprob), None
  )
  pick = lambda new, old: jnp.where(start, new, old)
  return Slots(
      token=pick(token, slots.token),
      logprob=pick(logprob, slots.logprob),
      problem=pick(orders.problem, slots.problem),
      sample=pick(orders.sample, slots.sample),
      position=pick(orders.position, slots.position),
      generated=pick(0, slots.generated),
      active=start | (slots.active & ~orders.stop),
  )


def decode_chunk(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    cache: KVCache,
    slots: Slots,
    seed: Key[Array, ''],
    max_new_tokens: Int[Array, ''],
    shared: KVCache | None,
    *,
    rules: TokenRules,
    steps: int,
    eos_ids: tuple[int, ...],
    view: int | None = None,
    vocab_major: bool = False,
) -> tuple[KVCache, Slots, Int[Array, 'B steps'], Float[Array, 'B steps']]:
  """Up to `steps` decode steps on device; stops early once no slot is active.

  `view`: the slots of each dense row the steps read and write (`cache_view` of
  the model); the caller knows every active row's own tokens stay below it.

  `vocab_major`: the steps compute the slots' logits `[V, B]` (`sample_next`):
  on CPU XLA computes them from the `[vocab, embed]` table a third faster so,
  and sums their exponentials faster.

  Returns the new cache and slots, and each slot's tokens and their
  log-probabilities by step (-1 and 0 where it drew none).
  """
  model = nnx.merge(graphdef, params)
  num_slots = slots.active.shape[0]
  eos = jnp.asarray(eos_ids, jnp.int32)

  # The rotary sines and cosines of each step's positions ride in the loop's carry,
  # computed by the step before: XLA:CPU otherwise evaluates them again inside
  # every layer (72 times in a step of the bundled model, 4% of it).
  rotate = lambda position: rope_rotations(model.config, position[:, None])

  def step(carry):
    s, cache, slots, out_tokens, out_logprobs, rotations = carry
    active, tokens, logprobs = slots.active, slots.token, slots.logprob
    out_tokens = out_tokens.at[:, s].set(jnp.where(active, tokens, -1))
    out_logprobs = out_logprobs.at[:, s].set(jnp.where(active, logprobs, 0.0))
    generated = slots.generated + active
    ended = jnp.isin(tokens, eos) | (generated >= max_new_tokens)
    feed = active & ~ended
    hidden, cache = model(
        jnp.where(feed, tokens, 0)[:, None],
        slots.position[:, None],
        input_mask=feed[:, None],
        cache=cache,
        shared=shared,
        cache_view=view,
        rotations=rotations,
        return_hidden=True,
    )
    keys = token_keys(seed, slots.problem, slots.sample, generated)
    k = fused_top_k(rules, model.embedder.input_embedding[...].shape[0])
    top = model.top_logits(hidden[:, 0], k) if vocab_major and k is not None else None
    if top is not None:  # the top-k straight from the logits' kernel, the logits never written
      tokens, logprobs = sample_from_top(*top, keys, rules, rows=feed)
    else:
      if vocab_major:
        logits, statistics = model.logits_with_statistics(hidden[:, 0])
      else:
        logits, statistics = model.logits(hidden[:, 0]), None
      tokens, logprobs = sample_next(
          logits, keys, rules, rows=feed, vocab_major=vocab_major, block_statistics=statistics
      )
    slots = slots.replace(
        token=tokens, logprob=logprobs, position=slots.position + feed, generated=generated,
        active=feed,
    )
    return s + 1, cache, slots, out_tokens, out_logprobs, rotate(slots.position)

  def running(carry):
    s, _, slots, _, _, _ = carry
    return (s < steps) & jnp.any(slots.active)

  init = (
      jnp.int32(0),
      cache,
      slots,
      jnp.full((num_slots, steps), -1, jnp.int32),
      jnp.zeros((num_slots, steps), jnp.float32),
      rotate(slots.position),
  )
  _, cache, slots, out_tokens, out_logprobs, _ = jax.lax.while_loop(running, step, init)
  return cache, slots, out_tokens, out_logprobs
