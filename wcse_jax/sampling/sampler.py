"""`Sampler`: many samples per problem from one model, yielded as they finish.

    sampler = Sampler(load_model('gemma3-270m'), max_len=1024, num_slots=64)
    params = SamplingParams(temperature=0.7, top_k=40, max_new_tokens=256,
                            stop_strings=('\\n\\nQ:',))
    for c in sampler.sample(prefix, questions, num_samples=32, params=params, seed=0):
      out.write(json.dumps(dataclasses.asdict(c)) + '\\n')

A run, on the host (the device work is in `steps`):

    prefill the shared prefix once, into a one-row cache that every row reads
    loop:
      give every free slot the next pending (problem, sample); when no
        prefilled problem has samples left, prefill the next `prefill_rows`
        problems (their own text only) into the pool, after the prefix
      start up to `chunk_steps` decode steps on device
      meanwhile, yield the samples the last chunk ended
      read the new tokens; end samples on EOS, max_new_tokens or a stop
        string, and free their slots

Shapes are static (slots, pool rows, chunk lengths from a few powers of two),
so nothing compiles after the first chunks. Token `step` of sample i of
problem j is drawn with key fold_in(fold_in(fold_in(key(seed), j), i), step):
the outputs do not depend on the number of slots, their order, or devices.
With `share_prompts=False` every sample's whole prompt is prefilled from
scratch into its own pool row: the plain path, more compute, the same
outputs up to the order in which float32 sums the attention terms.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from wcse_jax import parallel
from wcse_jax.checkpoints import LoadedModel, default_dtype
from wcse_jax.model import KVCache, init_cache, transpose_embedding, unstack_layers
from wcse_jax.sampling import steps
from wcse_jax.sampling.prompts import Prompt, PromptTooLongError, chunk_lengths, tokenize_prompts
from wcse_jax.sampling.rules import SamplingParams


@dataclasses.dataclass(frozen=True, kw_only=True)
class Completion:
  """One finished sample.

  `token_ids` are the drawn tokens: with finish reason 'eos' the last is EOS
  (not in `text`); with 'stop' the last is the one that completed the stop
  string, and `text` ends just before it. `logprob` sums log p(token) over
  `token_ids` under the raw model distribution (softmax of the logits, no
  temperature or truncation). `prompt_tokens_computed` is what this sample
  made the sampler prefill: the shared prefix is charged to the first sample
  started in a run and a problem's own text to its first sample started, so
  the sum over a run is the total.
  """

  problem: int
  sample: int
  text: str
  token_ids: tuple[int, ...]
  num_tokens: int
  finish_reason: str  # 'eos' | 'stop' | 'length'
  logprob: float
  prompt_tokens: int
  prompt_tokens_computed: int


@dataclasses.dataclass
class RunStats:
  """Where one `Sampler.sample` call spent its time (read `Sampler.last_stats`).

  `decode_seconds` is the decode chunks from dispatch until their tokens are on
  the host, less the time the caller spent meanwhile on the previous chunk's
  completions (handed over while the device decodes the next chunk);
  `prefill_seconds` the prompt prefills; the rest of the wall time is host
  work (refills, detokenising, stop strings) and the caller's.
  `slot_steps` counts slot-steps run (slots x decode steps), `tokens` the ones
  that drew a token, `wasted_after_stop` the tokens drawn after a stop string
  had already ended their sample (the host sees stops between chunks).
  `kv_cache_bytes` is what a decode step's attention reads at most: every
  slot's own rows and the shared prefix, once.
  """

  decode_seconds: float = 0.0
  decode_steps: int = 0
  prefill_seconds: float = 0.0
  slot_steps: int = 0
  tokens: int = 0
  wasted_after_stop: int = 0
  kv_cache_bytes: int = 0


@dataclasses.dataclass(frozen=True)
class _Compiled:
  """The jitted device functions of a sampler shape; shared by every `Sampler` of
  that shape (a trainer validating every N steps compiles them once)."""

  extend: Callable
  extend_last: Callable
  begin_rows: Callable
  refill: Callable
  decode: Callable
  new_prefix: Callable
  new_cache: Callable
  new_pool: Callable
  new_pool_logits: Callable
  new_slots: Callable


@functools.lru_cache(maxsize=16)
def _compiled(
    graphdef, config, mesh, *, num_slots, prefill_rows, row_len, prefix_len, cache_dtype, eos_ids
) -> _Compiled:
  """For caches of `row_len` positions per row and a shared prefix of `prefix_len`."""
  empty_cache = lambda rows, length=row_len: init_cache(config, rows, length, cache_dtype)
  cache_shardings = lambda rows, length=row_len: parallel.cache_shardings(
      jax.eval_shape(lambda: empty_cache(rows, length)), mesh
  )
  replicated = NamedSharding(mesh, PartitionSpec())
  slot_sharding = jax.tree.map(
      lambda x: parallel.logical_sharding(('batch', 'vocab')[: x.ndim], x.shape, mesh),
      jax.eval_shape(lambda: steps.empty_slots(num_slots, config.vocab_size)),
  )
  logits_sharding = parallel.logical_sharding(
      ('batch', 'vocab'), (prefill_rows, config.vocab_size), mesh
  )
  cache, pool = cache_shardings(num_slots), cache_shardings(prefill_rows)
  return _Compiled(
      extend=jax.jit(functools.partial(steps.extend, graphdef), donate_argnums=1),
      extend_last=jax.jit(
          functools.partial(steps.extend_last, graphdef),
          donate_argnums=(1, 2),
          out_shardings=(pool, logits_sharding),
      ),
      begin_rows=jax.jit(steps.begin_rows, donate_argnums=0, out_shardings=pool),
      refill=jax.jit(steps.refill, donate_argnums=(0, 1), out_shardings=(cache, slot_sharding)),
      decode=jax.jit(
          functools.partial(steps.decode_chunk, graphdef, eos_ids=eos_ids),
          static_argnames=('rules', 'steps'),
          donate_argnums=(1, 2),
          out_shardings=(cache, slot_sharding, replicated, replicated),
      ),
      new_prefix=jax.jit(
          lambda: empty_cache(1, prefix_len), out_shardings=cache_shardings(1, prefix_len)
      ),
      new_cache=jax.jit(lambda: empty_cache(num_slots), out_shardings=cache),
      new_pool=jax.jit(lambda: empty_cache(prefill_rows), out_shardings=pool),
      new_pool_logits=jax.jit(
          lambda: jnp.zeros((prefill_rows, config.vocab_size), jnp.float32),
          out_shardings=logits_sharding,
      ),
      new_slots=jax.jit(
          lambda: steps.empty_slots(num_slots, config.vocab_size), out_shardings=slot_sharding
      ),
  )


class Sampler:
  """Samples a loaded model with a fixed number of decode slots, sharded over its mesh.

  Args:
    model: from `wcse_jax.checkpoints.load_model`; its mesh shards the slots
      over `data` and heads over `model`.
    max_len: positions per sequence, prompt and new tokens together.
    num_slots: samples decoded together (the decode batch); a multiple of the
      mesh's data axis, or the slots are replicated instead of split.
    prefill_rows: problems prefilled together, and held for fan-out (likewise).
    chunk_steps: decode steps per call from the host.
    prefill_chunk: most prompt tokens per row in one prefill call.
    share_prompts: prefill the prefix once and each problem once (False:
      each sample's whole prompt from scratch).
    eos_ids: tokens that end a sample (default: the tokenizer's EOS).
    cache_dtype: of the KV caches (default: float32 on CPU, else bfloat16).
  """

  def __init__(
      self,
      model: LoadedModel,
      *,
      max_len: int,
      num_slots: int = 32,
      prefill_rows: int = 8,
      chunk_steps: int = 16,
      prefill_chunk: int = 512,
      share_prompts: bool = True,
      eos_ids: tuple[int, ...] | None = None,
      cache_dtype=None,
  ):
    config = model.config
    if max_len > config.max_seq_len:
      raise ValueError(
          f'max_len={max_len} exceeds the {config.max_seq_len} positions {config.name} supports.'
      )
    if model.mesh.devices.flat[0].platform == 'cpu':
      config, graphdef, params = unstack_layers(config, model.graphdef, model.params)
      config, graphdef, params = transpose_embedding(config, graphdef, params)
      model = dataclasses.replace(model, config=config, graphdef=graphdef, params=params)
    self.model = model
    self.tokenizer = model.tokenizer
    self.max_len = max_len
    self.num_slots = num_slots
    self.prefill_rows = prefill_rows
    self.chunk_steps = chunk_steps
    self.prefill_chunk = prefill_chunk
    self.share_prompts = share_prompts
    self.eos_ids = tuple(eos_ids if eos_ids is not None else (self.tokenizer.eos_token_id,))
    self._cache_dtype = cache_dtype or default_dtype()

    self._shape = None  # (row_len, prefix_len) of the caches held
    self.last_stats = RunStats()

  def _use_shape(self, row_len: int, prefix_len: int):
    """Compiles for (or reuses) caches of this many positions per row and prefix."""
    if self._shape == (row_len, prefix_len):
      return
    model = self.model
    compiled = _compiled(
        model.graphdef, model.config, model.mesh, num_slots=self.num_slots,
        prefill_rows=self.prefill_rows, row_len=row_len, prefix_len=prefix_len,
        cache_dtype=self._cache_dtype, eos_ids=self.eos_ids,
    )
    self._extend, self._extend_last = compiled.extend, compiled.extend_last
    self._begin_rows, self._refill, self._decode = compiled.begin_rows, compiled.refill, compiled.decode
    self._new_prefix = compiled.new_prefix
    self._cache = self._pool = None  # freed before the new ones are made
    self._cache, self._pool = compiled.new_cache(), compiled.new_pool()
    self._pool_logits, self._slots = compiled.new_pool_logits(), compiled.new_slots()
    self._shape = (row_len, prefix_len)

  def sample(
      self,
      prefix: str,
      questions: list[str],
      *,
      num_samples: int,
      params: SamplingParams,
      seed: int,
      skip: Iterable[tuple[int, int]] = (),
  ) -> Iterator[Completion]:
    """Samples `num_samples` completions of `prefix + questions[j]` for every j.

    Completions come as they finish, in no fixed order; pairs (problem,
    sample) in `skip` (already done, when resuming) are not drawn. Raises
    `PromptTooLongError` here, before any work, if a prompt does not fit.
    """
    prefix_ids, prompts = tokenize_prompts(
        self.tokenizer, prefix, questions, share_prefix=self.share_prompts
    )
    for j, prompt in enumerate(prompts):
      length = prompt.start(prefix_ids) + len(prompt.ids)
      if length + params.max_new_tokens > self.max_len:
        raise PromptTooLongError(
            f'Problem {j} has a prompt of {length} tokens, which with max_new_tokens='
            f'{params.max_new_tokens} does not fit in max_len={self.max_len}: raise '
            'max_len or shorten the prompt.'
        )
    # Rows hold their own tokens only: what max_len leaves after the prefix
    # (all of it when some prompt is prefilled whole), in steps of 128
    # positions. The shapes depend on max_len and the prefix only, so every
    # call with the same prefix reuses the compiled functions.
    after_prefix = self.share_prompts and all(p.after_prefix for p in prompts)
    own = self.max_len - len(prefix_ids) if after_prefix else self.max_len
    self._use_shape(
        min(_round_up(own, _ROW_STEP), self.max_len),
        _round_up(len(prefix_ids), _ROW_STEP) if self.share_prompts else 0,
    )
    skip = set(skip)
    groups = []
    for j, prompt in enumerate(prompts):
      todo = [i for i in range(num_samples) if (j, i) not in skip]
      # Shared: one prefill per problem, fanned out. Plain: one per sample.
      for samples in [todo] if self.share_prompts else [[i] for i in todo]:
        if samples:
          groups.append(_Group(j, prompt, prompt.start(prefix_ids), collections.deque(samples)))
    run = _Run(self, prefix_ids, groups, params, seed)
    self.last_stats = run.stats
    return run.completions()


_ROW_STEP = 128


def _nbytes(tree) -> int:
  return sum(x.nbytes for x in jax.tree.leaves(tree))


def _round_up(n: int, step: int) -> int:
  return max(step, -(-n // step) * step)


@dataclasses.dataclass
class _Group:
  """A prompt to prefill once and the samples to fan out from it."""

  problem: int
  prompt: Prompt
  start: int  # position of its first token
  samples: collections.deque[int]
  row: int = -1  # in the pool, once prefilled
  uncharged: int = 0  # prompt tokens computed, not yet charged to a sample


@dataclasses.dataclass
class _Live:
  """A sample in a slot, as the host sees it."""

  problem: int
  sample: int
  prompt_tokens: int
  prompt_tokens_computed: int
  token_ids: list[int] = dataclasses.field(default_factory=list)
  logprobs: list[float] = dataclasses.field(default_factory=list)


class _Run:
  """The host loop of one `Sampler.sample` call."""

  def __init__(self, sampler: Sampler, prefix_ids, groups, params: SamplingParams, seed: int):
    self.s = sampler
    self.prefix_ids = prefix_ids
    self.prefix: KVCache | None = None
    self.pending = collections.deque(groups)  # not yet prefilled
    self.ready = collections.deque()  # in the pool, with samples left to start
    self.live: list[_Live | None] = [None] * sampler.num_slots
    self.params = params
    self.key = jax.random.key(seed)
    self.uncharged = 0  # prefix tokens computed, not yet charged
    self.orders = self._no_orders()
    self.orders.stop[:] = True  # slots left active by an abandoned run
    self.stats = RunStats()

  def completions(self) -> Iterator[Completion]:
    s = self.s
    finished: list[Completion] = []
    while True:
      self._fill_slots()
      self._flush()
      if not any(self.live):
        yield from finished
        return
      self.stats.kv_cache_bytes = _nbytes(s._cache) + _nbytes(self.prefix)
      start = time.perf_counter()
      s._cache, s._slots, tokens, logprobs = s._decode(
          s.model.params, s._cache, s._slots, self.key, np.int32(self.params.max_new_tokens),
          self.prefix, rules=self.params.token_rules, steps=s.chunk_steps,
      )
      # The device decodes this chunk while the caller takes the last one's completions.
      handed = time.perf_counter()
      yield from finished
      caller = time.perf_counter() - handed
      tokens, logprobs, active = jax.device_get((tokens, logprobs, s._slots.active))
      drawn_per_step = (tokens >= 0).sum(axis=0)
      steps_run = int(np.count_nonzero(drawn_per_step))
      self.stats.decode_seconds += time.perf_counter() - start - caller
      self.stats.decode_steps += steps_run
      self.stats.slot_steps += steps_run * s.num_slots
      self.stats.tokens += int(drawn_per_step.sum())
      finished = []
      for b, live in enumerate(self.live):
        if live is None:
          continue
        begin = len(live.token_ids)
        drawn = tokens[b] >= 0
        live.token_ids.extend(tokens[b][drawn].tolist())
        live.logprobs.extend(logprobs[b][drawn].tolist())
        completion = self._finished(live, begin, still_active=bool(active[b]))
        if completion is not None:
          self.stats.wasted_after_stop += len(live.token_ids) - completion.num_tokens
          self.live[b] = None
          self.orders.stop[b] = bool(active[b])
          finished.append(completion)

  def _no_orders(self) -> steps.Refill:
    n = self.s.num_slots
    zeros = lambda dtype: np.zeros(n, dtype)
    return steps.Refill(
        start=zeros(bool), row=zeros(np.int32), problem=zeros(np.int32),
        sample=zeros(np.int32), position=zeros(np.int32), stop=zeros(bool),
    )

  def _flush(self):
    """Sends the pending orders to the device."""
    if self.orders.start.any() or self.orders.stop.any():
      s = self.s
      s._cache, s._slots = s._refill(s._cache, s._slots, s._pool, s._pool_logits, self.orders)
      self.orders = self._no_orders()

  def _fill_slots(self):
    for b, live in enumerate(self.live):
      if live is not None:
        continue
      if not self.ready:
        if not self.pending:
          return
        self._flush()  # orders read pool rows that the prefill overwrites
        self._prefill_pool()
      group = self.ready[0]
      i = group.samples.popleft()
      o = self.orders
      o.start[b], o.row[b], o.problem[b], o.sample[b] = True, group.row, group.problem, i
      o.position[b] = group.start + len(group.prompt.ids)
      self.live[b] = _Live(
          group.problem, i, int(o.position[b]), group.uncharged + self.uncharged
      )
      group.uncharged = self.uncharged = 0
      if not group.samples:
        self.ready.popleft()

  def _prefill_pool(self):
    """Prefills the next pending prompts into the pool, one row each."""
    start = time.perf_counter()
    s = self.s
    rows = s.prefill_rows
    batch = [self.pending.popleft() for _ in range(min(rows, len(self.pending)))]
    after_prefix = np.zeros(rows, bool)
    for r, group in enumerate(batch):
      group.row, after_prefix[r] = r, group.prompt.after_prefix
      group.uncharged = len(group.prompt.ids)
    shared = self._prefix() if after_prefix.any() else self.prefix
    s._pool = s._begin_rows(s._pool, np.arange(rows) < len(batch), after_prefix)
    # All but the last token; then the last, for its logits.
    s._pool = self._feed(
        s._pool, [g.prompt.ids[:-1] for g in batch], [g.start for g in batch], rows, shared
    )
    last = np.zeros((3, rows), np.int32)
    for r, group in enumerate(batch):
      last[:, r] = group.prompt.ids[-1], group.start + len(group.prompt.ids) - 1, 1
    s._pool, s._pool_logits = s._extend_last(
        s.model.params, s._pool, s._pool_logits, last[0], last[1], last[2].astype(bool), shared
    )
    self.ready.extend(batch)
    jax.block_until_ready(s._pool_logits)
    self.stats.prefill_seconds += time.perf_counter() - start

  def _prefix(self) -> KVCache:
    """The shared prefix's one-row cache, computed on first use in the run."""
    if self.prefix is None:
      self.prefix = self._feed(self.s._new_prefix(), [self.prefix_ids], [0], 1, None)
      self.uncharged += len(self.prefix_ids)
    return self.prefix

  def _feed(self, cache: KVCache, ids: list[tuple[int, ...]], starts: list[int], rows: int, shared):
    """Writes `ids[r]` from position `starts[r]` into row r, in padded chunks."""
    lengths = chunk_lengths(max(map(len, ids), default=0), self.s.prefill_chunk)
    total = sum(lengths)
    tokens = np.zeros((rows, total), np.int32)
    mask = np.zeros((rows, total), bool)
    positions = np.zeros((rows, total), np.int32)
    for r, (row_ids, start) in enumerate(zip(ids, starts)):
      tokens[r, : len(row_ids)] = row_ids
      mask[r, : len(row_ids)] = True
      positions[r] = start + np.arange(total)
    end = 0
    for length in lengths:
      window = slice(end, end + length)
      cache = self.s._extend(
          self.s.model.params, cache, tokens[:, window], positions[:, window], mask[:, window],
          shared,
      )
      end += length
    return cache

  def _finished(self, live: _Live, begin: int, *, still_active: bool) -> Completion | None:
    """The completion of this sample if its new tokens ended it."""
    decode = self.s.tokenizer.decode
    ids = live.token_ids
    if self.params.stop_strings and len(ids) > begin:
      found = find_stop(decode, ids, begin, self.params.stop_strings)
      if found is not None:
        return self._completion(live, found[0], found[1], 'stop')
    if still_active:
      return None
    if ids[-1] in self.s.eos_ids:
      return self._completion(live, len(ids), decode(ids[:-1]), 'eos')
    return self._completion(live, len(ids), decode(ids), 'length')

  def _completion(self, live: _Live, n: int, text: str, reason: str) -> Completion:
    return Completion(
        problem=live.problem,
        sample=live.sample,
        text=text,
        token_ids=tuple(live.token_ids[:n]),
        num_tokens=n,
        finish_reason=reason,
        logprob=float(np.sum(live.logprobs[:n], dtype=np.float64)),
        prompt_tokens=live.prompt_tokens,
        prompt_tokens_computed=live.prompt_tokens_computed,
    )


def find_stop(
    decode, ids: list[int], begin: int, stop_strings: tuple[str, ...]
) -> tuple[int, str] | None:
  """Where the first stop string ends, if the tokens after `begin` complete one.

  Returns the number of tokens up to the one that completes it and the text
  before it. `decode(ids[:begin])` is known to hold none.

  >>> pieces = ['6', '.', '\\n\\n', 'Q', ':', ' next']    # token i is pieces[i]
  >>> decode = lambda ids: ''.join(pieces[i] for i in ids)
  >>> find_stop(decode, [0, 1, 2, 3, 4, 5], 0, ('\\n\\nQ:',))
  (5, '6.')
  """
  if not any(stop in decode(ids) for stop in stop_strings):
    return None
  for n in range(begin + 1, len(ids) + 1):
    text = decode(ids[:n])
    cuts = [text.find(stop) for stop in stop_strings if stop in text]
    if cuts:
      return n, text[: min(cuts)]
  return None
