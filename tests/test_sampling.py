"""The sampler on a tiny random Gemma 3 (sliding window 8): cache, fan-out, batching, devices."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sampling_helpers as helpers  # tests/ is on sys.path under pytest
from wcse_jax.model import init_cache
from wcse_jax.sampling import PromptTooLongError, SamplingParams, Sampler, sampling_layout


@pytest.fixture(scope='module')
def model():
  return helpers.tiny_model()


@pytest.fixture(scope='module')
def sampler(model):
  return Sampler(model, max_len=128, num_slots=4, prefill_rows=2, chunk_steps=5)


@pytest.fixture(scope='module')
def outputs(sampler):
  return helpers.run(sampler)


def same(a, b):
  """Completions agree: tokens, text and ending exactly, log-probabilities to float error."""
  assert a.keys() == b.keys()
  for key in a:
    x, y = a[key], b[key]
    assert (x.token_ids, x.text, x.finish_reason) == (y.token_ids, y.text, y.finish_reason), key
    assert x.logprob == pytest.approx(y.logprob, rel=1e-4, abs=1e-4), key


def recompute_logprobs(model, sequences, length=128):
  """log_softmax of the model's logits for every next token, without any cache.

  Sequences are right-padded to one length: padding after a token does not
  change what it sees.
  """
  tokens = np.zeros((len(sequences), length), np.int32)
  for row, ids in zip(tokens, sequences):
    row[: len(ids)] = ids
  positions = jnp.broadcast_to(jnp.arange(length), tokens.shape)
  logits, _ = jax.jit(lambda t: model.model(t, positions))(tokens)
  return np.asarray(jax.nn.log_softmax(logits))


@pytest.mark.parametrize('params', [
    SamplingParams(temperature=1.0, max_new_tokens=24),
    SamplingParams(temperature=0, max_new_tokens=24),
], ids=['sampled', 'greedy'])
def test_decoding_far_past_the_sliding_window_matches_a_full_recompute(model, sampler, params):
  outputs = helpers.run(sampler, num_samples=2, params=params)
  prompts = [model.tokenizer.encode(helpers.PREFIX + helpers.QUESTIONS[j]) for j, _ in outputs]
  recomputed = recompute_logprobs(model, [p + list(c.token_ids) for p, c in zip(prompts, outputs.values())])
  for prompt, logprobs, c in zip(prompts, recomputed, outputs.values()):
    assert len(prompt) == c.prompt_tokens
    steps = np.arange(len(prompt) - 1, len(prompt) - 1 + c.num_tokens)
    assert c.logprob == pytest.approx(logprobs[steps, c.token_ids].sum(), rel=1e-4)
    if params.temperature == 0:
      np.testing.assert_array_equal(logprobs[steps].argmax(-1), c.token_ids)
  # Prompts of 39 to 101 tokens: the window's ring has wrapped many times.
  assert min(c.prompt_tokens + c.num_tokens for c in outputs.values()) > 5 * model.config.sliding_window


def test_shared_prefix_fan_out_and_refills_give_the_plain_paths_outputs(model, outputs):
  # Plain: every sample's whole prompt prefilled from scratch, other batch shapes.
  plain_sampler = Sampler(
      model, max_len=128, num_slots=3, prefill_rows=4, chunk_steps=7, share_prompts=False
  )
  plain = helpers.run(plain_sampler)
  same(outputs, plain)
  assert len(outputs) == len(helpers.QUESTIONS) * 3
  for c in outputs.values():
    assert (c.finish_reason == 'eos') == (c.token_ids[-1] == model.tokenizer.eos_token_id)
    assert c.finish_reason in ('eos', 'length')
  # Shared: the prefix once, each problem once (the one tokenized whole, in full).
  prefix_len = len(model.tokenizer.encode(helpers.PREFIX))
  own = [c.prompt_tokens - prefix_len for c in outputs.values() if c.sample == 0]
  own[2] += prefix_len
  fresh = helpers.run(Sampler(model, max_len=128, num_slots=4, prefill_rows=2, chunk_steps=5))
  assert sum(c.prompt_tokens_computed for c in fresh.values()) == prefix_len + sum(own)
  assert sum(c.prompt_tokens_computed for c in plain.values()) == sum(
      c.prompt_tokens for c in plain.values()
  )


def test_rows_hold_only_their_own_tokens_when_every_prompt_continues_the_prefix(model):
  questions = [q for j, q in enumerate(helpers.QUESTIONS) if j != 2]  # 2 is tokenized whole
  prefix = helpers.PREFIX * 5  # 141 tokens
  run = lambda sampler: {
      (c.problem, c.sample): c for c in sampler.sample(
          prefix, questions, num_samples=3, params=helpers.PARAMS, seed=5)
  }
  shared = Sampler(model, max_len=256, num_slots=4, prefill_rows=2, chunk_steps=5)
  outputs = run(shared)
  assert len(model.tokenizer.encode(prefix)) == 141
  assert shared.cache_shape == (128, 256)  # rows: 256 - 141 positions, in steps of 128
  nbytes = lambda rows, length: sum(x.nbytes for x in jax.tree.leaves(init_cache(model.config, rows, length)))
  # A step reads the prefix once and, of each row, the spans of 64 slots its chunk reaches:
  # one, then both.
  assert nbytes(1, 256) < shared.last_stats.kv_bytes_per_step < nbytes(4, 128) + nbytes(1, 256) < nbytes(4, 256)
  plain = Sampler(model, max_len=256, num_slots=3, prefill_rows=3, chunk_steps=7, share_prompts=False)
  same(outputs, run(plain))
  assert plain.cache_shape == (256, 0)


def test_stop_strings_end_samples_where_their_text_first_holds_one(sampler, outputs):
  stop = outputs[1, 0].text[6:8]
  stopped = helpers.run(
      sampler, params=dataclasses.replace(helpers.PARAMS, stop_strings=('never', stop))
  )
  decode = sampler.tokenizer.decode
  num_stopped = 0
  for key, full in outputs.items():
    c = stopped[key]
    cut = full.text.find(stop)
    if cut < 0:  # all of it, log-probability bit for bit (its batch-mates differ); the prefix
      # may have been held from an earlier run, so computed prompt tokens are not compared
      assert dataclasses.replace(c, prompt_tokens_computed=0) == dataclasses.replace(full, prompt_tokens_computed=0)
      continue
    num_stopped += 1
    assert (c.finish_reason, c.text) == ('stop', full.text[:cut])
    assert c.token_ids == full.token_ids[: c.num_tokens]
    assert stop in decode(c.token_ids) and stop not in decode(c.token_ids[:-1])
  assert num_stopped >= 1


def test_skipped_samples_are_not_drawn_and_the_rest_do_not_change(sampler, outputs):
  skip = {key for key in outputs if (key[0] + key[1]) % 2}
  resumed = helpers.run(sampler, skip=skip)
  same(resumed, {k: v for k, v in outputs.items() if k not in skip})


def test_nothing_compiles_again_after_warm_up(sampler, outputs):
  del outputs  # warmed up with the standard workload
  jitted = sampler.compiled_functions()
  before = [f._cache_size() for f in jitted]
  params = dataclasses.replace(helpers.PARAMS, max_new_tokens=9)
  helpers.run(sampler, num_samples=5, params=params, seed=123)
  assert [f._cache_size() for f in jitted] == before


def test_on_gpu_the_layers_are_laid_out_one_by_one_and_nothing_else_changes(model, monkeypatch):
  """On GPU `sampling_layout` unstacks the layers (a layer sliced out of the scanned
  stack is a copy there) and leaves the embedding table and weights as they are but
  for q, k, v and gate, up, each group side by side in one matrix (`fuse`); on TPU
  the model is itself."""
  from wcse_jax.sampling import sampler as sampler_module  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(sampler_module, '_platform', lambda _: 'gpu')
  assert model.config.scan_layers and model.config.num_repeats > 0
  laid_out = sampling_layout(model, fuse=False)
  assert not laid_out.config.scan_layers and not laid_out.config.embedding_bits
  assert not laid_out.config.packed_weights and sampling_layout(laid_out, fuse=False) is laid_out
  fused = sampling_layout(model)
  assert fused.config.fused_projections and not fused.config.scan_layers and not fused.config.packed_weights
  assert sampling_layout(fused) is fused
  d = model.config.embed_dim
  for layer, joined in zip(nnx.to_pure_dict(laid_out.params)['tail'].values(),
                           nnx.to_pure_dict(fused.params)['tail'].values()):
    attn, mlp = layer['attn'], layer['mlp']
    np.testing.assert_array_equal(
        np.asarray(joined['attn']['qkv_proj']),
        np.concatenate([np.asarray(attn[name]).reshape(d, -1) for name in ('q_proj', 'k_proj', 'v_proj')], axis=1))
    np.testing.assert_array_equal(
        np.asarray(joined['mlp']['gate_up_proj']),
        np.concatenate([np.asarray(mlp['gate_proj']), np.asarray(mlp['up_proj'])], axis=1))
  stacked = nnx.to_pure_dict(model.params)['blocks']
  layers = nnx.to_pure_dict(laid_out.params)['tail']
  assert len(layers) == model.config.num_layers
  period = len(model.config.layer_pattern)
  for r in range(model.config.num_repeats):
    for j in range(period):
      for a, b in zip(jax.tree.leaves(stacked[j]), jax.tree.leaves(layers[r * period + j])):
        np.testing.assert_array_equal(np.asarray(a)[r], np.asarray(b))
  monkeypatch.setattr(sampler_module, '_platform', lambda _: 'tpu')
  assert sampling_layout(model) is model


def test_a_donated_model_is_laid_out_with_each_stack_deleted_as_it_is_sliced(model, outputs):
  """`sampling_layout(..., donate=True)` (what the entry points do with the model they
  load): the same arrays as without donating, the stacked layers' arrays deleted, and
  the same samples."""
  given = helpers.tiny_model()
  stacks = jax.tree.leaves(nnx.to_pure_dict(given.params)['blocks'])
  laid_out = sampling_layout(given, donate=True)
  assert stacks and all(x.is_deleted() for x in stacks)
  for a, b in zip(jax.tree.leaves(sampling_layout(model).params), jax.tree.leaves(laid_out.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  same(outputs, helpers.run(Sampler(laid_out, max_len=128, num_slots=4, prefill_rows=2, chunk_steps=5)))


def test_a_model_laid_out_once_is_sampled_as_it_is_without_a_copy(model, outputs):
  """`sampling_layout` (what the sampler does to its model on CPU) done once by the
  caller: the sampler holds the very same arrays, and draws the same samples."""
  laid_out = sampling_layout(model)
  assert not laid_out.config.scan_layers and laid_out.config.embedding_bits
  assert sampling_layout(laid_out) is laid_out
  s = Sampler(laid_out, max_len=128, num_slots=4, prefill_rows=2, chunk_steps=5)
  held, given = jax.tree.leaves(s.model.params), jax.tree.leaves(laid_out.params)
  assert len(held) == len(given) and all(a is b for a, b in zip(held, given))
  same(outputs, helpers.run(s))


@pytest.mark.parametrize('span', [None, 4])
def test_rows_in_spans_sample_what_one_span_does(model, outputs, span):
  """The standard sampler reads spans of 64 slots (global rows of 128: views of
  64 and 128); one span of 128, or spans of 4 (the window's ring of 8 in two,
  views of 4 to 128 slots), draw the same samples."""
  s = Sampler(model, max_len=128, num_slots=4, prefill_rows=2, chunk_steps=5, span=span)
  same(outputs, helpers.run(s))


@pytest.mark.parametrize('kv_layout, shapes', [('dense', 6), ('paged', 4)])
def test_precompile_leaves_no_decode_shape_to_compile(model, caplog, kv_layout, shapes):
  """After `precompile`, a run whose samples reach several views of their rows
  compiles no decode chunk (the prefill functions compile on first use). Dense:
  views of 1, 2, 3, 4, 6 and 8 spans of 32 slots; paged: views of 64, 128, 192
  and 256 positions (pages of 16)."""
  s = Sampler(model, max_len=256, num_slots=4, prefill_rows=2, chunk_steps=5, span=32,
              kv_layout=kv_layout, page_size=16)
  params = dataclasses.replace(helpers.PARAMS, max_new_tokens=100)
  compiling = lambda: [r.getMessage() for r in caplog.records if 'Compiling jit(decode_chunk)' in r.getMessage()]
  with jax.log_compiles(True), caplog.at_level('WARNING'):
    s.precompile(helpers.PREFIX, helpers.QUESTIONS, params)
    assert len(compiling()) == shapes
    caplog.clear()
    out = helpers.run(s, num_samples=2, params=params)
    assert max(c.num_tokens for c in out.values()) > 64  # past the first views
    assert compiling() == []


def test_a_prompt_longer_than_the_context_is_one_clear_line(model):
  short = Sampler(model, max_len=64, num_slots=2, prefill_rows=2)
  with pytest.raises(PromptTooLongError) as error:
    short.sample(helpers.PREFIX, helpers.QUESTIONS, num_samples=1, params=helpers.PARAMS, seed=0)
  message = str(error.value)
  assert '\n' not in message and 'Problem 1 ' in message and 'max_len=64' in message


@pytest.mark.parametrize('layout', ['dense', 'paged'])
def test_outputs_are_identical_on_one_device_and_on_a_2x2_mesh_of_four(outputs, layout):
  """Against the dense cache on one device."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', JAX_PLATFORMS='cpu')
  script = pathlib.Path(__file__).parent / 'sampling_helpers.py'
  result = subprocess.run(
      [sys.executable, str(script), *(['paged'] if layout == 'paged' else [])],
      env=env, capture_output=True, text=True, check=True,
  )
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['devices'] == 4 and report['mesh'] == {'data': 2, 'model': 2}
  four = {(c['problem'], c['sample']): c for c in report['completions']}
  assert four.keys() == outputs.keys()
  for key, c in outputs.items():
    assert tuple(four[key]['token_ids']) == c.token_ids, key
    assert four[key]['text'] == c.text
    assert four[key]['logprob'] == pytest.approx(c.logprob, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize('layout, attention, page_size', [
    ('tokens', 'xla', 4), ('heads', 'xla', 16), ('heads', 'interpret', 4),
])
def test_the_paged_cache_samples_what_the_dense_one_does(model, outputs, layout, attention, page_size):
  """Same seeds, same samples: the prefix's pages shared by every problem, each
  problem's by its samples, local pages given back as the window (8) moves on
  (page size 4), or none given back (16); with the XLA path and with JAX's GPU
  paged attention kernel in interpret mode. Every page is free again at the end."""
  sampler = Sampler(
      model, max_len=128, num_slots=4, prefill_rows=2, chunk_steps=5, kv_layout='paged',
      page_size=page_size, page_layout=layout, attention=attention,
  )
  same(outputs, helpers.run(sampler))
  device = sampler._device  # pylint: disable=protected-access
  for kind in ('local', 'global'):  # the prefix's pages are kept for the next run
    assert device.tables.in_use(kind) == np.count_nonzero(device.prefix[kind])
  assert 0 < sampler.last_stats.kv_bytes_per_step


def test_local_layers_whose_window_binds_sample_alike_under_the_gpu_kernel():
  """A window of 64 positions (a view's unit of columns), rows past it: the local layers'
  tables are views from the window's start, which the XLA path reads; GPU's kernel
  (interpret mode) reads only whole tables. It used to read such a view too, as if from
  position 0 and past the prefix's columns: a third of the samples differed from dense."""
  model = helpers.tiny_model(config=helpers.TINY.replace(sliding_window=64))
  prefix = helpers.PREFIX * 3  # with a question, past the window

  def run(**kw):
    s = Sampler(model, max_len=256, num_slots=4, prefill_rows=2, **kw)
    return {(c.problem, c.sample): c for c in s.sample(
        prefix, helpers.QUESTIONS, num_samples=3, params=helpers.PARAMS, seed=7)}

  same(run(chunk_steps=1), run(chunk_steps=4, kv_layout='paged', page_size=16, page_layout='heads',
                               attention='interpret'))


@pytest.mark.parametrize('settings', [
    dict(kv_layout='pages'), dict(kv_layout='paged', attention='triton'),
    dict(kv_layout='paged', page_layout='rows'),
    # JAX's reference of the TPU kernel's interface runs eagerly (the layer tests'), not compiled.
    dict(kv_layout='paged', attention='reference', page_layout='tokens'),
])
def test_a_sampler_refuses_settings_it_cannot_run(model, settings):
  with pytest.raises(ValueError, match='is not one of'):
    Sampler(model, max_len=128, **settings)


@pytest.mark.parametrize('kv_layout', ['dense', 'paged'])
def test_the_next_run_reads_the_prefix_the_last_one_computed(model, outputs, kv_layout):
  """The same prefix under the same parameter arrays is computed once for all runs
  (the samples do not change); new parameters compute it again."""
  s = Sampler(model, max_len=128, num_slots=4, prefill_rows=2, chunk_steps=5, kv_layout=kv_layout,
              page_size=4)
  prefix_len = len(model.tokenizer.encode(helpers.PREFIX))
  computed = lambda out: sum(c.prompt_tokens_computed for c in out.values())
  first, second = helpers.run(s), helpers.run(s)
  same(outputs, first)
  same(outputs, second)
  assert computed(first) - computed(second) == prefix_len
  s.model = dataclasses.replace(s.model, params=jax.tree.map(lambda x: x * 1.25, s.model.params))
  third = helpers.run(s)
  assert computed(third) == computed(first)
  assert any(third[k].logprob != pytest.approx(second[k].logprob, abs=1e-3) for k in third.keys() & second.keys())
  if kv_layout == 'paged':  # after three runs only the prefix's pages are held
    device = s._device  # pylint: disable=protected-access
    assert all(device.tables.in_use(k) == np.count_nonzero(device.prefix[k]) for k in ('local', 'global'))


@pytest.mark.parametrize('kernels', ['xla', 'ours'])
def test_a_16bit_model_holds_the_prefix_in_its_dtype_and_its_rows_as_its_products_read_them(
    kernels, monkeypatch, request):
  """On CPU a bfloat16 model's sampler keeps the shared prefix's keys and values in
  bfloat16 (the float32 ones, rounded once), and its rows in float32 where XLA's
  products read them, in bfloat16 held as bits where our kernel over a bfloat16 cache
  does (`cpu_kernels.reads_slot_rows`); its greedy samples are those of a float32
  prefix, their log-probabilities within bfloat16 rounding."""
  from wcse_jax.model import cpu_kernels  # pylint: disable=g-import-not-at-top

  if kernels == 'ours' and not cpu_kernels.available():
    pytest.skip('no AVX512-BF16 CPU or no C++ compiler')
  monkeypatch.setenv(cpu_kernels.ENV, '1' if kernels == 'ours' else '0')
  forget = lambda: [f.cache_clear() for f in (cpu_kernels._library, cpu_kernels.isa, cpu_kernels.chosen)]
  forget()
  request.addfinalizer(forget)
  rows = jnp.bfloat16 if kernels == 'ours' else jnp.float32
  model = helpers.tiny_model(dtype=jnp.bfloat16)
  greedy = SamplingParams(temperature=0, max_new_tokens=12)
  outputs, prefixes = {}, {}
  for prefix_dtype in (None, jnp.float32):
    s = Sampler(model, max_len=128, num_slots=4, prefill_rows=2, chunk_steps=5,
                prefix_cache_dtype=prefix_dtype)
    assert s.cache_dtype == rows
    outputs[prefix_dtype] = helpers.run(s, num_samples=1, params=greedy)
    device = s._device  # pylint: disable=protected-access
    prefixes[prefix_dtype] = device.prefix
    layers = (*device.cache.blocks, *device.cache.tail)
    assert {layer.dtype for layer in layers} == {jnp.dtype(rows)}
    held = {x.dtype for layer in layers for x in (*layer.keys, *layer.values)}
    assert held == {jnp.dtype(jnp.uint16 if kernels == 'ours' else jnp.float32)}
  assert Sampler(model, max_len=128).prefix_cache_dtype == jnp.bfloat16
  narrow, wide = prefixes[None], prefixes[jnp.float32]
  for a, b in zip(jax.tree.leaves(narrow), jax.tree.leaves(wide), strict=True):
    if jnp.issubdtype(b.dtype, jnp.floating):
      assert a.dtype == jnp.bfloat16
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b.astype(jnp.bfloat16)))
    else:
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for key, c in outputs[None].items():
    assert c.token_ids == outputs[jnp.float32][key].token_ids, key
    assert c.logprob == pytest.approx(outputs[jnp.float32][key].logprob, rel=0.05, abs=0.02), key
  with pytest.raises(ValueError, match='paged layout keeps the prefix in its page pools'):
    Sampler(model, max_len=128, kv_layout='paged', prefix_cache_dtype=jnp.bfloat16)


@pytest.mark.parametrize('params', [
    helpers.PARAMS, SamplingParams(temperature=0, max_new_tokens=24),
    SamplingParams(temperature=1.0, top_k=3, min_p=0.2, max_new_tokens=24),
], ids=['top_k_top_p', 'greedy', 'top_k_min_p'])
def test_a_top_k_taken_as_the_logits_are_computed_samples_what_the_whole_logits_do(
    params, monkeypatch, request):
  """Where our kernel computes a bfloat16 model's logits and the rules need only a
  top-k (or the greedy token), the decode steps take it from the kernel
  (`Transformer.top_logits`) and never write the logits: the same tokens and
  log-probabilities, bit for bit, as drawing from the whole logits."""
  from wcse_jax.model import Transformer, cpu_kernels  # pylint: disable=g-import-not-at-top

  if not cpu_kernels.available():
    pytest.skip('no AVX512-BF16 CPU or no C++ compiler')
  monkeypatch.setenv(cpu_kernels.ENV, '1')
  forget = lambda: [f.cache_clear() for f in (cpu_kernels._library, cpu_kernels.isa, cpu_kernels.chosen)]
  forget()
  request.addfinalizer(forget)
  model = helpers.tiny_model(dtype=jnp.bfloat16)
  calls = []
  top_logits = Transformer.top_logits
  monkeypatch.setattr(Transformer, 'top_logits', lambda self, *a: calls.append(a[1:]) or top_logits(self, *a))
  sampler = lambda: Sampler(model, max_len=128, num_slots=4, prefill_rows=2, chunk_steps=5)
  fused = helpers.run(sampler(), params=params)
  assert calls and {k for (k,) in calls} == {params.top_k or 1}
  monkeypatch.setattr(Transformer, 'top_logits', lambda *_: None)
  whole = helpers.run(sampler(), params=params)
  assert fused.keys() == whole.keys()
  for key, c in fused.items():
    assert (c.token_ids, c.logprob) == (whole[key].token_ids, whole[key].logprob), key


def test_a_paged_cache_that_cannot_fit_is_one_clear_line(model, monkeypatch):
  from wcse_jax.sampling import kv  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(kv, 'free_device_bytes', lambda device: 1 << 20)
  big = Sampler(model, max_len=1024, num_slots=64, kv_layout='paged')
  with pytest.raises(kv.PagesExhaustedError) as error:
    big.sample(helpers.PREFIX, helpers.QUESTIONS, num_samples=1, params=helpers.PARAMS, seed=0)
  message = str(error.value)
  assert '\n' not in message and 'num_slots=64' in message and 'GiB' in message
