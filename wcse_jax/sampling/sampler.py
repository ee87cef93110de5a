"""`Sampler`: many samples per problem from one model, yielded as they finish.

    sampler = Sampler(load_model('gemma3-270m'), max_len=1024, num_slots=64)
    params = SamplingParams(temperature=0.7, top_k=40, max_new_tokens=256,
                            stop_strings=('\\n\\nQ:',))
    for c in sampler.sample(prefix, questions, num_samples=32, params=params, seed=0):
      out.write(json.dumps(dataclasses.asdict(c)) + '\\n')

A run, on the host (the device work is in `steps`, the buffers per KV layout
in `kv`: dense rows, or pages whose tables the host keeps):

    prefill the shared prefix once, into a one-row cache that every row reads
      (paged: into pages every problem's table names); kept for the next run
      while its tokens and the parameter arrays stay the same
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
import time
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from wcse_jax import parallel
from wcse_jax.checkpoints import LoadedModel, default_dtype
from wcse_jax.model import (
    AttentionKind,
    cpu_kernels,
    packable,
    paged,
    unstack_layers,
    with_embedding_bits,
    with_fused_projections,
    with_packed_weights,
)
from wcse_jax.model.modules import is_16bit_float
from wcse_jax.sampling import steps
from wcse_jax.sampling.kv import DenseKV, Group, Live, PagedKV
from wcse_jax.sampling.prompts import PromptTooLongError, tokenize_prompts
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
  started in a run that computed it (none, where the run read the last run's)
  and a problem's own text to its first sample started, so the sum over a run
  is the total.
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
  `kv_bytes_read` sums over decode steps the KV bytes each step's attention
  reads: with the dense cache every slot's own rows and the prefix once;
  with pages, each slot's named pages where a kernel reads them (the
  prefix's once per slot on TPU, once in all on GPU) and the view's columns
  and the prefix's pages once where the XLA path gathers.
  `kv_bytes_in_pages` sums the pages the slots' tables name (paged only):
  what JAX's kernel reads on TPU. `kv_bytes_needed` sums what a step
  must read at least: each slot's positions its attention sees, the prefix's
  once for all (`kv_bytes_needed`).
  """

  decode_seconds: float = 0.0
  decode_steps: int = 0
  prefill_seconds: float = 0.0
  slot_steps: int = 0
  tokens: int = 0
  wasted_after_stop: int = 0
  kv_bytes_read: int = 0
  kv_bytes_in_pages: int = 0
  kv_bytes_needed: int = 0

  @property
  def kv_bytes_per_step(self) -> float:
    return self.kv_bytes_read / max(self.decode_steps, 1)

  @property
  def kv_bytes_in_pages_per_step(self) -> float:
    return self.kv_bytes_in_pages / max(self.decode_steps, 1)

  @property
  def kv_bytes_needed_per_step(self) -> float:
    return self.kv_bytes_needed / max(self.decode_steps, 1)


def kv_bytes_needed(
    config, itemsize: int, positions: list[tuple[int, int]], prefix_itemsize: int | None = None
) -> int:
  """KV bytes one decode step must read at least, for slots at `(position, shared)`:
  `shared` positions at the start are a prefix many slots share, read once for all
  (stored in `prefix_itemsize` bytes a number, if not `itemsize`); each slot reads the
  rest of what its window sees.

  >>> from wcse_jax.model import get_preset
  >>> config = get_preset('gemma3-270m')       # 15 local layers (window 512), 3 global
  >>> per_position = 2 * config.num_kv_heads * config.head_dim * 4
  >>> kv_bytes_needed(config, 4, [(800, 700), (900, 700)]) // per_position
  13701

  That is 3 x (700 + 101 + 201) for the global layers (each slot sees its
  own positions up to its current one), 15 x (411 + 101 + 201) for the local
  ones: their windows see the prefix from 289 and 389 on, 411 positions in all.
  """
  per_position = 2 * config.num_kv_heads * config.head_dim
  prefix_itemsize = itemsize if prefix_itemsize is None else prefix_itemsize
  total = 0
  for kind in config.layer_kinds:
    window = config.sliding_window if kind == AttentionKind.LOCAL else None
    shared_seen, own = 0, 0
    for position, shared in positions:
      first = 0 if window is None else max(0, position - window + 1)
      shared_part = max(0, shared - first)
      shared_seen = max(shared_seen, shared_part)
      own += position + 1 - first - shared_part
    total += per_position * (shared_seen * prefix_itemsize + own * itemsize)
  return total


def _platform(model: LoadedModel) -> str:
  return model.mesh.devices.flat[0].platform


def sampling_layout(model: LoadedModel, *, donate: bool = False, fuse: bool = True) -> LoadedModel:
  """The model with its weights laid out as the sampler reads them on its platform.

  On CPU and GPU every layer is held on its own (`unstack_layers`): a layer
  sliced out of a stack inside the scan over layers is a copy there, on GPU one
  memcpy per weight matrix per layer per step (Gemma2-2B on an H200, 256 slots:
  2.3 ms of a 14.5 ms decode step). On CPU a 16-bit embedding table is also
  held as its bits, for lookups (`with_embedding_bits`; the decode loop's
  logits are `[vocab, slot]` there, `steps.decode_chunk`, which reads the table
  as checkpoints hold it); a model that computes in bfloat16 on one CPU device,
  where our bfloat16 kernel is chosen (`cpu_kernels.chosen`), also gets its
  layers' weights packed for that kernel (`with_packed_weights`). With `fuse`,
  each layer's q, k and v weights are one matrix and its gate and up another
  (`with_fused_projections`): on GPU where the mesh does not split heads over
  devices (a split would cut across the parts), on CPU with packed weights
  (`cpu_kernels.packed_product_parts`). On TPU, and for a model already so
  laid out, it is `model` itself.
  `Sampler` lays out what it is given; a caller that keeps a large model for
  several samplers lays it out once and keeps only this, or the weights are
  held twice. `donate`: the caller gives `model` up (its stacked layers are
  deleted as they are sliced, `unstack_layers`), so that a model that fills most
  of a GPU's memory is not held twice along the way; a loader's caller
  (`load_model` then this) does so.
  """
  platform = _platform(model)
  if platform not in ('cpu', 'gpu'):
    return model
  config, graphdef, params = unstack_layers(model.config, model.graphdef, model.params, donate=donate)
  fused = lambda c, g, p: with_fused_projections(c, g, p, donate=donate)
  if platform == 'cpu':
    config, graphdef, params = with_embedding_bits(config, graphdef, params)
    if (model.mesh.devices.size == 1 and model.model.dtype == jnp.bfloat16
        and packable(config) and cpu_kernels.chosen('bf16')):
      if fuse and not config.packed_weights:
        config, graphdef, params = fused(config, graphdef, params)
      config, graphdef, params = with_packed_weights(config, graphdef, params)
  elif fuse and model.mesh.shape[parallel.MODEL] == 1:
    config, graphdef, params = fused(config, graphdef, params)
  if config is model.config:
    return model
  return dataclasses.replace(model, config=config, graphdef=graphdef, params=params)


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
    cache_dtype: of the KV caches (default: float32 on CPU, else bfloat16; on CPU
      for a bfloat16 model in the dense layout where our attention kernel over a
      bfloat16 cache is chosen, `cpu_kernels.reads_slot_rows`, bfloat16: it reads
      half the bytes of float32, held as bits that XLA writes in place; bundled
      model, 64 slots: a decode step 71.5 to 65 ms).
    prefix_cache_dtype: of the dense layout's shared prefix cache (default:
      `cache_dtype`, except with the CPU's float32 default for a model that
      computes in a 16-bit dtype: then that dtype). On XLA:CPU the prefix's
      attention products are true matrix products (every slot's queries
      against one row), which run faster in bfloat16; a row's own products
      are small ones, which XLA runs slower from a bfloat16 cache. Bundled
      model, 64 slots, bfloat16 weights: a decode step 4-6% shorter.
    kv_layout: 'paged' (page pools and tables: `wcse_jax.model.paged`),
      'dense' (a row of its own per slot, the prefix in a one-row cache), or
      'auto': on CPU and TPU dense, which reads the least KV per decode step
      of the two there (the prefix once for all slots and each slot's spans
      in view; TPU's paged kernel reads the prefix once per slot, and on CPU
      gathering pages costs time the rows' spans do not); on GPU paged, where
      the kernel reads the prefix once too (Gemma2-2B, 256 slots, an H200: a
      decode step 9.5 ms paged, 15.4 ms dense with stacked layers; dense with
      every layer on its own took over 80 s to compile and was not timed).
    page_size: positions per page (paged).
    span: slots per span of a dense row (`LayerCache`): each decode chunk
      reads and writes only the spans its samples reach; None: one span.
      On the 2-core CPU (bundled model, 64 slots, bfloat16 weights) spans of
      64 took a decode step from 287 to 262 ms; of 32, 255 ms, at twice the
      compilations.
    attention: over pages, 'pallas' (JAX's kernels on TPU and GPU), 'xla',
      or 'auto' (Pallas on TPU and GPU, XLA on CPU); 'interpret' runs the
      kernels in Pallas interpret mode.
    page_layout: of the page pools, 'tokens' or 'heads' (`paged`); 'auto':
      the one the backend's kernel reads.
    fuse_projections: `sampling_layout`'s `fuse`, for a model not laid out yet.
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
      prefix_cache_dtype=None,
      kv_layout: str = 'auto',
      page_size: int = 16,
      span: int | None = 64,
      attention: str = 'auto',
      page_layout: str = 'auto',
      fuse_projections: bool = True,
  ):
    config = model.config
    if max_len > config.max_seq_len:
      raise ValueError(
          f'max_len={max_len} exceeds the {config.max_seq_len} positions {config.name} supports.'
      )
    platform = _platform(model)
    if kv_layout == 'auto':
      kv_layout = 'paged' if platform == 'gpu' else 'dense'
    if attention == 'auto':
      attention = 'xla' if platform == 'cpu' else 'pallas'
    choices = [a for a in paged.ATTENTION if a != 'reference']  # it runs eagerly, in tests
    if (kv_layout not in ('dense', 'paged') or attention not in choices
        or page_layout not in ('auto', *paged.LAYOUTS)):
      raise ValueError(
          f'kv_layout={kv_layout!r}, attention={attention!r} or page_layout={page_layout!r} is '
          f"not one of 'auto', 'dense', 'paged'; 'auto', {', '.join(map(repr, choices))}; "
          f"'auto', {', '.join(map(repr, paged.LAYOUTS))}."
      )
    model = sampling_layout(model, fuse=fuse_projections)
    self.model = model
    self.tokenizer = model.tokenizer
    self.max_len = max_len
    self.num_slots = num_slots
    self.prefill_rows = prefill_rows
    self.chunk_steps = chunk_steps
    self.prefill_chunk = prefill_chunk
    self.share_prompts = share_prompts
    self.eos_ids = tuple(eos_ids if eos_ids is not None else (self.tokenizer.eos_token_id,))
    self.kv_layout = kv_layout
    self.page_size = page_size
    self.span = span
    self.attention = attention
    self.layout = paged.layout_for(platform) if page_layout == 'auto' else page_layout
    compute_dtype = jnp.dtype(model.model.dtype)
    cpu_default = cache_dtype is None and platform == 'cpu' and kv_layout == 'dense'
    if cpu_default and is_16bit_float(compute_dtype) and cpu_kernels.reads_slot_rows(compute_dtype, compute_dtype):
      cache_dtype = compute_dtype  # held as its bits and read by our kernel (`LayerCache.bits_of`)
    self.cache_dtype = jnp.dtype(cache_dtype or default_dtype())
    if prefix_cache_dtype is None:
      prefix_cache_dtype = (
          compute_dtype if cpu_default and is_16bit_float(compute_dtype) else self.cache_dtype
      )
    if kv_layout == 'paged' and jnp.dtype(prefix_cache_dtype) != self.cache_dtype:
      raise ValueError(
          f'prefix_cache_dtype={jnp.dtype(prefix_cache_dtype).name}: the paged layout keeps the '
          f'prefix in its page pools, of cache_dtype={self.cache_dtype.name}.'
      )
    self.prefix_cache_dtype = jnp.dtype(prefix_cache_dtype)
    self._device: DenseKV | PagedKV | None = None
    self.last_stats = RunStats()

  @property
  def cache_shape(self) -> tuple[int, int] | None:
    """(positions per row, positions of the prefix) the held caches were made for."""
    return None if self._device is None else self._device.key

  def compiled_functions(self) -> list[Callable]:
    """The jitted functions of the held shape (to count their compilations)."""
    fn = self._device.fn
    return [getattr(fn, f.name) for f in dataclasses.fields(fn)]

  def _device_for(self, row_len: int, prefix_len: int):
    """The device buffers and functions for this shape (reused while it stays)."""
    key = (row_len, prefix_len)
    if self._device is not None and self._device.key == key:
      return self._device
    self._device = None  # frees the old buffers before the new ones are made
    if self.kv_layout == 'dense':
      self._device = DenseKV(self, key)
    else:
      self._device = PagedKV(self, key)
    return self._device

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
    prefix_ids, prompts, device = self._prepare(prefix, questions, params)
    skip = set(skip)
    groups = []
    for j, prompt in enumerate(prompts):
      todo = [i for i in range(num_samples) if (j, i) not in skip]
      # Shared: one prefill per problem, fanned out. Plain: one per sample.
      for samples in [todo] if self.share_prompts else [[i] for i in todo]:
        if samples:
          groups.append(Group(j, prompt, prompt.start(prefix_ids), collections.deque(samples)))
    run = _Run(self, device, prefix_ids, groups, params, seed)
    self.last_stats = run.stats
    return run.completions()

  def precompile(self, prefix: str, questions: list[str], params: SamplingParams) -> None:
    """Compiles now every decode shape a `sample` call of these prompts may use.

    A run compiles a shape when it first needs it: each view of the rows
    (dense: `kv.view_for`; paged: `PageTables.view`) as the samples first
    reach it. A caller
    that times a run calls this first to keep compilation out of the timing.
    """
    prefix_ids, _, device = self._prepare(prefix, questions, params)
    device.precompile(params, len(prefix_ids))

  def _prepare(self, prefix: str, questions: list[str], params: SamplingParams):
    """The prefix's tokens, the prompts, and the device state for their shape."""
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
    device = self._device_for(
        min(_round_up(own, _ROW_STEP), self.max_len),
        _round_up(len(prefix_ids), _ROW_STEP) if self.share_prompts else 0,
    )
    return prefix_ids, prompts, device


_ROW_STEP = 128


def _round_up(n: int, step: int) -> int:
  return max(step, -(-n // step) * step)


class _Run:
  """The host loop of one `Sampler.sample` call, over the device state it is given."""

  def __init__(self, sampler: Sampler, device, prefix_ids, groups, params: SamplingParams, seed: int):
    self.s = sampler
    self.device = device
    device.begin(prefix_ids)
    self.prefix_ids = prefix_ids
    self.pending = collections.deque(groups)  # not yet prefilled
    self.ready = collections.deque()  # prefilled, with samples left to start
    self.live: list[Live | None] = [None] * sampler.num_slots
    self.params = params
    self.key = jax.random.key(seed)
    self.uncharged = 0  # prefix tokens computed, not yet charged
    self.orders = self._no_orders()
    self.orders.stop[:] = True  # slots left active by an abandoned run
    self.stats = RunStats()

  def completions(self) -> Iterator[Completion]:
    s, device = self.s, self.device
    finished: list[Completion] = []
    while True:
      self._fill_slots()
      self._flush()
      if not any(self.live):
        device.finish()
        yield from finished
        return
      start = time.perf_counter()
      tokens, logprobs = device.decode(self.live, self.key, self.params)
      kv_bytes, kv_in_pages = device.kv_bytes()
      needed = kv_bytes_needed(
          s.model.config, s.cache_dtype.itemsize,
          [(live.position, live.prefix) for live in self.live if live],
          s.prefix_cache_dtype.itemsize,
      )
      # The device decodes this chunk while the caller takes the last one's completions.
      handed = time.perf_counter()
      yield from finished
      caller = time.perf_counter() - handed
      tokens, logprobs, active = jax.device_get((tokens, logprobs, device.slots.active))
      drawn_per_step = (tokens >= 0).sum(axis=0)
      steps_run = int(np.count_nonzero(drawn_per_step))
      self.stats.decode_seconds += time.perf_counter() - start - caller
      self.stats.decode_steps += steps_run
      self.stats.slot_steps += steps_run * s.num_slots
      self.stats.tokens += int(drawn_per_step.sum())
      self.stats.kv_bytes_read += kv_bytes * steps_run
      self.stats.kv_bytes_in_pages += kv_in_pages * steps_run
      self.stats.kv_bytes_needed += needed * steps_run
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
          device.end(b)
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
      self.device.refill(self.orders, self.key, self.params)
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
      o.position[b] = group.end
      self.device.start(b, group)
      self.live[b] = Live(
          group.problem, i, group.end, group.uncharged + self.uncharged, prefix=group.start
      )
      group.uncharged = self.uncharged = 0
      if not group.samples:
        self.ready.popleft()
        self.device.group_started(group)

  def _prefill_pool(self):
    """Prefills the next pending prompts, one pool row each."""
    start = time.perf_counter()
    rows = self.s.prefill_rows
    batch = [self.pending.popleft() for _ in range(min(rows, len(self.pending)))]
    for group in batch:
      group.uncharged = len(group.prompt.ids)
    if self.device.prefill(batch, self.prefix_ids):
      self.uncharged += len(self.prefix_ids)
    self.ready.extend(batch)
    jax.block_until_ready(self.device.pool_logits)
    self.stats.prefill_seconds += time.perf_counter() - start

  def _finished(self, live: Live, begin: int, *, still_active: bool) -> Completion | None:
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

  def _completion(self, live: Live, n: int, text: str, reason: str) -> Completion:
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
