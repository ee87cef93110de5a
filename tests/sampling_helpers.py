"""A tiny random Gemma 3 and a character tokenizer, for fast sampler tests.

Run as a script it samples a fixed workload on every visible device (mesh
data=2, model=2 when there are four) and prints the completions as JSON, so a
test can compare runs across device counts:

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/sampling_helpers.py [paged]
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
from flax import nnx

from wcse_jax import parallel
from wcse_jax.checkpoints import LoadedModel
from wcse_jax.model import AttentionKind, GemmaConfig, Transformer
from wcse_jax.sampling import SamplingParams, Sampler

L, G = AttentionKind.LOCAL, AttentionKind.GLOBAL
TINY = GemmaConfig(
    name='tiny-gemma3', version=3, vocab_size=128, embed_dim=64, hidden_dim=128,
    num_layers=5, num_heads=4, num_kv_heads=2, head_dim=16, query_pre_attn_scalar=16,
    layer_pattern=(L, L, G), sliding_window=8, rope_base_global=1e6,
    use_post_attn_norm=True, use_post_ffw_norm=True, use_qk_norm=True, max_seq_len=1024,
)


class CharTokenizer:
  """One token per ASCII character, except "\\n\\n", which is one token (3).

  The merge makes "a\\n" + "\\nb" tokenize differently from "a\\n\\nb", as real
  tokenizers do at some boundaries. 0 is padding, 1 EOS, 2 BOS.
  """

  bos_token_id, eos_token_id, vocab_size = 2, 1, 128

  def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
    ids = [self.bos_token_id] if add_special_tokens else []
    for i, part in enumerate(text.split('\n\n')):
      ids += [3] * (i > 0) + [ord(c) if 4 <= ord(c) < 128 else ord('?') for c in part]
    return ids

  def decode(self, ids) -> str:
    return ''.join('\n\n' if i == 3 else chr(i) for i in ids if i > 3)


def tiny_model(mesh=None, config: GemmaConfig = TINY, dtype=jnp.float32) -> LoadedModel:
  """Random weights (in `dtype`, as is the compute); the embedding is scaled up so that
  next-token distributions are peaked."""
  mesh = mesh if mesh is not None else parallel.make_mesh()
  graphdef, params = nnx.split(Transformer(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype))
  embedding = params['embedder']['input_embedding']
  embedding.set_value(embedding.get_value() * 8)
  params = jax.device_put(params, parallel.param_shardings(params, mesh))
  return LoadedModel(config, graphdef, params, CharTokenizer(), 'random', mesh)


PREFIX = 'Q: 1+1?\nA: 2.\n\nQ: 3+4?\nA: 7.\n'
QUESTIONS = [
    'Q: 2+2?\nA:',
    'Q: What is six times seven, in words?\nA:',
    '\nQ: Its first newline merges with the prefix\'s last?\nA:',  # tokenized whole
    'Q: 9-3?\nA:',
    'Q: A longer question, past the sliding window of eight tokens by far?\nA:',
]
PARAMS = SamplingParams(temperature=0.8, top_k=50, top_p=0.95, max_new_tokens=24)


def standard_sampler(mesh=None, **kw) -> Sampler:
  """Few slots and pool rows, short chunks: slots refill often, problems wait for rows."""
  return Sampler(tiny_model(mesh), max_len=128, num_slots=4, prefill_rows=2, chunk_steps=5, **kw)


def run(sampler: Sampler, *, num_samples: int = 3, params: SamplingParams = PARAMS, seed: int = 7, **kw):
  """{(problem, sample): completion} for the standard tiny workload."""
  completions = sampler.sample(
      PREFIX, QUESTIONS, num_samples=num_samples, params=params, seed=seed, **kw
  )
  return {(c.problem, c.sample): c for c in completions}


if __name__ == '__main__':
  import sys  # pylint: disable=g-import-not-at-top

  model_axis = 2 if len(jax.devices()) == 4 else 1
  mesh = parallel.make_mesh(model=model_axis)
  layout = dict(kv_layout='paged', page_size=4) if sys.argv[1:] == ['paged'] else {}
  out = run(standard_sampler(mesh, **layout))
  print(json.dumps({
      'devices': len(jax.devices()),
      'mesh': dict(mesh.shape),
      'completions': [dataclasses.asdict(c) for c in sorted(out.values(), key=lambda c: (c.problem, c.sample))],
  }))
