"""llama.cpp on a decode workload: python llamacpp_peer.py WORKLOAD.json

Run inside the llama.cpp environment that `benchmarks/peers/setup.sh` builds.
Its fastest way to draw many samples on a CPU box is the low-level batched API,
as llama.cpp's `batched` example does: one `llama_decode` per step for every
sequence, a unified KV cache, and each prompt decoded once and shared. Here the
few-shot prefix is decoded once for all sequences and each problem's question
once for its samples (a token may belong to several sequences), in waves of
`num_seqs // samples` problems. Sampling: top-k, then temperature, then a
seeded draw (llama.cpp's own chain). Prints one JSON object.
"""

import json
import os
import sys
import time

import llama_cpp as L


def tokenize(vocab, text: str, add_special: bool) -> list[int]:
  data = text.encode()
  buf = (L.llama_token * (len(data) + 8))()
  n = L.llama_tokenize(vocab, data, len(data), buf, len(buf), add_special, True)
  if n < 0:
    raise RuntimeError(f'tokenize failed ({n})')
  return list(buf[:n])


class Batch:
  def __init__(self, capacity: int, max_seqs: int):
    self.raw = L.llama_batch_init(capacity, 0, max_seqs)
    self.capacity = capacity

  def clear(self):
    self.raw.n_tokens = 0

  def add(self, token: int, pos: int, seqs, logits: bool) -> int:
    i = self.raw.n_tokens
    self.raw.token[i] = token
    self.raw.pos[i] = pos
    self.raw.n_seq_id[i] = len(seqs)
    for j, s in enumerate(seqs):
      self.raw.seq_id[i][j] = s
    self.raw.logits[i] = logits
    self.raw.n_tokens = i + 1
    return i


def decode(ctx, batch: Batch):
  status = L.llama_decode(ctx, batch.raw)
  if status != 0:
    raise RuntimeError(f'llama_decode returned {status}')


def main():
  work = json.load(open(sys.argv[1]))
  L.llama_backend_init()
  model = L.llama_model_load_from_file(work['gguf'].encode(), L.llama_model_default_params())
  vocab = L.llama_model_get_vocab(model)
  num_seqs, samples, new_tokens = work['num_seqs'], work['samples'], work['new_tokens']
  per_wave = max(1, num_seqs // samples)
  prefix = tokenize(vocab, work['prefix'], add_special=True)
  questions = [tokenize(vocab, q, add_special=False) for q in work['questions']]
  longest_wave = max(sum(len(q) for q in questions[i:i + per_wave]) for i in range(0, len(questions), per_wave))
  threads = os.cpu_count()

  params = L.llama_context_default_params()
  params.n_ctx = len(prefix) + longest_wave + per_wave * samples * new_tokens + 64
  params.n_batch = max(len(prefix), longest_wave, num_seqs)
  params.n_ubatch = params.n_batch
  params.n_seq_max = per_wave * samples
  params.n_threads = params.n_threads_batch = threads
  params.kv_unified = True  # one cell pool: shared prompt cells are stored once
  ctx = L.llama_init_from_model(model, params)
  memory = L.llama_get_memory(ctx)
  batch = Batch(params.n_batch, params.n_seq_max)

  chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
  L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(work['top_k']))
  L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(work['temperature']))
  L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(work['seed']))

  def run(problem_ids, max_new) -> int:
    """Samples every problem of `problem_ids` in waves; returns the tokens drawn."""
    L.llama_memory_clear(memory, True)
    all_seqs = list(range(per_wave * samples))
    batch.clear()
    for p, t in enumerate(prefix):  # the prefix once, in every sequence
      batch.add(t, p, all_seqs, False)
    decode(ctx, batch)
    drawn = 0
    for w in range(0, len(problem_ids), per_wave):
      wave = problem_ids[w:w + per_wave]
      L.llama_memory_seq_rm(memory, -1, len(prefix), -1)  # keep the prefix, drop the last wave
      batch.clear()
      logits_at, position = {}, {}
      for k, j in enumerate(wave):
        seqs = all_seqs[k * samples:(k + 1) * samples]
        for p, t in enumerate(questions[j]):
          last = p == len(questions[j]) - 1
          i = batch.add(t, len(prefix) + p, seqs, last)
        for s in seqs:
          logits_at[s], position[s] = i, len(prefix) + len(questions[j])
      decode(ctx, batch)
      live = {s: 0 for s in logits_at}
      while live:
        batch.clear()
        for s in list(live):
          token = L.llama_sampler_sample(chain, ctx, logits_at[s])
          live[s] += 1
          drawn += 1
          if L.llama_vocab_is_eog(vocab, token) or live[s] >= max_new:
            del live[s]
            continue
          logits_at[s] = batch.add(token, position[s], [s], True)
          position[s] += 1
        if batch.raw.n_tokens:
          decode(ctx, batch)
    return drawn

  run([0], 8)  # warm-up
  start = time.perf_counter()
  generated = run(list(range(len(questions))), new_tokens)
  seconds = time.perf_counter() - start
  print(json.dumps({
      'name': 'llamacpp',
      'version': L.__version__,
      'config': {
          'weights': os.path.basename(work['gguf']), 'api': 'batched llama_decode, unified KV, shared prompts',
          'threads': threads, 'sequences_at_once': per_wave * samples,
      },
      'seconds': round(seconds, 2),
      'generated_tokens': generated,
      'tokens_per_s': round(generated / seconds, 2),
  }))


if __name__ == '__main__':
  main()
