"""The paged KV cache: forward passes over pages against whole sequences, the Pallas
kernels against the XLA path, and the host's page tables."""

import functools

import numpy as np
import pytest
import jax
import jax.numpy as jnp
from flax import nnx

from wcse_jax.checkpoints import load_model
from wcse_jax.model import copy_pages, init_paged_cache, unstack_layers
from wcse_jax.model import paged
from wcse_jax.sampling.pages import PagesExhaustedError, PageTables, worst_case_pages

PAGE = 4


def _tables(config, num_pages=64, width=8):
  kinds = {kind.value: (config.sliding_window if kind.value == 'local' else None)
           for kind in config.layer_pattern}
  return PageTables({k: num_pages for k in kinds}, page_size=PAGE, width=width, windows=kinds)


def _apply_copies(config, cache, copies, kinds):
  source = {k: jnp.asarray([s for kind, s, _ in copies if kind == k] or [0], jnp.int32) for k in kinds}
  target = {k: jnp.asarray([t for kind, _, t in copies if kind == k] or [0], jnp.int32) for k in kinds}
  return copy_pages(config, cache, source, target)


@jax.jit
def _forward(graphdef, params, tokens, positions, mask, cache):
  return nnx.merge(graphdef, params)(tokens, positions, input_mask=mask, cache=cache)


def _call(model, tables, cache, seqs, tokens, positions, mask, cascade=None):
  """One forward call of rows `seqs` (their pages grown to cover this call). With
  `cascade` ((prefix, its whole pages, which rows continue it), or False for none), the
  call gets a view (`PageTables.view`): only the columns in reach, the prefix read once."""
  for seq, pos, m in zip(seqs, positions, mask):
    if m.any():
      tables.grow(seq, int(pos[m].max()) + 1)
  if cascade is None:
    cache = cache.replace(tables={k: jnp.asarray(tables.table(seqs, k)) for k in tables.free_pages})
  else:
    prefix, whole, prefixed = cascade or (None, 0, None)
    reach = [(int(pos[m].min()), int(pos[m].max()) + 1) if m.any() else None
             for pos, m in zip(positions, mask)]
    view, _ = tables.view(seqs, reach, prefixed or [False] * len(seqs), unit=1, prefix=prefix,
                          prefix_pages=whole)
    cache = cache.view(jax.tree.map(jnp.asarray, view))
  logits, cache = _forward(
      *nnx.split(model), jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(mask), cache
  )
  for seq, pos in zip(seqs, positions):
    tables.trim(seq, int(pos.max()) + 1)
  return np.asarray(logits), cache


@pytest.mark.parametrize('version, layers, layout, views', [
    (1, 'scanned', 'heads', False), (2, 'scanned', 'tokens', False),
    (2, 'one_by_one', 'heads', False), (3, 'scanned', 'heads', False),
    (3, 'one_by_one', 'tokens', False),
    (2, 'scanned', 'tokens', True), (3, 'one_by_one', 'heads', True), (3, 'scanned', 'tokens', True),
])
def test_rows_over_shared_pages_match_their_whole_sequences(tiny_hf, version, layers, layout, views):
  """A 10-token prefix written once, two rows forked from it (sharing its whole
  pages, copying the partial one), a row holding its whole sequence, and a fourth
  row forked from row 0 in the middle of a page (a sample fanned out from its
  problem): every row's logits equal those of its whole sequence. The rows outgrow
  the window (6), so local pages are given back as they go. With `views`, each
  call reads only the columns its rows reach, and the three rows that continue
  the prefix read its two whole pages once, beside the row that holds its own."""
  loaded = load_model(str(tiny_hf[version][0]), dtype=jnp.float32, with_tokenizer=False)
  config, graphdef, params = loaded.config, loaded.graphdef, loaded.params
  if layers == 'one_by_one':
    config, graphdef, params = unstack_layers(config, graphdef, params)
  model = nnx.merge(graphdef, params)
  rng = np.random.default_rng(3)
  prefix = rng.integers(4, 300, 10)
  own = [rng.integers(4, 300, n) for n in (13, 5)]
  whole = rng.integers(4, 300, 14)
  forked = rng.integers(4, 300, 8)  # row 3 continues row 0's first 10 + 4 tokens
  sequences = [
      np.concatenate([prefix, own[0]]), np.concatenate([prefix, own[1]]), whole,
      np.concatenate([prefix, own[0][:4], forked]),
  ]
  expected = [np.asarray(model(jnp.asarray(q[None]), jnp.arange(len(q))[None])[0][0]) for q in sequences]

  tables = _tables(config)
  cache = init_paged_cache(
      config, {k: 64 for k in tables.free_pages}, page_size=PAGE, layout=layout
  )
  root = tables.new()
  _, cache = _call(model, tables, cache, [root], prefix[None], np.arange(10)[None],
                   np.ones((1, 10), bool), False if views else None)
  root_pages = {kind: list(pages) for kind, pages in root.items()}
  rows, copies = [], []
  for _ in range(2):
    row, row_copies = tables.fork(root, 10)
    rows.append(row)
    copies += row_copies
  cache = _apply_copies(config, cache, copies, tables.free_pages)
  tables.free(root)  # the rows keep the prefix's pages alive
  rows.append(tables.new())
  starts = [10, 10, 0]
  got = [[], [], [], []]
  streams = [own[0], own[1], whole]
  chunk = np.stack([q[:4] for q in streams])
  cascade = lambda n: (root_pages, 2, [True, True, False, True][:n]) if views else None
  logits, cache = _call(
      model, tables, cache, rows, chunk, np.array(starts)[:, None] + np.arange(4),
      np.ones((3, 4), bool), cascade(3),
  )
  for r in range(3):
    got[r].extend(logits[r])
  row3, row3_copies = tables.fork(rows[0], 14)
  assert len(row3_copies) == len(tables.free_pages)  # 14 is inside a page: one copy per kind
  cache = _apply_copies(config, cache, row3_copies, tables.free_pages)
  rows.append(row3)
  streams.append(np.concatenate([own[0][:4], forked]))
  starts.append(10)
  lengths = [len(q) for q in streams]
  for t in range(4, max(lengths)):
    step = np.array([q[t] if t < len(q) else 0 for q in streams], np.int32)
    live = t < np.array(lengths)
    logits, cache = _call(
        model, tables, cache, rows, step[:, None], (np.array(starts) + t)[:, None], live[:, None],
        cascade(4),
    )
    for r in np.flatnonzero(live):
      got[r].append(logits[r, 0])
  got[3] = got[0][:4] + got[3]
  for r in range(4):
    tail = expected[r][starts[r]:]
    assert np.abs(np.stack(got[r]) - tail).max() < 1e-4, r
  for seq in rows:
    tables.free(seq)
  assert all(tables.in_use(kind) == 0 for kind in tables.free_pages)
  # The null page was never written.
  pools = [(pool, config.num_repeats) for pool in cache.blocks] + [(pool, 1) for pool in cache.tail]
  for pool, layers_in_pool in pools:
    per_layer = paged.pool_pages(layout, pool) // layers_in_pool
    for x in pool:
      pages = x if layout == 'tokens' else jnp.moveaxis(x, 1, 0)
      assert not np.asarray(pages[::per_layer]).any()


@pytest.mark.parametrize('layout', ['tokens', 'heads'])
def test_16bit_pools_held_as_bits_compute_the_same_and_are_written_in_place(tiny_hf, layout):
  """A bfloat16 pool held as its bit patterns (`bits`, the sampler's choice on CPU):
  the same logits bit for bit, prefill and a decode step of three rows, and the
  decode step's program needs no temporaries the pools' size (XLA:CPU writes into
  bfloat16 arrays through a float32 copy of the whole array: twice their size)."""
  loaded = load_model(str(tiny_hf[2][0]), dtype=jnp.bfloat16, with_tokenizer=False)
  config, graphdef, params = unstack_layers(loaded.config, loaded.graphdef, loaded.params)
  model = nnx.merge(graphdef, params)
  tokens = np.random.default_rng(5).integers(4, 300, (3, 12))
  runs = {}
  for bits in (False, True):
    tables = _tables(config, num_pages=2048, width=4)
    cache = init_paged_cache(config, {k: 2048 for k in tables.free_pages}, page_size=PAGE,
                             layout=layout, dtype=jnp.bfloat16, bits=bits)
    assert cache.tail[0][0].dtype == (jnp.uint16 if bits else jnp.bfloat16)
    rows = [tables.new() for _ in range(3)]
    prefill, cache = _call(model, tables, cache, rows, tokens[:, :11], np.tile(np.arange(11), (3, 1)),
                           np.ones((3, 11), bool))
    for row in rows:
      tables.grow(row, 12)
    step = (jnp.asarray(tokens[:, 11:]), jnp.full((3, 1), 11), jnp.ones((3, 1), bool))
    view = cache.replace(tables={k: jnp.asarray(tables.table(rows, k)) for k in tables.free_pages})
    donating = jax.jit(_forward.__wrapped__, donate_argnums=5)  # as the sampler calls it
    compiled = donating.lower(*nnx.split(model), *step, view).compile()
    decoded, _ = compiled(*nnx.split(model), *step, view)  # the program measured, compiled once
    runs[bits] = np.asarray(prefill), np.asarray(decoded), compiled.memory_analysis().temp_size_in_bytes
  np.testing.assert_array_equal(runs[True][0], runs[False][0])
  np.testing.assert_array_equal(runs[True][1], runs[False][1])
  pool_bytes = sum(x.nbytes for pool in cache.tail for x in pool)
  assert runs[True][2] < pool_bytes / 4, (runs[True][2], runs[False][2], pool_bytes)
  with pytest.raises(ValueError, match='Only a 16-bit float pool'):
    paged.empty_pool(layout, 4, PAGE, 1, 8, jnp.float32, bits=True)


def _attention_over_pages(preset, kind, layout, attention, t, *, seed=0, window=12, real=None, shared=0,
                          read_once=True, dtype=jnp.float32, jaxpr=False):
  """One attention layer of `preset`'s head layout (narrow embedding, window 12),
  called over pages of random earlier keys (rows of 32 positions): its output and new pool.
  With `shared`, every row's first `shared` pages are the same: a prefix read once
  (`LayerPages.prefix`) by every row if `read_once`, else through each row's table.
  `dtype`: of the layer's weights, products and pool. `jaxpr`: the call's jaxpr instead."""
  from wcse_jax.model import AttentionKind, get_preset  # pylint: disable=g-import-not-at-top
  from wcse_jax.model.modules import Attention  # pylint: disable=g-import-not-at-top

  config = get_preset(preset).replace(embed_dim=32, sliding_window=window)
  layer = Attention(config, AttentionKind(kind), rngs=nnx.Rngs(seed), dtype=dtype, param_dtype=dtype)
  rng = np.random.default_rng(seed)
  page, width, rows = 8, 4, 3
  total = rows * width + 1
  pool = paged.empty_pool(layout, total, page, config.num_kv_heads, config.head_dim, dtype)
  pool = tuple(jnp.asarray(rng.standard_normal(x.shape), dtype) for x in pool)
  table = 1 + rng.permutation(rows * width).reshape(rows, width).astype(np.int32)
  table[:, :shared] = table[0, :shared]
  ends = np.array([30, 17, 5 + page * shared])  # each row's last position in this call
  positions = ends[:, None] - t + 1 + np.arange(t)
  mask = jnp.ones((rows, t), bool) if real is None else jnp.arange(t)[None] < jnp.asarray(real)[:, None]
  pages = paged.LayerPages(
      pool=pool, table=jnp.asarray(table), offset=jnp.int32(0), input_mask=mask,
      page_size=page, layout=layout, attention=attention,
      **(dict(prefix=jnp.asarray(table[0, :shared]), prefixed=jnp.ones(rows, bool))
         if shared and read_once else {}),
  )
  x = jnp.asarray(rng.standard_normal((rows, t, 32)), jnp.float32)
  if jaxpr:
    return jax.make_jaxpr(lambda x: layer(x, jnp.asarray(positions), None, pages=pages))(x)
  out, new_pool, _ = layer(x, jnp.asarray(positions), None, pages=pages)
  return np.asarray(out.astype(jnp.float32)), new_pool


def _dot_operand_dtypes(jaxpr) -> set[str]:
  """The operand dtypes of every product in `jaxpr`, its inner jaxprs' (jit, Pallas
  kernels, custom rules) included."""
  found = set()
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'dot_general':
      found.update(str(v.aval.dtype) for v in eqn.invars)
    for param in eqn.params.values():
      for inner in param if isinstance(param, (tuple, list)) else (param,):
        inner = getattr(inner, 'jaxpr', inner)
        if hasattr(inner, 'eqns'):
          found |= _dot_operand_dtypes(inner)
  return found


# Every family and head layout by default (MQA, MHA, GQA, head_dim 128 with its own
# query scale, query-key norms); the other presets' layouts repeat these (slow).
PRESET_NAMES = ['gemma-2b', 'gemma-7b', 'gemma2-2b', 'gemma2-27b', 'gemma3-1b'] + [
    pytest.param(name, marks=pytest.mark.slow)
    for name in ['gemma2-9b', 'gemma3-270m', 'gemma3-4b', 'gemma3-12b', 'gemma3-27b']
]


@pytest.mark.parametrize('preset', PRESET_NAMES)
def test_the_gpu_paged_kernel_in_interpret_mode_matches_the_xla_path(preset):
  """JAX's GPU paged attention kernel (Pallas interpret mode) on one-token calls:
  every preset's query and key/value head layout (MQA, GQA, MHA), soft-capping
  where the family has it. Local layers take the XLA path (the kernel has no window)."""
  expected, _ = _attention_over_pages(preset, 'global', 'heads', 'xla', 1)
  got, _ = _attention_over_pages(preset, 'global', 'heads', 'interpret', 1)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('preset', PRESET_NAMES)
@pytest.mark.parametrize('shared', [1, 2])
def test_the_gpu_kernel_reads_rows_past_a_prefix_read_once(preset, shared):
  """The cascade on GPU: every row continues a prefix of `shared` pages, which XLA
  reads once for all of them while the kernel reads each row's own pages (from the
  prefix's end), the two merged by their log-sum-exps: the attention of each row
  over its whole table, by the XLA path, without a cascade."""
  expected, _ = _attention_over_pages(preset, 'global', 'heads', 'xla', 1, shared=shared, read_once=False)
  got, _ = _attention_over_pages(preset, 'global', 'heads', 'interpret', 1, shared=shared)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('preset', ['gemma2-2b', 'gemma3-1b'])
def test_a_bfloat16_layer_over_a_prefix_read_once_takes_every_product_in_bfloat16(preset):
  """The GPU cascade of a bfloat16 model over a bfloat16 pool: the prefix's products (XLA's)
  take bfloat16 inputs, as the kernel's over each row's own pages and the XLA path's do
  (they were float32 products of widened keys, at a fraction of a GPU's bfloat16 rate); its
  output is the XLA path's within a bfloat16 output's rounding (an ulp is 4e-3 at 0.5-1)."""
  call = functools.partial(_attention_over_pages, preset, 'global', 'heads', dtype=jnp.bfloat16, shared=2)
  assert _dot_operand_dtypes(call('interpret', 1, jaxpr=True).jaxpr) == {'bfloat16'}
  assert _dot_operand_dtypes(call('xla', 1, jaxpr=True, read_once=False).jaxpr) == {'bfloat16'}
  got, _ = call('interpret', 1)
  expected, _ = call('xla', 1, read_once=False)
  np.testing.assert_allclose(got, expected, rtol=1e-2, atol=5e-3)


def test_the_gpu_kernel_with_its_log_sum_exp_matches_a_softmax():
  """The kernel's partial sums merged across its splits: the normalised output and the
  log-sum-exp of each query's (soft-capped) scores over its row's first `length`
  positions; no key at all gives minus infinity and zeros."""
  rng = np.random.default_rng(0)
  b, n, k, h, page = 3, 8, 2, 16, 4
  q = jnp.asarray(rng.standard_normal((b, n, h)), jnp.float32)
  keys, values = (jnp.asarray(rng.standard_normal((k, 20, page, h)), jnp.float32) for _ in range(2))
  table = jnp.asarray(1 + rng.permutation(19)[:16].reshape(b + 1, 4)[:b], jnp.int32)
  lengths = jnp.asarray([13, 4, 0], jnp.int32)
  # Page 0 (unnamed by the table) pads it where blocks overrun it: large but finite, masked.
  keys, values = keys.at[:, 0].set(1e4), values.at[:, 0].set(1e4)
  cases = [(None, None), (5.0, None), (None, (1, 4, 4)), (5.0, (2, 2, 1)), (None, (3, 2, 2)), (None, (2, 3, 3))]
  for cap, blocks in cases:
    out, lse = paged._gpu_kernel_with_lse(
        q, keys, values, table, lengths, softcap=cap, interpret=True, null_page=0, blocks=blocks)
    gather = lambda x: jnp.take(x, table, axis=1).reshape(k, b, -1, h)
    scores = jnp.einsum('BKGH,KBSH->BKGS', q.reshape(b, k, n // k, h), gather(keys))
    if cap:
      scores = jnp.tanh(scores / cap) * cap
    scores = jnp.where(jnp.arange(scores.shape[-1]) < lengths[:, None, None, None], scores, -jnp.inf)
    expected_lse = jax.nn.logsumexp(scores[:2], axis=-1).reshape(2, n)
    expected = jnp.einsum('BKGS,KBSH->BKGH', jax.nn.softmax(scores[:2], axis=-1), gather(values)[:, :2])
    np.testing.assert_allclose(out[:2], expected.reshape(2, n, h), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lse[:2], expected_lse, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(lse[2]) == -np.inf) and not np.asarray(out[2]).any()


def test_gpu_blocks_walk_the_table_in_blocks_of_16k_key_elements_split_as_the_grid_needs():
  """(splits, pages per split, pages per compute block): compute blocks of 16,384 key
  elements (fewer where the table is shorter), splits only while the grid has fewer
  than 1,024 programs, and every column of the table walked."""
  assert paged.gpu_blocks(256, 8, 4, 24, 16, 256) == (1, 24, 4)  # Gemma2-2B at 256 slots
  assert paged.gpu_blocks(64, 8, 4, 24, 16, 256) == (4, 8, 4)
  assert paged.gpu_blocks(64, 8, 1, 24, 16, 128) == (3, 8, 8)  # MQA: one program a row
  assert paged.gpu_blocks(256, 8, 1, 24, 16, 128) == (3, 8, 8)
  assert paged.gpu_blocks(256, 32, 1, 24, 16, 128) == (2, 16, 8)  # 32 query heads: two blocks of 16
  assert paged.gpu_blocks(8, 1, 1, 3, 16, 256) == (1, 3, 3)
  assert paged.gpu_blocks(8, 1, 1, 0, 16, 256) == (1, 1, 1)
  for rows, heads, kv_heads, pages, page, h in [
      (1, 1, 1, 37, 16, 256), (300, 8, 8, 5, 32, 128), (2, 2, 2, 100, 4, 64)]:
    splits, per_split, per_block = paged.gpu_blocks(rows, heads, kv_heads, pages, page, h)
    assert splits * per_split >= pages and per_split % per_block == 0
    assert per_block * page * h <= 16384 or per_block == 1
    assert splits * per_split - pages < splits * per_block


def test_the_gpu_kernel_reads_local_layers_whose_window_cannot_bind():
  """A window as long as a row's table (Gemma 2's 4096 against shorter rows) masks
  nothing, so the kernel serves those local layers too."""
  expected, _ = _attention_over_pages('gemma2-2b', 'local', 'heads', 'xla', 1, window=32)
  got, _ = _attention_over_pages('gemma2-2b', 'local', 'heads', 'interpret', 1, window=32)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('preset', PRESET_NAMES)
@pytest.mark.parametrize('kind, t, real', [('global', 1, (1, 0, 1)), ('local', 3, (3, 1, 2))])
def test_what_the_tpu_ragged_kernel_is_handed_matches_the_xla_path(preset, kind, t, real):
  """The TPU ragged paged attention kernel's inputs (interleaved key/value heads,
  packed real tokens, kv lengths, query offsets, tables, window, soft cap), run by
  JAX's reference implementation of that kernel: decode with an idle row and
  right-padded 3-token prefill chunks, sliding windows on local layers, every
  preset's head layout."""
  expected, pool = _attention_over_pages(preset, kind, 'tokens', 'xla', t, real=real)
  got, same_pool = _attention_over_pages(preset, kind, 'tokens', 'reference', t, real=real)
  mask = np.arange(t)[None] < np.array(real)[:, None]
  np.testing.assert_allclose(got[mask], expected[mask], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(pool[0]), np.asarray(same_pool[0]))


def test_the_tpu_ragged_kernel_runs_where_the_interpreter_can():
  """The kernel itself in Pallas's TPU interpret mode, where this JAX's interpreter
  supports it; it cannot yet reshape a kernel's buffers, which this kernel does."""
  expected, _ = _attention_over_pages('gemma2-2b', 'local', 'tokens', 'xla', 1)
  try:
    got, _ = _attention_over_pages('gemma2-2b', 'local', 'tokens', 'interpret', 1)
  except Exception as error:  # pylint: disable=broad-except
    if 'ReshapeTransform' in str(error):
      pytest.skip("this JAX's TPU interpreter cannot reshape a kernel buffer")
    raise
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_page_tables_share_whole_pages_copy_the_parting_one_and_give_back_by_count():
  tables = PageTables({'global': 12, 'local': 12}, page_size=4, width=8,
                      windows={'global': None, 'local': 6})
  prefix = tables.new()
  tables.grow(prefix, 10)  # positions 0..9: pages for 0-3, 4-7, 8-9
  assert [len(prefix[k]) for k in ('global', 'local')] == [3, 3]
  child, copies = tables.fork(prefix, 10)
  # Global: the two whole pages shared, the third copied. Local (window 6): a query at 10
  # sees positions 5.. on, so page 0 (0-3) is not named at all.
  assert child['global'][:2] == prefix['global'][:2] and child['local'][0] == paged.NULL_PAGE
  assert child['local'][1] == prefix['local'][1]
  assert sorted(copies) == sorted([('global', prefix['global'][2], child['global'][2]),
                                   ('local', prefix['local'][2], child['local'][2])])
  assert tables.in_use('global') == 4
  tables.free(prefix)
  assert tables.in_use('global') == 3 and tables.in_use('local') == 2  # the child keeps its own
  tables.grow(child, 21)
  tables.trim(child, 21)  # a query at 21 sees 16.. on: local pages 0-3 go back
  assert child['local'][:4] == [paged.NULL_PAGE] * 4 and tables.in_use('local') == 2
  tables.free(child)
  assert tables.in_use('global') == tables.in_use('local') == 0
  with pytest.raises(PagesExhaustedError, match='a table holds 8'):
    tables.grow(tables.new(), 40)
  hog = tables.new()
  with pytest.raises(PagesExhaustedError, match='global page pool'):
    for end in range(4, 400, 4):
      tables.grow(hog, min(end, 32))
      tables.grow(tables.new(), 32)


def test_a_kernel_gets_the_prefix_apart_only_when_every_active_row_continues_it():
  """A view's kinds a kernel reads (`whole`): whole tables, and with `whole_cascade`
  (GPU's kernel) the prefix's pages too, counted once, its rows' pages past them, but
  only if every active row continues it (the kernel cannot mask a row's prefix
  columns); an idle row does not count. Other kinds read the prefix once regardless."""
  tables = PageTables({'global': 32, 'local': 32}, page_size=4, width=8,
                      windows={'global': None, 'local': 6})
  prefix = tables.new()
  tables.grow(prefix, 10)
  rows = [tables.fork(prefix, 10)[0] for _ in range(2)] + [tables.new()]
  for row in rows:
    tables.grow(row, 14)
  whole = frozenset({'global'})
  reach = [(13, 14), (13, 14), (13, 14)]

  def view(prefixed, reach=reach, cascade=True):
    return tables.view(rows, reach, prefixed, unit=1, whole=whole, prefix=prefix, prefix_pages=2,
                       whole_cascade=cascade)

  got, read = view([True, True, False])
  assert set(got['prefix']) == {'local'} and got['tables']['global'].shape == (3, 8)
  assert read['global'] == 4 + 4 + 4  # every page the tables name, the prefix's per row
  got, read = view([True, True, False], reach=reach[:2] + [None])  # the third row idle
  assert set(got['prefix']) == {'local', 'global'}
  np.testing.assert_array_equal(got['prefix']['global'], prefix['global'][:2])
  assert read['global'] == 3 * 2 + 2  # each table past the prefix's columns, the prefix once
  got, _ = view([True, True, False], reach=reach[:2] + [None], cascade=False)
  assert set(got['prefix']) == {'local'}


@pytest.mark.parametrize('window', [None, 6])
def test_the_worst_case_bound_holds_for_rows_that_fork_grow_and_trim(window):
  """Random runs of rows forked from a prefix, growing a chunk ahead and trimming
  behind: the pages held never exceed `worst_case_pages`."""
  rng = np.random.default_rng(0)
  page, chunk, rows, prefix_len, max_len = 4, 5, 3, 10, 48
  bound = worst_case_pages(page_size=page, row_len=max_len - prefix_len, prefix_len=prefix_len,
                           sequences=rows, window=window, chunk=chunk)
  tables = PageTables({'k': 1000}, page_size=page, width=12, windows={'k': window})
  prefix = tables.new()
  tables.grow(prefix, prefix_len)
  tables.trim(prefix, prefix_len)
  live, peak = [], 0
  for _ in range(200):
    if len(live) < rows:
      seq, _ = tables.fork(prefix, prefix_len)
      live.append([seq, prefix_len])
    for item in live:
      seq, position = item
      tables.trim(seq, position)
      tables.grow(seq, min(position + chunk, max_len))
      item[1] = min(position + chunk, max_len)
    peak = max(peak, 1 + tables.in_use('k'))
    for item in list(live):
      if item[1] >= max_len or rng.random() < 0.1:
        tables.free(item[0])
        live.remove(item)
  assert peak <= bound, (peak, bound)


@pytest.mark.skipif(jax.default_backend() not in ('gpu', 'tpu'), reason='runs the kernels on a GPU or TPU')
@pytest.mark.parametrize('preset', ['gemma-2b', 'gemma-7b', 'gemma2-2b', 'gemma3-1b'])
@pytest.mark.parametrize('kind, t, real', [('global', 1, (1, 0, 1)), ('local', 1, (1, 1, 1)),
                                           ('local', 3, (3, 1, 2))])
def test_the_backends_kernel_matches_the_xla_path_on_the_device(preset, kind, t, real):
  """On a GPU or TPU: JAX's compiled kernel for the backend (where one serves the call)
  against the XLA path, within the backend's default matmul precision."""
  layout = paged.layout_for(jax.default_backend())
  expected, _ = _attention_over_pages(preset, kind, layout, 'xla', t, real=real, window=16)
  got, _ = _attention_over_pages(preset, kind, layout, 'pallas', t, real=real, window=16)
  mask = np.arange(t)[None] < np.array(real)[:, None]
  np.testing.assert_allclose(got[mask], expected[mask], rtol=2e-2, atol=2e-2)
