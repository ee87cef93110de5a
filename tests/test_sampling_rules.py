"""The sampling rules draw exactly from softmax(logits / T) cut by top-k, top-p and min-p."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import chi2

from wcse_jax.sampling import SamplingParams, TokenRules, sample_next, token_keys
from wcse_jax.sampling.rules import inverse_cdf, nucleus_threshold, top_k

NUM_DRAWS = 40_000


def reference_probs(logits, rules: TokenRules) -> np.ndarray:
  """The distribution the rules define, computed the transformers way (sorting), in float64."""
  p = np.exp((logits - logits.max()) / rules.temperature)
  p /= p.sum()
  order = np.argsort(-p, kind='stable')
  keep = np.ones_like(p, bool)
  if rules.top_k is not None:
    keep[order[rules.top_k:]] = False
    p = np.where(keep, p, 0) / p[keep].sum()
  if rules.top_p < 1:
    sorted_p = p[order]
    before = np.cumsum(sorted_p) - sorted_p
    keep[order[before >= rules.top_p]] = False
    p = np.where(keep, p, 0) / p[keep].sum()
  if rules.min_p > 0:
    keep &= p >= rules.min_p * p.max()
  p = np.where(keep, p, 0)
  return p / p.sum()


def draw(logits, rules, num=NUM_DRAWS, seed=0):
  keys = token_keys(jax.random.key(seed), jnp.arange(num), jnp.zeros(num, jnp.int32), jnp.zeros(num, jnp.int32))
  batch = jnp.broadcast_to(jnp.asarray(logits, jnp.float32), (num, len(logits)))
  tokens, logprobs = jax.jit(sample_next, static_argnums=2)(batch, keys, rules)
  return np.asarray(tokens), np.asarray(logprobs)


LOGITS = np.array([2.0, 1.5, 1.4, 1.0, 0.5, 0.4, 0.0, -0.3, -1.0, -2.0, -3.0, -5.0])


@pytest.mark.parametrize('rules', [
    TokenRules(temperature=1.0),
    TokenRules(temperature=0.5),
    TokenRules(temperature=1.3, top_k=5),
    TokenRules(temperature=1.0, top_p=0.8),
    TokenRules(temperature=1.0, min_p=0.1),
    TokenRules(temperature=0.7, top_k=8, top_p=0.9, min_p=0.05),
], ids=['t1', 't0.5', 'topk', 'topp', 'minp', 'all'])
def test_draws_follow_the_truncated_softmax(rules):
  expected = reference_probs(LOGITS, rules)
  tokens, logprobs = draw(LOGITS, rules)
  counts = np.bincount(tokens, minlength=len(LOGITS))
  assert counts[expected == 0].sum() == 0, 'drew a token the rules cut'
  kept = expected > 0
  stat = np.sum((counts[kept] - NUM_DRAWS * expected[kept]) ** 2 / (NUM_DRAWS * expected[kept]))
  assert chi2.sf(stat, kept.sum() - 1) > 1e-3, (counts, NUM_DRAWS * expected)
  # The reported log-probability is the raw model's, whatever the rules.
  raw = LOGITS - np.log(np.exp(LOGITS).sum())
  np.testing.assert_allclose(logprobs, raw[tokens], rtol=1e-5, atol=1e-5)


def test_top_p_beyond_the_256_most_probable_tokens_bisects_exactly():
  # A flat distribution over 1000 tokens: the top 256 hold ~30%, less than top_p.
  logits = np.asarray(jax.random.normal(jax.random.key(1), (1000,)) * 0.2, np.float64)
  rules = TokenRules(temperature=1.0, top_p=0.6)
  full = reference_probs(logits, TokenRules(temperature=1.0))
  assert np.sort(full)[::-1][:256].sum() < 0.6
  expected = reference_probs(logits, rules)
  tokens, _ = draw(logits, rules)
  counts = np.bincount(tokens, minlength=len(logits))
  assert counts[expected == 0].sum() == 0
  kept = expected > 0
  stat = np.sum((counts[kept] - NUM_DRAWS * expected[kept]) ** 2 / (NUM_DRAWS * expected[kept]))
  assert chi2.sf(stat, kept.sum() - 1) > 1e-3


@pytest.mark.parametrize('scale', [0.2, 3.0], ids=['bisection', 'top256'])
def test_nucleus_threshold_keeps_the_smallest_set_reaching_top_p(scale):
  weights = jnp.exp(jax.random.normal(jax.random.key(2), (4, 3000)) * scale)
  weights = weights / weights.max(-1, keepdims=True)
  for top_p in (0.1, 0.5, 0.9):
    threshold = nucleus_threshold(weights, top_p, jnp.ones(4, bool))
    for row, t in zip(np.asarray(weights, np.float64), np.asarray(threshold)[:, 0]):
      sorted_w = np.sort(row)[::-1]
      cut = np.searchsorted(np.cumsum(sorted_w), top_p * row.sum())  # first index reaching it
      assert t == np.float32(sorted_w[cut])


def test_inverse_cdf_is_exact_over_a_full_vocabulary():
  weights = jax.random.uniform(jax.random.key(3), (8, 262_144)) ** 8
  weights = jnp.where(jax.random.uniform(jax.random.key(4), weights.shape) < 0.5, weights, 0)
  uniform = jnp.array([1e-9, 0.1, 0.25, 0.5, 0.75, 0.9, 1 - 1e-7, 1.0])
  got = np.asarray(inverse_cdf(weights, uniform))
  cdf = np.cumsum(np.asarray(weights, np.float64), axis=-1)
  want = [np.searchsorted(c, u * c[-1]) for c, u in zip(cdf, np.asarray(uniform, np.float64))]
  assert np.all(np.asarray(weights)[np.arange(8), got] > 0)
  # float32 sums can move a boundary by a token or so; never further.
  np.testing.assert_allclose(got, want, atol=2)


def test_greedy_takes_the_argmax_and_reports_its_log_probability():
  logits = jax.random.normal(jax.random.key(5), (6, 1000))
  tokens, logprobs = sample_next(logits, token_keys(jax.random.key(0), *[jnp.zeros(6, jnp.int32)] * 3), TokenRules(temperature=0))
  np.testing.assert_array_equal(tokens, jnp.argmax(logits, -1))
  np.testing.assert_allclose(logprobs, jnp.max(jax.nn.log_softmax(logits), -1), rtol=1e-6)


def test_token_keys_depend_only_on_problem_sample_and_step():
  seed = jax.random.key(0)
  keys = token_keys(seed, jnp.array([3, 3, 4]), jnp.array([1, 1, 1]), jnp.array([5, 5, 5]))
  one = token_keys(seed, jnp.array([3]), jnp.array([1]), jnp.array([5]))
  data = jax.random.key_data
  np.testing.assert_array_equal(data(keys[0]), data(keys[1]))
  np.testing.assert_array_equal(data(keys[0]), data(one[0]))
  assert not np.array_equal(data(keys[0]), data(keys[2]))


@pytest.mark.parametrize('bad, message', [
    (dict(temperature=-1), 'temperature'),
    (dict(top_k=0), 'top_k'),
    (dict(top_p=0), 'top_p'),
    (dict(min_p=1.5), 'min_p'),
    (dict(max_new_tokens=0), 'max_new_tokens'),
    (dict(stop_strings='\n\nQ:'), 'stop_strings'),
])
def test_bad_sampling_params_say_what_is_wrong(bad, message):
  with pytest.raises(ValueError, match=message):
    SamplingParams(**bad)


@pytest.mark.parametrize('vocab_major', [False, True], ids=['rows', 'vocab_major'])
@pytest.mark.parametrize('vocab, k', [(262_144, 40), (262_144, 1), (262_144, 300), (1000, 40), (50_001, 7)])
def test_two_stage_top_k_equals_lax_top_k_with_ties(vocab, k, vocab_major):
  logits = jax.random.normal(jax.random.key(5), (6, vocab))
  # Ties: whole runs of equal values, across blocks and at the k-th place.
  logits = logits.at[1].set(jnp.round(logits[1] * 2) / 2)
  logits = logits.at[2].set(0.0)
  logits = logits.at[3, ::97].set(9.0)
  logits = logits.at[4, -1].set(100.0)  # the largest entry in the last, padded block
  given = logits.T if vocab_major else logits
  values, index = jax.jit(top_k, static_argnums=1, static_argnames='vocab_major')(
      given, k, vocab_major=vocab_major)
  want_values, want_index = jax.lax.top_k(logits, k)
  np.testing.assert_array_equal(values, want_values)
  np.testing.assert_array_equal(index, want_index)


def test_top_p_threshold_of_a_row_does_not_depend_on_the_other_rows():
  # Row 0 is peaked (the 256 most probable tokens hold top_p), row 1 flat (bisection).
  peaked = jnp.exp(jax.random.normal(jax.random.key(6), (3000,)) * 3.0)
  flat = jnp.exp(jax.random.normal(jax.random.key(7), (3000,)) * 0.2)
  weights = jnp.stack([peaked / peaked.max(), flat / flat.max()])
  alone = nucleus_threshold(weights[:1], 0.9, jnp.ones(1, bool))
  together = nucleus_threshold(weights, 0.9, jnp.ones(2, bool))
  assert np.asarray(together[0]) == np.asarray(alone[0])
  keys = token_keys(jax.random.key(0), jnp.arange(2), jnp.zeros(2, jnp.int32), jnp.zeros(2, jnp.int32))
  rules = TokenRules(temperature=1.0, top_p=0.9)
  logits = jnp.log(weights)
  both, _ = sample_next(logits, keys, rules)
  first, _ = sample_next(logits[:1], keys[:1], rules)
  assert int(both[0]) == int(first[0])


@pytest.mark.parametrize('rules', [
    TokenRules(temperature=0),
    TokenRules(temperature=0.7, top_k=40),
    TokenRules(temperature=1.0, top_k=3, top_p=0.9),
    TokenRules(temperature=0.8),
    TokenRules(temperature=1.2, top_p=0.5, min_p=0.1),
], ids=['greedy', 'topk', 'topk-topp', 'full', 'topp-minp'])
def test_vocab_major_logits_draw_the_same_tokens(rules):
  """`sample_next(vocab_major=True)` (logits [V, B], the CPU decode loop's) draws each row's
  token exactly as from [B, V], ties and a padded last block included; the
  log-probabilities agree to float32 rounding of another summation order."""
  vocab, rows = 50_001, 24
  logits = jax.random.normal(jax.random.key(8), (rows, vocab)) * 3
  logits = logits.at[1].set(jnp.round(logits[1]))  # ties everywhere
  logits = logits.at[2, ::1000].set(20.0)  # ties at the top
  logits = logits.at[3, -1].set(30.0)  # the largest in the padded last block
  keys = token_keys(jax.random.key(1), jnp.arange(rows), jnp.zeros(rows, jnp.int32), jnp.zeros(rows, jnp.int32))
  draw_with = jax.jit(sample_next, static_argnums=2, static_argnames='vocab_major')
  tokens, logprobs = draw_with(logits, keys, rules)
  by_vocab, by_vocab_logprobs = draw_with(logits.T, keys, rules, vocab_major=True)
  np.testing.assert_array_equal(by_vocab, tokens)
  np.testing.assert_allclose(by_vocab_logprobs, logprobs, rtol=0, atol=2e-5)
  assert len(set(np.asarray(tokens).tolist())) > rows // 2  # the draws differ by row
