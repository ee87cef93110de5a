"""transformers `generate` on a decode workload: python transformers_peer.py WORKLOAD.json

Runs in the project's environment with the test extra (torch). Every
configuration (float32 and bfloat16, sdpa and eager attention) is first timed on
a short run; the fastest then runs the whole workload. Prompts are left-padded
and `num_seqs // samples` problems go into one `generate` call with
`num_return_sequences=samples`, so the batch matches the other peers'. Prints one
JSON object.
"""

import json
import os
import pathlib
import sys
import time

import numpy as np
import torch
import transformers

CONFIGS = [(dtype, attention) for dtype in ('bfloat16', 'float32') for attention in ('sdpa', 'eager')]


def main():
  work = json.load(open(sys.argv[1]))
  path = pathlib.Path(work['gguf'])
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
  tokenizer.padding_side = 'left'
  torch.set_num_threads(os.cpu_count())
  per_call = max(1, work['num_seqs'] // work['samples'])

  def load(dtype, attention):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=getattr(torch, dtype), attn_implementation=attention,
    ).eval()
    return model, model.generation_config.eos_token_id

  def run(model, eos, questions, samples, new_tokens) -> int:
    drawn = 0
    for i in range(0, len(questions), per_call):
      texts = [work['prefix'] + q for q in questions[i:i + per_call]]
      batch = tokenizer(texts, return_tensors='pt', padding=True)
      with torch.no_grad():
        out = model.generate(
            **batch, do_sample=True, temperature=work['temperature'], top_k=work['top_k'],
            max_new_tokens=new_tokens, num_return_sequences=samples, pad_token_id=tokenizer.pad_token_id,
        )
      new = out[:, batch['input_ids'].shape[1]:].numpy()
      ended = np.isin(new, np.atleast_1d(eos))
      drawn += int(np.where(ended.any(1), ended.argmax(1) + 1, new.shape[1]).sum())
    return drawn

  torch.manual_seed(work['seed'])
  screen = {}
  for dtype, attention in CONFIGS:  # a short run of each, after a warm-up
    model, eos = load(dtype, attention)
    run(model, eos, work['questions'][:1], 2, 4)
    start = time.perf_counter()
    drawn = run(model, eos, work['questions'][:per_call], work['samples'], 16)
    screen[f'{dtype}/{attention}'] = round(drawn / (time.perf_counter() - start), 2)
    del model
  best = max(screen, key=screen.get)
  model, eos = load(*best.split('/'))
  run(model, eos, work['questions'][:1], 2, 4)
  start = time.perf_counter()
  generated = run(model, eos, work['questions'], work['samples'], work['new_tokens'])
  seconds = time.perf_counter() - start
  print(json.dumps({
      'name': 'transformers',
      'version': transformers.__version__,
      'config': {'dtype': best.split('/')[0], 'attention': best.split('/')[1], 'torch_threads': torch.get_num_threads(),
                 'problems_per_generate': per_call, 'screen_tokens_per_s_16_new_tokens': screen},
      'seconds': round(seconds, 2),
      'generated_tokens': generated,
      'tokens_per_s': round(generated / seconds, 2),
  }))


if __name__ == '__main__':
  main()
