"""Our forward pass against transformers (float32) on tiny random Gemma 1/2/3."""

import numpy as np
import pytest
import torch
import jax.numpy as jnp

from conftest import RAGGED_LENGTHS, ragged_batch
from wcse_jax.checkpoints import load_model
from wcse_jax.model import init_cache



@pytest.mark.parametrize('version', [1, 2, 3])
def test_logits_match_transformers(tiny_hf, version):
  directory, reference = tiny_hf[version]
  loaded = load_model(str(directory), dtype=jnp.float32, with_tokenizer=False)
  tokens, mask, positions = ragged_batch()
  with torch.no_grad():
    expected = reference(
        input_ids=torch.tensor(tokens).long(), attention_mask=torch.tensor(mask).long()
    ).logits.numpy()
  logits, _ = loaded.model(jnp.asarray(tokens), jnp.asarray(positions), input_mask=jnp.asarray(mask))
  diff = np.abs(np.asarray(logits) - expected)[mask]
  assert np.abs(expected[mask]).max() > 1.0  # logits large enough to mean something
  assert diff.max() < 1e-4, diff.max()


@pytest.mark.parametrize('version', [2, 3])
def test_cached_decoding_matches_full_forward(tiny_hf, version):
  """Prefill in ragged chunks, then one token at a time, far past the window."""
  directory, _ = tiny_hf[version]
  model = load_model(str(directory), dtype=jnp.float32, with_tokenizer=False).model
  tokens, mask, positions = ragged_batch(seed=1)
  full, _ = model(jnp.asarray(tokens), jnp.asarray(positions), input_mask=jnp.asarray(mask))

  cache = init_cache(model.config, len(RAGGED_LENGTHS), max_len=32)
  pieces = []
  # A first chunk of 9 (longer than the window) with padding, then single steps.
  first = np.minimum(np.array(RAGGED_LENGTHS), 9)
  chunk_mask = np.arange(9)[None] < first[:, None]
  logits, cache = model(
      jnp.asarray(tokens[:, :9]), jnp.asarray(positions[:, :9]),
      input_mask=jnp.asarray(chunk_mask), cache=cache,
  )
  pieces.append(np.asarray(logits))
  for t in range(9, max(RAGGED_LENGTHS)):
    logits, cache = model(
        jnp.asarray(tokens[:, t:t + 1]), jnp.asarray(positions[:, t:t + 1]),
        input_mask=jnp.asarray(mask[:, t:t + 1]), cache=cache,
    )
    pieces.append(np.asarray(logits))
  cached = np.concatenate(pieces, axis=1)
  assert np.abs(cached - np.asarray(full))[mask].max() < 1e-4


@pytest.mark.parametrize('version', [2, 3])
@pytest.mark.parametrize('layers', ['scanned', 'one_by_one'])
@pytest.mark.parametrize('spans', [False, True, 'slot_rows'])
def test_rows_reading_a_shared_prefix_match_their_whole_sequences(tiny_hf, version, layers, spans):
  """A one-row prefix cache read by every row marked `prefixed` (never copied into
  it), rows holding only their own tokens: the logits of each row's whole sequence.
  Row 2 is not prefixed and holds its whole sequence itself. The prefix (10) and
  the rows outgrow the window (6), and the rows' own caches wrap.

  With `spans`, the sampler's layout: the rows' slots in spans of 4 (the window's
  ring is spans of 4 and 2), each call reading only the spans its rows reach
  (`cache_view`), and the prefix's keys and values transposed; with 'slot_rows', the
  rows' keys stored as slot rows too (the sampler's layout where our CPU kernel runs)."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from wcse_jax.model import unstack_layers  # pylint: disable=g-import-not-at-top

  loaded = load_model(str(tiny_hf[version][0]), dtype=jnp.float32, with_tokenizer=False)
  config, graphdef, params = loaded.config, loaded.graphdef, loaded.params
  if layers == 'one_by_one':
    config, graphdef, params = unstack_layers(config, graphdef, params)
    assert config.num_repeats == 0 and config.num_tail_layers == config.num_layers
  model = nnx.merge(graphdef, params)
  rng = np.random.default_rng(3)
  prefix = rng.integers(4, 300, 10)
  own = [rng.integers(4, 300, n) for n in (9, 5)]
  whole = rng.integers(4, 300, 14)  # row 2: not after the prefix
  sequences = [np.concatenate([prefix, own[0]]), np.concatenate([prefix, own[1]]), whole]
  expected = [np.asarray(model(jnp.asarray(q[None]), jnp.arange(len(q))[None])[0][0]) for q in sequences]

  layout = dict(span=4, slot_rows=spans == 'slot_rows') if spans else {}
  view = lambda reach: -(-reach // 4) * 4 if spans else None  # the spans below `reach`
  shared = init_cache(config, 1, max_len=16, transposed=spans)
  _, shared = model(jnp.asarray(prefix[None]), jnp.arange(10)[None], cache=shared)
  cache = init_cache(config, 3, max_len=16, **layout)
  cache = cache.replace(prefixed=jnp.array([True, True, False]))
  starts = np.array([10, 10, 0])
  lengths = np.array([9, 5, 14])
  # A first chunk of 4 tokens per row, then one token at a time (ragged ends).
  got = [[], [], []]
  chunk = np.zeros((3, 4), np.int32)
  for r, q in enumerate([own[0], own[1], whole]):
    chunk[r] = q[:4]
  logits, cache = model(
      jnp.asarray(chunk), jnp.asarray(starts[:, None] + np.arange(4)), cache=cache, shared=shared,
      cache_view=view(4),
  )
  # Every row's tokens fill its slots from slot 0, after the prefix or not.
  assert np.asarray(cache.positions['global'])[:, :4].tolist() == [
      list(range(10, 14)), list(range(10, 14)), list(range(4))
  ]
  for r in range(3):
    got[r].extend(np.asarray(logits[r]))
  for t in range(4, max(lengths)):
    step = np.array([q[t] if t < len(q) else 0 for q in (own[0], own[1], whole)], np.int32)
    live = t < lengths
    args = (jnp.asarray(step[:, None]), jnp.asarray((starts + t)[:, None]))
    kwargs = dict(input_mask=jnp.asarray(live[:, None]), cache=cache, shared=shared)
    logits, cache = model(*args, **kwargs, cache_view=view(t + 1))
    if spans:  # the same numbers as reading every span: a row's do not depend on the view
      np.testing.assert_array_equal(np.asarray(model(*args, **kwargs)[0]), np.asarray(logits))
    for r in np.flatnonzero(live):
      got[r].append(np.asarray(logits[r, 0]))
  for r in range(3):
    tail = expected[r][starts[r]:]
    assert np.abs(np.stack(got[r]) - tail).max() < 1e-4, r


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_an_embedding_table_with_its_bits_computes_the_same_logits(tiny_hf, dtype):
  """`with_embedding_bits` (the sampler's layout on CPU): a bfloat16 table's rows are
  gathered from its bits, the same numbers; a float32 table has none. The logits
  are equal bit for bit, and the vocabulary-major ones (the decode loop's on CPU)
  are their transpose, to float32 rounding of another summation order."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from wcse_jax.model import with_embedding_bits  # pylint: disable=g-import-not-at-top

  loaded = load_model(str(tiny_hf[3][0]), dtype=dtype, param_dtype=dtype, with_tokenizer=False)
  config, graphdef, params = with_embedding_bits(loaded.config, loaded.graphdef, loaded.params)
  tables = {'input_embedding'} | ({'embedding_bits'} if dtype == jnp.bfloat16 else set())
  assert config.embedding_bits and nnx.to_pure_dict(params)['embedder'].keys() == tables
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 300, (2, 7)))
  positions = jnp.broadcast_to(jnp.arange(7), (2, 7))
  before = nnx.merge(loaded.graphdef, loaded.params)(tokens, positions)[0]
  model = nnx.merge(graphdef, params)
  after = model(tokens, positions)[0]
  np.testing.assert_array_equal(np.asarray(after), np.asarray(before))
  hidden = model(tokens, positions, return_hidden=True)[0][:, -1]
  by_vocab = model.logits(hidden, vocab_major=True)
  assert by_vocab.shape == (config.vocab_size, 2)
  np.testing.assert_allclose(np.asarray(by_vocab.T), np.asarray(before[:, -1]), rtol=1e-6, atol=1e-5)


@pytest.fixture
def our_kernels(monkeypatch):
  """Our CPU kernels chosen for this test only (skipped where they cannot run)."""
  from wcse_jax.model import cpu_kernels  # pylint: disable=g-import-not-at-top

  if not cpu_kernels.available():
    pytest.skip('no AVX512-BF16 CPU or no C++ compiler')
  monkeypatch.setenv(cpu_kernels.ENV, '1')
  cpu_kernels.chosen.cache_clear()
  yield cpu_kernels
  cpu_kernels.chosen.cache_clear()


@pytest.mark.parametrize('version', [2, 3])
def test_packed_weights_compute_the_same_logits(tiny_hf, version, our_kernels):
  """`with_packed_weights` (the sampler's layout for bfloat16 on one CPU): the same
  products by the same kernel, the weights packed once instead of on every call, so
  the logits are equal bit for bit; `sampling_layout` packs where the kernel is chosen
  and the model computes in bfloat16, and only there."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from wcse_jax.model import unstack_layers, with_packed_weights  # pylint: disable=g-import-not-at-top
  from wcse_jax.sampling import sampling_layout  # pylint: disable=g-import-not-at-top

  loaded = load_model(str(tiny_hf[version][0]), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, with_tokenizer=False)
  config, graphdef, params = unstack_layers(loaded.config, loaded.graphdef, loaded.params)
  with pytest.raises(ValueError, match='unstack the layers first'):
    with_packed_weights(loaded.config, loaded.graphdef, loaded.params)
  packed = with_packed_weights(config, graphdef, params)
  assert packed[0].packed_weights and not config.packed_weights
  d, f = config.embed_dim, config.hidden_dim
  layer = nnx.to_pure_dict(packed[2])['tail'][0]
  assert layer['mlp']['down_proj'].shape == (f * d,) and layer['attn']['q_proj'].ndim == 1
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 300, (2, 9)))
  positions = jnp.broadcast_to(jnp.arange(9), (2, 9))
  before = nnx.merge(graphdef, params)(tokens, positions)[0]
  after = nnx.merge(packed[1], packed[2])(tokens, positions)[0]
  np.testing.assert_array_equal(np.asarray(after), np.asarray(before))

  assert sampling_layout(loaded).config.packed_weights
  as_float32 = load_model(str(tiny_hf[version][0]), dtype=jnp.float32, with_tokenizer=False)
  assert not sampling_layout(as_float32).config.packed_weights


@pytest.mark.parametrize('version', [2, 3])
def test_fused_projections_compute_the_same_logits(tiny_hf, version):
  """`with_fused_projections` (the sampler's layout on GPU): q, k and v's weights one
  matrix, gate and up another, in stacked and unstacked layers, the same columns: the
  logits of XLA's products agree with the separate weights' within float32 rounding,
  in a prefill and a decode step over a cache; a fused model is fused once."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from wcse_jax.model import init_cache, unstack_layers, with_fused_projections  # pylint: disable=g-import-not-at-top

  loaded = load_model(str(tiny_hf[version][0]), dtype=jnp.float32, with_tokenizer=False)
  c = loaded.config
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 300, (2, 9)))
  positions = jnp.broadcast_to(jnp.arange(9), (2, 9))

  def run(config, graphdef, params):
    model = nnx.merge(graphdef, params)
    logits, cache = model(tokens[:, :8], positions[:, :8], cache=init_cache(config, 2, 16))
    step, _ = model(tokens[:, 8:], positions[:, 8:], cache=cache)
    return np.asarray(logits), np.asarray(step)

  before = run(c, loaded.graphdef, loaded.params)
  for layout in (lambda *m: m, unstack_layers):
    config, graphdef, params = with_fused_projections(*layout(c, loaded.graphdef, loaded.params))
    assert config.fused_projections and not c.fused_projections
    layer = nnx.to_pure_dict(params)['blocks' if config.scan_layers else 'tail'][0]
    assert 'q_proj' not in layer['attn'] and 'gate_proj' not in layer['mlp']
    assert layer['attn']['qkv_proj'].shape[-2:] == (c.embed_dim, (c.num_heads + 2 * c.num_kv_heads) * c.head_dim)
    assert layer['mlp']['gate_up_proj'].shape[-2:] == (c.embed_dim, 2 * c.hidden_dim)
    for got, want in zip(run(config, graphdef, params), before):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert with_fused_projections(config, graphdef, params)[0] is config


@pytest.mark.parametrize('version', [2, 3])
def test_fused_packed_weights_compute_the_same_logits(tiny_hf, version, our_kernels):
  """Fused and then packed (the sampler's layout for bfloat16 on one CPU): each part
  packed on its own and all of them computed in one call (`packed_product_parts`), the
  same sums as the separate packed weights: the same logits bit for bit."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from wcse_jax.model import unstack_layers, with_fused_projections, with_packed_weights  # pylint: disable=g-import-not-at-top
  from wcse_jax.sampling import sampling_layout  # pylint: disable=g-import-not-at-top

  loaded = load_model(str(tiny_hf[version][0]), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, with_tokenizer=False)
  model = unstack_layers(loaded.config, loaded.graphdef, loaded.params)
  packed = with_packed_weights(*model)
  fused = with_packed_weights(*with_fused_projections(*model))
  assert fused[0].fused_projections and fused[0].packed_weights
  with pytest.raises(ValueError, match='before packing'):
    with_fused_projections(*packed)
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 300, (2, 9)))
  positions = jnp.broadcast_to(jnp.arange(9), (2, 9))
  before = nnx.merge(packed[1], packed[2])(tokens, positions)[0]
  after = nnx.merge(fused[1], fused[2])(tokens, positions)[0]
  np.testing.assert_array_equal(np.asarray(after), np.asarray(before))
  assert sampling_layout(loaded).config.fused_projections
  assert not sampling_layout(loaded, fuse=False).config.fused_projections


@pytest.mark.parametrize('kernels', ['xla', 'ours'])
def test_a_bfloat16_cache_held_as_bits_computes_the_same_logits(tiny_hf, kernels, request, monkeypatch):
  """`init_cache(bits=True)` (the sampler's rows' caches on CPU): a bfloat16 cache held
  as its bit patterns, written in place and read by our kernel as they are, or
  bitcast for XLA's products: the same logits, bit for bit, as a bfloat16 cache, in
  a prefill and the steps after it, with keys as slot rows or transposed."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from wcse_jax.model import unstack_layers  # pylint: disable=g-import-not-at-top

  from wcse_jax.model import cpu_kernels  # pylint: disable=g-import-not-at-top

  if kernels == 'ours':
    request.getfixturevalue('our_kernels')
  else:
    monkeypatch.setenv(cpu_kernels.ENV, '0')
    forget = lambda: [f.cache_clear() for f in (cpu_kernels._library, cpu_kernels.isa, cpu_kernels.chosen)]
    forget()
    request.addfinalizer(forget)
  loaded = load_model(str(tiny_hf[3][0]), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, with_tokenizer=False)
  config, graphdef, params = unstack_layers(loaded.config, loaded.graphdef, loaded.params)
  model = nnx.merge(graphdef, params)
  rng = np.random.default_rng(1)
  tokens = rng.integers(4, 300, (2, 12))
  for slot_rows in (False, True):
    outs = []
    for bits in (False, True):
      cache = init_cache(config, 2, max_len=16, dtype=jnp.bfloat16, span=4, slot_rows=slot_rows, bits=bits)
      leaf = cache.tail[0].keys[0]
      assert leaf.dtype == (jnp.uint16 if bits else jnp.bfloat16) and cache.tail[0].dtype == jnp.bfloat16
      logits, cache = model(jnp.asarray(tokens[:, :8]), jnp.arange(8)[None].repeat(2, 0), cache=cache)
      got = [np.asarray(logits)]
      for t in range(8, 12):
        logits, cache = model(jnp.asarray(tokens[:, t:t + 1]), jnp.full((2, 1), t), cache=cache)
        got.append(np.asarray(logits))
      outs.append(got)
    for a, b in zip(*outs):
      np.testing.assert_array_equal(a, b)


def test_packed_rows_equal_separate_rows(tiny_hf):
  """Two sequences packed in one row with segment ids and per-segment positions."""
  from wcse_jax.model import segment_mask  # pylint: disable=g-import-not-at-top

  model = load_model(str(tiny_hf[3][0]), dtype=jnp.float32, with_tokenizer=False).model
  tokens, _, _ = ragged_batch(seed=2)
  first, second = tokens[0, :11], tokens[1, :8]
  packed = np.concatenate([first, second, [0]])[None].astype(np.int32)
  segments = np.array([[1] * 11 + [2] * 8 + [0]])
  positions = np.array([list(range(11)) + list(range(8)) + [0]])
  logits, _ = model(
      jnp.asarray(packed), jnp.asarray(positions),
      attention_mask=segment_mask(jnp.asarray(positions), jnp.asarray(segments)),
  )
  for seq, span in ((first, slice(0, 11)), (second, slice(11, 19))):
    alone, _ = model(jnp.asarray(seq[None]), jnp.arange(len(seq))[None])
    assert np.abs(np.asarray(logits[0, span]) - np.asarray(alone[0])).max() < 1e-4


def test_rematerialised_gradients_equal_plain_ones(tiny_hf):
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top

  loaded = load_model(str(tiny_hf[2][0]), dtype=jnp.float32, with_tokenizer=False)
  tokens, mask, positions = ragged_batch(seed=3)

  def loss(params, remat):
    logits, _ = nnx.merge(loaded.graphdef, params)(
        jnp.asarray(tokens), jnp.asarray(positions), input_mask=jnp.asarray(mask), remat=remat
    )
    return jnp.mean(jax.nn.log_softmax(logits)[..., 0])

  plain = jax.grad(loss)(loaded.params, False)
  remat = jax.grad(loss)(loaded.params, True)
  # The recomputed forward is fused apart from the plain one, so sums may round
  # differently: a few float32 ulps of each gradient's largest entry, no more.
  scaled = lambda a, b: jnp.abs(a - b).max() / jnp.abs(a).max()
  worst = max(jax.tree.leaves(jax.tree.map(scaled, plain, remat)))
  assert worst < 1e-6


def test_bfloat16_stays_close_to_float32(tiny_hf):
  directory, _ = tiny_hf[3]
  tokens, mask, positions = ragged_batch(seed=4)
  args = (jnp.asarray(tokens), jnp.asarray(positions))
  out = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    model = load_model(str(directory), dtype=dtype, with_tokenizer=False).model
    out[dtype] = np.asarray(model(*args, input_mask=jnp.asarray(mask))[0])
  scale = np.abs(out[jnp.float32][mask]).max()
  assert np.abs(out[jnp.bfloat16] - out[jnp.float32])[mask].max() < 0.05 * scale
