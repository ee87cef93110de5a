"""The device side of a sampler run, one class per KV cache layout.

`DenseKV`: every slot and pool row owns a row of cache, and the few-shot
prefix sits in a one-row cache every row reads (`wcse_jax.model.transformer`).
`PagedKV`: page pools on the device and page tables on the host
(`wcse_jax.model.paged`, `wcse_jax.sampling.pages`). Both hold their device
buffers between runs of the same shape and offer the run loop (`sampler._Run`)
the same methods: `begin`, `prefill`, `start`, `group_started`, `refill`,
`decode`, `end`, `finish` and `kv_bytes`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from wcse_jax import parallel
from wcse_jax.model import AttentionKind, copy_pages, cpu_kernels, init_cache, init_paged_cache, paged
from wcse_jax.sampling import steps
from wcse_jax.sampling.pages import PagesExhaustedError, PageTables, shape_count, worst_case_pages
from wcse_jax.sampling.prompts import Prompt, chunk_lengths
from wcse_jax.sampling.rules import SamplingParams


@dataclasses.dataclass(frozen=True)
class _Compiled:
  """The jitted device functions of a dense sampler shape; shared by every `Sampler`
  of that shape (a trainer validating every N steps compiles them once)."""

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


def _slot_state(config, mesh, num_slots, prefill_rows):
  """Shardings of the slots and the pool logits, and jitted makers of both (either layout)."""
  slot_sharding = jax.tree.map(  # every slot array is [num_slots]
      lambda x: parallel.logical_sharding(('batch',), x.shape, mesh),
      jax.eval_shape(lambda: steps.empty_slots(num_slots)),
  )
  logits_sharding = parallel.logical_sharding(
      ('batch', 'vocab'), (prefill_rows, config.vocab_size), mesh
  )
  makers = dict(
      new_pool_logits=jax.jit(
          lambda: jnp.zeros((prefill_rows, config.vocab_size), jnp.float32),
          out_shardings=logits_sharding,
      ),
      new_slots=jax.jit(
          lambda: steps.empty_slots(num_slots), out_shardings=slot_sharding
      ),
  )
  return slot_sharding, logits_sharding, makers


def _vocab_major(mesh) -> bool:
  """Whether the decode loop computes the slots' logits `[V, B]` (`steps.decode_chunk`): on
  CPU, where XLA computes and reduces them faster so (the bundled model at 64 slots:
  the output projection 92 to 61 ms of a ~200 ms step)."""
  return mesh.devices.flat[0].platform == 'cpu'


@functools.lru_cache(maxsize=16)
def _compiled(
    graphdef, config, mesh, *, num_slots, prefill_rows, row_len, prefix_len, span, cache_dtype,
    prefix_cache_dtype, eos_ids, slot_rows=False,
) -> _Compiled:
  """For caches of `row_len` positions per row (in spans of `span` slots) and a
  shared prefix of `prefix_len`; the rows' keys as slot rows if `slot_rows`."""
  # The rows in spans; the prefix in one span, transposed (`LayerCache`).
  empty_cache = lambda rows, length=row_len, prefix=False: init_cache(
      config, rows, length, prefix_cache_dtype if prefix else cache_dtype,
      span=None if prefix else span, transposed=prefix, slot_rows=slot_rows and not prefix,
      bits=mesh.devices.flat[0].platform == 'cpu' and not prefix,
  )
  cache_shardings = lambda rows, length=row_len, prefix=False: parallel.cache_shardings(
      jax.eval_shape(lambda: empty_cache(rows, length, prefix)), mesh
  )
  replicated = NamedSharding(mesh, PartitionSpec())
  slot_sharding, logits_sharding, makers = _slot_state(config, mesh, num_slots, prefill_rows)
  cache, pool = cache_shardings(num_slots), cache_shardings(prefill_rows)
  return _Compiled(
      extend=jax.jit(functools.partial(steps.extend, graphdef), donate_argnums=1),
      extend_last=jax.jit(
          functools.partial(steps.extend_last, graphdef),
          donate_argnums=(1, 2),
          out_shardings=(pool, logits_sharding),
      ),
      begin_rows=jax.jit(steps.begin_rows, donate_argnums=0, out_shardings=pool),
      refill=jax.jit(
          steps.refill, static_argnames='rules', donate_argnums=(0, 1),
          out_shardings=(cache, slot_sharding),
      ),
      decode=jax.jit(
          functools.partial(
              steps.decode_chunk, graphdef, eos_ids=eos_ids, vocab_major=_vocab_major(mesh)
          ),
          static_argnames=('rules', 'steps', 'view'),
          donate_argnums=(1, 2),
          out_shardings=(cache, slot_sharding, replicated, replicated),
      ),
      new_prefix=jax.jit(
          lambda: empty_cache(1, prefix_len, True), out_shardings=cache_shardings(1, prefix_len, True)
      ),
      new_cache=jax.jit(lambda: empty_cache(num_slots), out_shardings=cache),
      new_pool=jax.jit(lambda: empty_cache(prefill_rows), out_shardings=pool),
      **makers,
  )


@dataclasses.dataclass(frozen=True)
class _CompiledPaged:
  """The jitted device functions of a paged sampler shape (see `steps`)."""

  extend: Callable
  extend_last: Callable
  copy: Callable
  refill: Callable
  decode: Callable
  new_pages: Callable
  new_pool_logits: Callable
  new_slots: Callable


@functools.lru_cache(maxsize=16)
def _compiled_paged(
    graphdef, config, mesh, *, num_slots, prefill_rows, num_pages, page_size, layout, attention,
    cache_dtype, eos_ids,
) -> _CompiledPaged:
  """For page pools of `num_pages` (a sorted tuple of (kind, pages)) pages per layer."""
  empty = lambda: init_paged_cache(
      config, dict(num_pages), page_size=page_size, layout=layout, attention=attention,
      dtype=cache_dtype, bits=mesh.devices.flat[0].platform == 'cpu',
  )
  replicated = NamedSharding(mesh, PartitionSpec())
  pages = parallel.paged_cache_shardings(jax.eval_shape(empty), mesh)
  slot_sharding, logits_sharding, makers = _slot_state(config, mesh, num_slots, prefill_rows)
  return _CompiledPaged(
      extend=jax.jit(
          _over_view(functools.partial(steps.extend, graphdef)), donate_argnums=1,
          out_shardings=pages,
      ),
      extend_last=jax.jit(
          _over_view(functools.partial(steps.extend_last, graphdef)),
          donate_argnums=(1, 3),
          out_shardings=(pages, logits_sharding),
      ),
      copy=jax.jit(functools.partial(copy_pages, config), donate_argnums=0, out_shardings=pages),
      refill=jax.jit(
          steps.refill_slots, static_argnames='rules', donate_argnums=0, out_shardings=slot_sharding
      ),
      decode=jax.jit(
          _over_view(functools.partial(
              steps.decode_chunk, graphdef, eos_ids=eos_ids, vocab_major=_vocab_major(mesh)
          )),
          static_argnames=('rules', 'steps'),
          donate_argnums=(1, 3),
          out_shardings=(pages, slot_sharding, replicated, replicated),
      ),
      new_pages=jax.jit(empty, out_shardings=pages),
      **makers,
  )


def clear_compiled():
  """Forgets the jitted functions of every sampler shape (the next `Sampler` of a shape
  compiles again); with `jax.clear_caches()`, frees their compiled programs."""
  _compiled.cache_clear()
  _compiled_paged.cache_clear()


def _over_view(fn):
  """`fn(params, cache, ...)` for page pools held without a view: the call's view
  (`PagedKVCache.view`) comes apart (not donated: its shapes change from call to call)
  and does not come back."""

  def run(params, cache, view, *args, **kwargs):
    out = fn(params, cache.view(view), *args, **kwargs)
    if isinstance(out, tuple):
      return (out[0].without_view(), *out[1:])
    return out.without_view()

  run.__name__ = getattr(getattr(fn, 'func', fn), '__name__', 'run')
  return run


def free_device_bytes(device) -> int | None:
  """Bytes the device can still allocate (host memory for CPU), if it says."""
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  if stats and 'bytes_limit' in stats:
    return int(stats['bytes_limit'] - stats.get('bytes_in_use', 0))
  try:  # what the kernel can hand out, the page cache included
    with open('/proc/meminfo') as f:
      return 1024 * next(int(line.split()[1]) for line in f if line.startswith('MemAvailable:'))
  except (OSError, StopIteration, ValueError, IndexError):
    pass
  try:
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
  except (ValueError, OSError, AttributeError):
    return None


def _nbytes(tree) -> int:
  return sum(x.nbytes for x in jax.tree.leaves(tree))


def view_for(reach: int, row_len: int, span: int | None) -> int:
  """The slots a decode chunk whose rows reach `reach` slots reads: whole spans,
  their count rounded up to 1, 2, 3, 4, 6, 8, 12, 16, ... (`pages.shape_count`:
  few shapes to compile), at most the row.

  >>> [view_for(reach, 512, 64) for reach in (1, 64, 65, 200, 300, 512)]
  [64, 64, 128, 256, 384, 512]
  """
  return row_len if span is None else shape_count(reach, span, row_len)


def _view_bytes(cache, view: int | None) -> int:
  """Bytes of the keys and values in the spans below `view` of every layer."""
  return sum(
      layer.keys[i].nbytes + layer.values[i].nbytes
      for layer in (*cache.blocks, *cache.tail)
      for i, _ in enumerate(layer.spans(view))
  )


@dataclasses.dataclass
class Group:
  """A prompt to prefill once and the samples to fan out from it."""

  problem: int
  prompt: Prompt
  start: int  # position of its first token
  samples: collections.deque[int]
  row: int = -1  # in the pool, once prefilled
  uncharged: int = 0  # prompt tokens computed, not yet charged to a sample
  pages: dict | None = None  # its page tables, once prefilled (paged)

  @property
  def end(self) -> int:
    """The position after its prompt: where its samples' first tokens go."""
    return self.start + len(self.prompt.ids)


@dataclasses.dataclass
class Live:
  """A sample in a slot, as the host sees it."""

  problem: int
  sample: int
  prompt_tokens: int
  prompt_tokens_computed: int
  prefix: int = 0  # positions of the shared prefix its prompt continues
  token_ids: list[int] = dataclasses.field(default_factory=list)
  logprobs: list[float] = dataclasses.field(default_factory=list)

  @property
  def position(self) -> int:
    """Where its next token goes (every token drawn so far has been fed)."""
    return self.prompt_tokens + len(self.token_ids)


def _chunks(ids: list[tuple[int, ...]], starts: list[int], rows: int, chunk: int):
  """Right-padded `(tokens, positions, mask)` chunks writing `ids[r]` from `starts[r]` into row r."""
  lengths = chunk_lengths(max(map(len, ids), default=0), chunk)
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
    yield tokens[:, window], positions[:, window], mask[:, window]
    end += length


def _last_tokens(batch: list[Group], rows: int) -> np.ndarray:
  """[3, rows]: each group's last prompt token, its position, and 1 (0 for unused rows)."""
  last = np.zeros((3, rows), np.int32)
  for r, group in enumerate(batch):
    last[:, r] = group.prompt.ids[-1], group.end - 1, 1
  return last


@dataclasses.dataclass(frozen=True)
class _PrefixKey:
  """What a computed prefix was computed from: its tokens and the parameter arrays.

  A run whose prefix has the same tokens, under the very parameter arrays the
  held prefix was computed with (the same objects: JAX arrays never change),
  reads the held one instead of computing it again (rounds of adaptive
  allocation, a benchmark's repeated runs). New parameters (a trainer's next
  validation) are new arrays, so never match; holding the arrays keeps their
  identities from being reused.
  """

  ids: tuple[int, ...]
  params: tuple

  @classmethod
  def of(cls, device, prefix_ids) -> _PrefixKey:
    return cls(tuple(prefix_ids), tuple(jax.tree.leaves(device.sampler.model.params)))

  @staticmethod
  def holds(device, prefix_ids) -> bool:
    """Whether `device.prefix` is the prefix of `prefix_ids` under the sampler's parameters."""
    held = device.prefix_of
    if device.prefix is None or held is None or held.ids != tuple(prefix_ids):
      return False
    now = jax.tree.leaves(device.sampler.model.params)
    return len(now) == len(held.params) and all(a is b for a, b in zip(now, held.params))


class DenseKV:
  """A row of its own per slot and per pool row; the prefix in a one-row cache.

  Holds the device buffers between runs; `_Run` calls the methods below.
  """

  def __init__(self, sampler, key):
    row_len, prefix_len = key
    model = sampler.model
    self.sampler, self.key = sampler, key
    self.fn = _compiled(
        model.graphdef, model.config, model.mesh, num_slots=sampler.num_slots,
        prefill_rows=sampler.prefill_rows, row_len=row_len, prefix_len=prefix_len,
        span=sampler.span, cache_dtype=sampler.cache_dtype,
        prefix_cache_dtype=sampler.prefix_cache_dtype, eos_ids=sampler.eos_ids,
        slot_rows=model.mesh.devices.flat[0].platform == 'cpu'
        and cpu_kernels.reads_slot_rows(model.model.dtype, sampler.cache_dtype),
    )
    self.cache, self.pool = self.fn.new_cache(), self.fn.new_pool()
    self.pool_logits, self.slots = self.fn.new_pool_logits(), self.fn.new_slots()
    self.prefix, self.prefix_of = None, None
    self.view = row_len

  def begin(self, prefix_ids):
    """A new run: the prefix cache is kept if it holds `prefix_ids` under the same
    parameters (`_PrefixKey`), else computed on first use."""
    if not _PrefixKey.holds(self, prefix_ids):
      self.prefix, self.prefix_of = None, None

  def _feed(self, cache, ids, starts, rows, shared):
    params = self.sampler.model.params
    for tokens, positions, mask in _chunks(ids, starts, rows, self.sampler.prefill_chunk):
      cache = self.fn.extend(params, cache, tokens, positions, mask, shared)
    return cache

  def prefill(self, batch: list[Group], prefix_ids) -> bool:
    """Prefills the groups into pool rows 0.. and keeps their last logits; returns whether
    the prefix was computed for them."""
    rows = self.sampler.prefill_rows
    after_prefix = np.array([r < len(batch) and batch[r].prompt.after_prefix for r in range(rows)])
    computed = False
    if after_prefix.any() and self.prefix is None:
      self.prefix = self._feed(self.fn.new_prefix(), [prefix_ids], [0], 1, None)
      self.prefix_of = _PrefixKey.of(self, prefix_ids)
      computed = True
    self.pool = self.fn.begin_rows(self.pool, np.arange(rows) < len(batch), after_prefix)
    self.pool = self._feed(
        self.pool, [g.prompt.ids[:-1] for g in batch], [g.start for g in batch], rows, self.prefix
    )
    last = _last_tokens(batch, rows)
    self.pool, self.pool_logits = self.fn.extend_last(
        self.sampler.model.params, self.pool, self.pool_logits, last[0], last[1],
        last[2].astype(bool), self.prefix,
    )
    for r, group in enumerate(batch):
      group.row = r
    return computed

  def start(self, slot: int, group: Group):
    """Slot `slot` starts a sample of `group` (the row copy happens in `refill`)."""

  def end(self, slot: int):
    """Slot `slot`'s sample ended."""

  def group_started(self, group: Group):
    """Every sample of `group` has started."""

  def finish(self):
    """The run has ended."""

  def refill(self, orders: steps.Refill, key, params: SamplingParams):
    self.cache, self.slots = self.fn.refill(
        self.cache, self.slots, self.pool, self.pool_logits, orders, key, rules=params.token_rules
    )

  def decode(self, live: list[Live | None], key, params: SamplingParams):
    s = self.sampler
    # A row's own tokens fill its slots from 0 (`LayerCache`); this chunk's
    # reach no further than each sample's position plus the chunk's steps.
    reach = max(sample.position - sample.prefix for sample in live if sample) + s.chunk_steps
    self.view = view_for(reach, self.key[0], s.span)
    self.cache, self.slots, tokens, logprobs = self.fn.decode(
        s.model.params, self.cache, self.slots, key, np.int32(params.max_new_tokens),
        self.prefix, rules=params.token_rules, steps=s.chunk_steps, view=self.view,
    )
    return tokens, logprobs

  def precompile(self, params: SamplingParams, prefix_len: int):  # pylint: disable=unused-argument
    """Compiles the decode chunk of every view of the rows (a call with no active slot
    runs no step and changes nothing); the prefix's shape is the key's."""
    s = self.sampler
    row_len = self.key[0]
    prefix = None if not self.key[1] else self.prefix if self.prefix is not None else self.fn.new_prefix()
    for view in sorted({view_for(reach, row_len, s.span) for reach in range(1, row_len + 1)}):
      self.cache, _, _, _ = self.fn.decode(
          s.model.params, self.cache, self.fn.new_slots(), jax.random.key(0),
          np.int32(params.max_new_tokens), prefix, rules=params.token_rules,
          steps=s.chunk_steps, view=view,
      )

  def kv_bytes(self) -> tuple[int, int]:
    """What the last decode chunk's steps' attention reads (every slot's own spans in
    view and the prefix, once), and the bytes of pages slots name (none here)."""
    return _view_bytes(self.cache, self.view) + _nbytes(self.prefix), 0


class PagedKV:
  """Page pools on the device, page tables on the host (`wcse_jax.model.paged`).

  The prefix is written once into pages every problem's table names; a
  problem's prompt pages are named by its samples' tables; a slot starts a
  sample by forking the problem's table (one page copied per kind of layer).
  Each call is handed a view (`_view`): kinds a kernel reads get whole tables
  (and on GPU the prefix's pages, read once, where every row continues it); the
  XLA path gets the prefix's whole pages once and the columns in reach.
  """

  def __init__(self, sampler, key):
    row_len, prefix_len = key
    model, config = sampler.model, sampler.model.config
    self.sampler, self.key = sampler, key
    self.kinds = {
        kind.value: (config.sliding_window if kind == AttentionKind.LOCAL else None)
        for kind in dict.fromkeys(config.layer_kinds)
    }
    self.width = paged.pages_for(sampler.max_len, sampler.page_size)
    chunk = max(sampler.chunk_steps, sampler.prefill_chunk)
    self.num_pages = {
        kind: worst_case_pages(
            page_size=sampler.page_size, row_len=row_len, prefix_len=prefix_len,
            sequences=sampler.num_slots + sampler.prefill_rows, window=window, chunk=chunk,
        )
        for kind, window in self.kinds.items()
    }
    layers = collections.Counter(kind.value for kind in config.layer_kinds)
    self.page_bytes = {  # one page in every layer of its kind
        kind: 2 * sampler.page_size * config.num_kv_heads * config.head_dim
        * jnp.dtype(sampler.cache_dtype).itemsize * layers[kind]
        for kind in self.kinds
    }
    self._check_fits(model)
    self.fn = _compiled_paged(
        model.graphdef, config, model.mesh, num_slots=sampler.num_slots,
        prefill_rows=sampler.prefill_rows, num_pages=tuple(sorted(self.num_pages.items())),
        page_size=sampler.page_size, layout=sampler.layout, attention=sampler.attention,
        cache_dtype=sampler.cache_dtype, eos_ids=sampler.eos_ids,
    )
    self.pages = self.fn.new_pages()
    self.pool_logits, self.slots = self.fn.new_pool_logits(), self.fn.new_slots()
    self.prefix, self.prefix_of = None, None
    # Views' column counts in steps of 64 positions (`pages.shape_count`).
    self.page_unit = max(1, 64 // sampler.page_size)
    self.read: dict[str, int] = {}
    self.begin(())

  def _check_fits(self, model):
    """Stops with one sentence if the pools cannot fit (pages are split over the model axis)."""
    needed = sum(n * self.page_bytes[kind] for kind, n in self.num_pages.items())
    free = free_device_bytes(model.mesh.devices.flat[0])
    if free is not None and needed > 0.9 * free * model.mesh.shape[parallel.MODEL]:
      raise PagesExhaustedError(
          f'The KV pages for num_slots={self.sampler.num_slots} and max_len={self.sampler.max_len} '
          f'need {needed / 2**30:.2f} GiB and the device has {free / 2**30:.2f} GiB free: '
          'lower num_slots, prefill_rows or max_len.'
      )

  def begin(self, prefix_ids):
    """A new run: fresh tables (the pools are reused; pages are rewritten before read).

    The prefix's pages are kept, the only pages held from the last run, if they
    hold `prefix_ids` under the same parameters (`_PrefixKey`).
    """
    s = self.sampler
    self.tables = PageTables(
        self.num_pages, page_size=s.page_size, width=self.width, windows=self.kinds
    )
    if _PrefixKey.holds(self, prefix_ids):
      self.tables.adopt(self.prefix)
    else:
      self.prefix, self.prefix_of = None, None
    # The prefix's whole pages, which the rows that continue it share (`PageTables.fork`).
    self.prefix_pages = len(prefix_ids) // s.page_size
    self.slot_pages: list[dict | None] = [None] * s.num_slots
    self.copies: list[tuple[str, int, int]] = []

  def _kernel_kinds(self, tokens: int) -> frozenset[str]:
    """The kinds of layer a backend's kernel reads in calls of `tokens` tokens per row."""
    s = self.sampler
    return frozenset(
        kind for kind, window in self.kinds.items()
        if paged.kernel_fits(s.attention, s.layout, tokens=tokens, window=window,
                             length=self.width * s.page_size)
    )

  def _view(self, seqs, reach, prefixed, tokens: int):
    """The view of a call (`PageTables.view`): the prefix read once for the rows that
    continue it (`prefixed`: None, no cascade), and the pages each kind reads."""
    return self.tables.view(
        seqs, reach, prefixed or [False] * len(seqs), unit=self.page_unit,
        whole=self._kernel_kinds(tokens), prefix=self.prefix if prefixed else None,
        prefix_pages=self.prefix_pages, whole_cascade=paged.kernel_takes_cascade(self.sampler.layout),
    )

  def _copy(self):
    """Makes the page copies the forks since the last call asked for."""
    if not self.copies:
      return
    size = max(self.sampler.num_slots, self.sampler.prefill_rows)  # forks between two copies
    source = {kind: np.zeros(size, np.int32) for kind in self.kinds}
    target = {kind: np.zeros(size, np.int32) for kind in self.kinds}
    count = collections.Counter()
    for kind, src, dst in self.copies:
      source[kind][count[kind]], target[kind][count[kind]] = src, dst
      count[kind] += 1
    self.pages = self.fn.copy(self.pages, source, target)
    self.copies = []

  def _feed(self, seqs, ids, starts, prefixed=None):
    """Writes `ids[r]` from `starts[r]` into sequence r's pages, chunk by chunk."""
    params = self.sampler.model.params
    for tokens, positions, mask in _chunks(ids, starts, len(seqs), self.sampler.prefill_chunk):
      reach = [(int(pos[m].min()), int(pos[m].max()) + 1) if m.any() else None
               for pos, m in zip(positions, mask)]
      ends = [span and span[1] for span in reach]
      for seq, end in zip(seqs, ends):
        if seq is not None and end is not None:
          self.tables.grow(seq, end)
      view, _ = self._view(seqs, reach, prefixed, tokens.shape[1])
      self.pages = self.fn.extend(params, self.pages, view, tokens, positions, mask, None)
      for seq, end in zip(seqs, ends):
        if seq is not None and end is not None:
          self.tables.trim(seq, end)

  def prefill(self, batch: list[Group], prefix_ids) -> bool:
    rows = self.sampler.prefill_rows
    computed = False
    if self.prefix is None and any(g.prompt.after_prefix for g in batch):
      self.prefix = self.tables.new()
      self._feed([self.prefix], [prefix_ids], [0])
      self.prefix_of = _PrefixKey.of(self, prefix_ids)
      computed = True
    seqs: list[dict | None] = [None] * rows
    for r, group in enumerate(batch):
      if group.prompt.after_prefix:
        group.pages, copies = self.tables.fork(self.prefix, group.start)
        self.copies += copies
      else:
        group.pages = self.tables.new()
      group.row, seqs[r] = r, group.pages
    self._copy()
    prefixed = None
    if self.prefix is not None:
      prefixed = [r < len(batch) and batch[r].prompt.after_prefix for r in range(rows)]
    self._feed(seqs, [g.prompt.ids[:-1] for g in batch], [g.start for g in batch], prefixed)
    last = _last_tokens(batch, rows)
    for group in batch:
      self.tables.grow(group.pages, group.end)
    reach = [(g.end - 1, g.end) for g in batch] + [None] * (rows - len(batch))
    view, _ = self._view(seqs, reach, prefixed, 1)
    self.pages, self.pool_logits = self.fn.extend_last(
        self.sampler.model.params, self.pages, view, self.pool_logits, last[0], last[1],
        last[2].astype(bool), None,
    )
    for group in batch:
      self.tables.trim(group.pages, group.end)
    return computed

  def start(self, slot: int, group: Group):
    self.slot_pages[slot], copies = self.tables.fork(group.pages, group.end)
    self.copies += copies

  def end(self, slot: int):
    self.tables.free(self.slot_pages[slot])
    self.slot_pages[slot] = None

  def group_started(self, group: Group):
    self.tables.free(group.pages)

  def finish(self):
    """The run has ended: every page but the prefix's is free again."""

  def refill(self, orders: steps.Refill, key, params: SamplingParams):
    self._copy()
    self.slots = self.fn.refill(self.slots, self.pool_logits, orders, key, rules=params.token_rules)

  def decode(self, live: list[Live | None], key, params: SamplingParams):
    s = self.sampler
    reach = []
    for seq, sample in zip(self.slot_pages, live):
      if sample is None:
        reach.append(None)
        continue
      end = min(sample.position + s.chunk_steps, s.max_len)
      self.tables.trim(seq, sample.position)
      self.tables.grow(seq, end)
      reach.append((sample.position, end))
    prefixed = None if self.prefix is None else [bool(x and x.prefix) for x in live]
    view, self.read = self._view(self.slot_pages, reach, prefixed, 1)
    self.pages, self.slots, tokens, logprobs = self.fn.decode(
        s.model.params, self.pages, view, self.slots, key,
        np.int32(params.max_new_tokens), None, rules=params.token_rules, steps=s.chunk_steps,
    )
    return tokens, logprobs

  def precompile(self, params: SamplingParams, prefix_len: int):
    """Compiles the decode chunk of every view a run of this prefix may hand it (a call
    with no active slot runs no step and changes nothing)."""
    s = self.sampler
    idle = [None] * s.num_slots
    # A stand-in for the prefix when rows continue a shared one: null pages.
    prefix = {kind: [paged.NULL_PAGE] * paged.pages_for(prefix_len, s.page_size) for kind in self.kinds}
    counts = {shape_count(n, self.page_unit, self.width) for n in range(1, self.width + 1)}
    for count in sorted(counts):
      view, _ = self.tables.view(
          idle, idle, [False] * s.num_slots, unit=self.page_unit, whole=self._kernel_kinds(1),
          prefix=prefix if self.key[1] else None, prefix_pages=prefix_len // s.page_size,
          columns=count, whole_cascade=paged.kernel_takes_cascade(s.layout),
      )
      self.pages, _, _, _ = self.fn.decode(
          s.model.params, self.pages, view, self.fn.new_slots(), jax.random.key(0),
          np.int32(params.max_new_tokens), None, rules=params.token_rules, steps=s.chunk_steps,
      )

  def kv_bytes(self) -> tuple[int, int]:
    """What the last decode chunk's steps' attention reads, and the bytes of the pages
    the slots' tables name. A kernel reads the named pages (the prefix's once per
    slot, or on GPU once in all); the XLA path gathers the view's columns of every
    row and the prefix's pages once (`PageTables.view`)."""
    read = sum(n * self.page_bytes[kind] for kind, n in self.read.items())
    named = sum(
        np.count_nonzero(self.tables.table(self.slot_pages, kind)) * self.page_bytes[kind]
        for kind in self.kinds
    )
    return read, int(named)
