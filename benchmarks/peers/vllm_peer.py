"""vLLM (CPU backend) on a decode workload: python vllm_peer.py WORKLOAD.json

Run inside the vLLM environment that `benchmarks/peers/setup.sh` builds. Its
fastest configuration on a CPU box: bfloat16, prefix caching, all `n` samples
of a prompt in one request (they share its KV), every core given to the model
(VLLM_CPU_OMP_THREADS_BIND=0-N, VLLM_CPU_NUM_OF_RESERVED_CPU=0, set by the
driver). Prints one JSON object.
"""

import json
import os
import sys
import time


def main():
  work = json.load(open(sys.argv[1]))
  import vllm  # pylint: disable=g-import-not-at-top

  llm = vllm.LLM(
      model=work['hf_dir'], dtype=work.get('vllm_dtype', 'bfloat16'), enable_prefix_caching=True,
      max_num_seqs=work['num_seqs'], max_model_len=work['max_len'], seed=work['seed'],
  )
  params = vllm.SamplingParams(
      n=work['samples'], temperature=work['temperature'], top_k=work['top_k'],
      max_tokens=work['new_tokens'],
  )
  warm = vllm.SamplingParams(n=2, temperature=work['temperature'], top_k=work['top_k'], max_tokens=8)
  llm.generate(work['prompts'][:1], warm, use_tqdm=False)
  start = time.perf_counter()
  outputs = llm.generate(work['prompts'], params, use_tqdm=False)
  seconds = time.perf_counter() - start
  generated = sum(len(c.token_ids) for o in outputs for c in o.outputs)
  print(json.dumps({
      'name': 'vllm',
      'version': vllm.__version__,
      'config': {
          'dtype': work.get('vllm_dtype', 'bfloat16'), 'prefix_caching': True, 'n_per_request': work['samples'],
          'max_num_seqs': work['num_seqs'],
          'omp_threads_bind': os.environ.get('VLLM_CPU_OMP_THREADS_BIND'),
          'reserved_cpus': os.environ.get('VLLM_CPU_NUM_OF_RESERVED_CPU'),
      },
      'seconds': round(seconds, 2),
      'generated_tokens': generated,
      'tokens_per_s': round(generated / seconds, 2),
  }))


if __name__ == '__main__':  # vLLM spawns its engine process, which re-imports this file
  main()
