"""The tokenizer built from GGUF metadata (no torch) against transformers' GGUF tokenizer."""

import types

import pytest
import transformers

from wcse_jax.checkpoints import gguf_tokenizer, load
from wcse_jax.checkpoints.assemble import CheckpointError
from wcse_jax.data import few_shot_prompt, load_problems
from wcse_jax.data.prompts import GSM8K_STOP, MATH_STOP

EDGE_CASES = [
    '', ' ', '  ', '\n', '\n\n\n', ' \n \n', '\t\ttabs\t', 'a  b   c    d', '   leading', 'trailing   ',
    '1234567890 3.14159 -0.5 1,000,000 $12.50 1/2 2^{10}', '١٢٣ ४५६ 七八九',
    'ünïcödé, naïve café — “quotes” ‘single’ … ½ ∑ √ π ∞ ≤ ≥ ≠', '日本語のテキスト 中文 한국어',
    'emoji 🙂👍🏽 👨‍👩‍👧 and a lone \u200b zero-width space', '\x00\x01 control \x7f',
    '<bos>Q: <eos> <pad> <unk> <mask> <start_of_turn>user\nhi<end_of_turn>\n',
    '[multimodal] <unused0> <start_of_image>', '\\frac{1}{2} \\boxed{x^2+\\sqrt{3}} $\\$5$',
    'Final Answer: The final answer is $\\frac{\\pi}{4}$. I hope it is correct.',
    'The answer is 42.\n\n\nQ: next', 'x' * 300, ' '.join(['word'] * 200),
    *GSM8K_STOP, *MATH_STOP,
]


@pytest.fixture(scope='module')
def reference():
  path = load.bundled_gguf_path()
  return transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.fixture(scope='module')
def ours(tmp_path_factory):
  """Built once into an empty cache, then read back from it, as a second run would."""
  path = load.bundled_gguf_path()
  cache = tmp_path_factory.mktemp('cache')
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('WCSE_JAX_CACHE', str(cache))
    built = load.load_tokenizer(path)
    assert list((cache / 'tokenizers').iterdir()), 'the built tokenizer was not cached'
    cached = load.load_tokenizer(path)
  return built, cached


def texts():
  out = list(EDGE_CASES)
  for dataset, split in (('gsm8k', 'test'), ('math', 'test')):
    out += [p.question for p in load_problems(dataset, split).problems]
    out.append(few_shot_prompt(dataset).prefix)
  out.append(few_shot_prompt('math', latex_fixed=True).prefix)
  return out


def test_ids_equal_transformers_gguf_tokenizer_on_every_question(ours, reference):
  everything = texts()
  assert len(everything) > 6300
  expected = reference(everything)['input_ids']
  expected_bare = reference(everything, add_special_tokens=False)['input_ids']
  for tokenizer in ours:
    got = tokenizer(everything)['input_ids']
    mismatched = [t for t, a, b in zip(everything, got, expected) if a != b]
    assert not mismatched, f'{len(mismatched)} texts differ, first: {mismatched[0]!r}'
    assert tokenizer(everything, add_special_tokens=False)['input_ids'] == expected_bare
    for text in EDGE_CASES:
      assert tokenizer.encode(text) == reference.encode(text)
      ids = tokenizer.encode(text, add_special_tokens=False)
      assert tokenizer.decode(ids) == reference.decode(ids)
    for name in ('bos_token_id', 'eos_token_id', 'pad_token_id', 'unk_token_id'):
      assert getattr(tokenizer, name) == getattr(reference, name), name
    assert len(tokenizer) == len(reference)


def _reader(**fields):
  """A stand-in for gguf.GGUFReader holding only metadata fields."""
  wrapped = {k: types.SimpleNamespace(contents=lambda v=v: v) for k, v in fields.items()}
  return types.SimpleNamespace(fields=wrapped)


def test_a_non_gemma_vocabulary_is_refused():
  reader = _reader(**{'general.architecture': 'llama', 'tokenizer.ggml.model': 'gpt2'})
  with pytest.raises(CheckpointError, match='only Gemma 1/2/3 SentencePiece'):
    gguf_tokenizer.build_backend(reader, 'x.gguf')


def test_a_torn_vocabulary_is_refused():
  reader = _reader(**{
      'general.architecture': 'gemma2', 'tokenizer.ggml.model': 'llama',
      'tokenizer.ggml.tokens': ['<pad>', '<eos>'], 'tokenizer.ggml.token_type': [3],
  })
  with pytest.raises(CheckpointError, match='missing or torn'):
    gguf_tokenizer.build_backend(reader, 'x.gguf')
