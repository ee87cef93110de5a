"""The real bundled Gemma 3 270M through our GGUF path vs transformers' GGUF load."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from wcse_jax.checkpoints import load_model
from wcse_jax.checkpoints.load import bundled_gguf_path
from wcse_jax.data import few_shot_prompt, load_problems
from wcse_jax.model import cpu_kernels


@pytest.fixture(scope='module')
def prompts():
  problems = load_problems('gsm8k', 'test').problems[:4]
  prompt = few_shot_prompt('gsm8k')
  # One whole 8-shot prompt (longer than the 512-token window) and three bare questions.
  return [prompt.render(problems[0].question)] + [prompt.format_question(p.question) for p in problems[1:]]


def test_logits_and_greedy_tokens_match_transformers(prompts):
  loaded = load_model('gemma3-270m', dtype=jnp.float32)
  assert loaded.config.num_layers == 18 and loaded.config.sliding_window == 512
  encoded = [loaded.tokenizer(p)['input_ids'] for p in prompts]
  length = max(map(len, encoded))
  tokens = np.zeros((len(encoded), length), np.int32)
  mask = np.zeros(tokens.shape, bool)
  for row, ids in enumerate(encoded):
    tokens[row, :len(ids)], mask[row, :len(ids)] = ids, True
  positions = np.broadcast_to(np.arange(length), tokens.shape)
  # Logits at every 8th position and each row's last: [rows, ~130, 262k] instead of
  # [rows, ~1000, 262k] floats (4 GB a side), on both sides of the comparison.
  keep = np.unique(np.concatenate([np.arange(0, length, 8), mask.sum(1) - 1]))
  hidden, _ = loaded.model(
      jnp.asarray(tokens), jnp.asarray(positions), input_mask=jnp.asarray(mask), return_hidden=True
  )
  ours = np.asarray(loaded.model.logits(hidden[:, keep]))

  path = bundled_gguf_path()
  reference = transformers.AutoModelForCausalLM.from_pretrained(
      str(path.parent), gguf_file=path.name, dtype=torch.float32
  ).eval()
  reference_tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
  assert encoded == [reference_tokenizer(p)['input_ids'] for p in prompts]
  with torch.no_grad():
    expected = reference(
        input_ids=torch.tensor(tokens).long(), attention_mask=torch.tensor(mask).long(),
        logits_to_keep=torch.tensor(keep),
    ).logits.numpy()

  valid = mask[:, keep]
  assert valid.sum() > 100 and keep.max() > loaded.config.sliding_window
  error = np.abs(ours - expected)
  # What a failure needs to be told apart (a row's padding, this machine's kernels).
  by_row = [float(error[row][valid[row]].max()) for row in range(len(prompts))]
  assert error[valid].max() < 1e-3, (
      f'largest error by row {by_row} (row lengths {mask.sum(1).tolist()}); CPU '
      f'{cpu_kernels._cpu_model()!r}, our kernels {cpu_kernels.available() and cpu_kernels.isa()}, '
      f"f32_batched ours: {cpu_kernels.chosen('f32_batched')}, torch threads {torch.get_num_threads()}"
  )
  np.testing.assert_array_equal(ours.argmax(-1)[valid], expected.argmax(-1)[valid])
