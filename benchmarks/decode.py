"""Sampling throughput: our sampler against its peers on the same model and work.

    python benchmarks/decode.py                                # ours and transformers
    bash benchmarks/peers/setup.sh && python benchmarks/decode.py --peers=vllm,llamacpp,transformers
    python benchmarks/decode.py --problems=1 --samples=4 --new_tokens=16 --peers=   # a quick check
    python benchmarks/decode.py --random=gemma2-2b --num_slots=64,256   # on a GPU: against the roofline

The workload: the bundled Gemma 3 270M, the GSM8K 8-shot prefix and the first
`--problems` test questions (by default enough for every slot of the largest
`--num_slots` to hold a sample), `--samples` samples of each, up to `--new_tokens`
new tokens, temperature 0.7 and top-k 40, `--num_slots` sequences decoded
together, ending at EOS (no stop strings). Ours runs once per dtype in
`--dtypes` (weights and their products; sums in float32), with the sampler's
default KV cache dtype (float32 on CPU, bfloat16 on accelerators). `--random`
samples a preset's shape with random weights instead (the bundled model's
tokenizer), in bfloat16 and without peers unless told otherwise.

Peers (`--peers`) each run in their own environment as a subprocess, one after
another, on the same workload (the prompts, counts and settings go to them as a
JSON file), each in its fastest configuration on this machine (see each
`benchmarks/peers/*_peer.py`): vLLM's CPU backend (bfloat16, prefix caching, n
samples per request, every core), llama.cpp's batched API (the bundled GGUF,
prompts shared in a unified KV cache) and transformers' `generate` (the fastest
of float32/bfloat16 x sdpa/eager). `benchmarks/peers/setup.sh` builds the vLLM
and llama.cpp environments once; transformers uses this environment's test
extra. A peer that is not built is reported as such.

Every run is timed after a warm-up on the same prompts (a few tokens each,
then `Sampler.precompile`), which compiles every shape and computes the
few-shot prefix: the timed run of
ours reads the prefix the warm-up left in the sampler's cache, as vLLM's timed
run reads the prefix blocks its warm-up left in its prefix cache.

KV layouts (`--kv_layouts`): 'dense' (a row per slot, the prefix in one row
read once per step), 'paged' (page tables; on TPU JAX's kernel reads each
slot's pages, the prefix's once per slot; on GPU JAX's kernel reads each slot's
pages past the prefix's and XLA the prefix's once; the XLA path, on CPU, reads the
prefix's pages once and each slot's columns in view), 'paged_xla' (pages
through the XLA path on any backend), or 'auto' (the sampler's choice).
The KV bytes a step reads are counted per step by the sampler and averaged;
for pages also the bytes of the pages the slots' tables name, which is what
JAX's kernel reads on TPU (on GPU, less the prefix's pages per slot).

Roofline. A decode step reads every weight and at least the KV its slots
attend to (the prefix's once; not what a layout happens to read), and
computes 2 x parameters plus the attention products per slot: it can be no faster than the
larger of its bytes over the memory bandwidth and its FLOPs over the matmul
peak (in the dtype used). The bandwidth is measured twice, independently: XLA's
read of a 1 GiB array (4 GiB on an accelerator) and, on CPU, numpy copies over
every core, on a CUDA GPU torch's device-to-device copies; the larger is used.
The matmul peak likewise, each the fastest of repeated [4096, 4096] products
([8192, 8192] on an accelerator): XLA's, numpy BLAS's (float32, CPU), torch's
(every dtype, where torch is installed: on the CPU, or cuBLAS on a CUDA GPU) and
our bfloat16 kernel's (`model.cpu_kernels`, where it runs); the largest is used.
For bfloat16 on CPU the dot-product instruction's own rate from registers (AMX's
or AVX512-BF16's, every core at once) is measured too, the roof those products
approach from below, and used where larger (the strict fraction); the fractions
at the best product's peak and at XLA's own are printed beside it. `--profile=DIR` runs
each of ours once more under `jax.profiler` and adds its device time by kernel.
The decode loop is timed apart from prefill and host work (`Sampler.last_stats`),
and its step time against that floor is its fraction of the roofline.

Prints one JSON object: every run's tokens/s and configuration, ours per
dtype, the ratio of our best to the fastest peer, and the decode loop's time
split and roofline fraction.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
from flax import nnx

from wcse_jax import parallel, perf
from wcse_jax.checkpoints import LoadedModel, load_model, load_tokenizer
from wcse_jax.checkpoints.export_hf import export_hf
from wcse_jax.checkpoints.load import bundled_gguf_path
from wcse_jax.data import few_shot_prompt, load_problems
from wcse_jax.model import Transformer, count_params, cpu_kernels, get_preset, init_cache
from wcse_jax.sampling import SamplingParams, Sampler, context_length, sampling_layout


def gsm8k_prompt(num_questions: int) -> tuple[str, list[str]]:
  """The 8-shot GSM8K prefix and the first test questions in its format."""
  prompt = few_shot_prompt('gsm8k')
  problems = load_problems('gsm8k', 'test').problems[:num_questions]
  return prompt.prefix, [prompt.format_question(p.question) for p in problems]


def random_model(preset: str, dtype, tokenizer: str = '') -> LoadedModel:
  """A model of `preset`'s size with random weights in `dtype`, sharded like a loaded one,
  with the tokenizer at `tokenizer` (a tokenizer directory or hub id; default: the bundled model's)."""
  config = get_preset(preset)
  mesh = parallel.make_mesh()
  graphdef, params = nnx.split(Transformer(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype))
  params = jax.device_put(params, parallel.param_shardings(params, mesh))
  return LoadedModel(
      config=config, graphdef=graphdef, params=params,
      tokenizer=load_tokenizer(tokenizer or bundled_gguf_path()),
      source=f'{preset} (random weights)', mesh=mesh,
  )


def step_floor(sampler: Sampler, kv_bytes: int, dtype, bandwidth: float, peak: float) -> dict:
  """Bytes and FLOPs of one decode step of the sampler's slots, and the least time it can take.

  A step reads every weight and at least the KV it attends to (each slot's
  positions in view, the shared prefix's once: `RunStats.kv_bytes_needed`,
  whatever the layout reads), and computes 2 x parameters plus, per slot and
  layer, the attention products over its own slots and the prefix's.
  """
  config = sampler.model.config
  # Every float parameter; not the integer copy of the embedding table that
  # lookups read (`Embedder.embedding_bits`: one row per slot and step).
  weights = sum(
      x.size for x in jax.tree.leaves(sampler.model.params) if jnp.issubdtype(x.dtype, jnp.floating)
  ) * jnp.dtype(dtype).itemsize
  row_len, prefix_len = sampler.cache_shape
  seen = lambda kind, n: min(config.sliding_window or n, n) if kind.value == 'local' else n
  attention = sum(
      4 * config.num_heads * config.head_dim * (seen(kind, row_len) + seen(kind, prefix_len))
      for kind in config.layer_kinds
  )
  flops = sampler.num_slots * (2 * count_params(config) + attention)
  floor = max((weights + kv_bytes) / bandwidth, flops / peak)
  return {'weights_bytes': weights, 'kv_cache_bytes': kv_bytes, 'flops': flops, 'seconds': floor,
          'bound': 'memory' if (weights + kv_bytes) / bandwidth >= flops / peak else 'compute'}


def give_back_freed_memory():
  """Frees the last run's buffers and hands the allocator's free memory back to the
  system (glibc keeps large freed blocks), so that free memory counts it again."""
  gc.collect()
  try:
    ctypes.CDLL('libc.so.6').malloc_trim(0)
  except (OSError, AttributeError):
    pass


def run_ours(args, loaded: LoadedModel, prefix, questions, num_slots: int, dtype, layout, yardsticks) -> dict:
  max_len = context_length(loaded.tokenizer, loaded.config, prefix, questions, args.new_tokens)
  # 'paged_xla': pages through the XLA path (views and the cascade) on any backend.
  layout, attention = ('paged', 'xla') if layout == 'paged_xla' else (layout, 'auto')
  sampler = Sampler(
      loaded, max_len=max_len, num_slots=num_slots, chunk_steps=args.chunk_steps, kv_layout=layout,
      attention=attention,
      cache_dtype=jnp.dtype(args.cache_dtype) if args.cache_dtype else None,
      prefix_cache_dtype=jnp.dtype(args.prefix_cache_dtype) if args.prefix_cache_dtype else None,
      fuse_projections=args.fused_projections == 'true',
  )
  params = SamplingParams(temperature=args.temperature, top_k=args.top_k, max_new_tokens=args.new_tokens)
  start = time.perf_counter()  # compiles every shape the timed run uses
  warm_params = dataclasses.replace(params, max_new_tokens=args.chunk_steps)
  list(sampler.sample(prefix, questions, num_samples=1, params=warm_params, seed=1))
  sampler.precompile(prefix, questions, params)
  warmup = time.perf_counter() - start
  start = time.perf_counter()
  completions = list(sampler.sample(prefix, questions, num_samples=args.samples, params=params, seed=0))
  seconds = time.perf_counter() - start
  stats = sampler.last_stats
  profile = None
  if args.profile:  # the same run again under the profiler: the timed one is not slowed by it
    directory = pathlib.Path(args.profile) / f'{jnp.dtype(dtype).name}_{num_slots}_{layout}'
    with jax.profiler.trace(str(directory)):
      list(sampler.sample(prefix, questions, num_samples=args.samples, params=params, seed=0))
    profile = perf.trace_summary(directory)
  generated = sum(c.num_tokens for c in completions)
  computed = sum(c.prompt_tokens_computed for c in completions)
  peak = yardsticks['matmul_peak_flop_per_s'][jnp.dtype(dtype).name]
  kv_bytes = round(stats.kv_bytes_needed_per_step)
  floor = step_floor(sampler, kv_bytes, dtype, yardsticks['bandwidth_bytes_per_s'], peak)
  at_peak = lambda peaks: step_floor(sampler, kv_bytes, dtype, yardsticks['bandwidth_bytes_per_s'],
                                    yardsticks[peaks][jnp.dtype(dtype).name])['seconds']
  # What the same slots read when each held its whole prompt in a dense row.
  dense = jax.eval_shape(lambda: init_cache(loaded.config, num_slots, max_len, sampler.cache_dtype))
  step = stats.decode_seconds / max(stats.decode_steps, 1)
  return {
      'dtype': jnp.dtype(dtype).name,
      'cache_dtype': jnp.dtype(sampler.cache_dtype).name,
      **({'prefix_cache_dtype': sampler.prefix_cache_dtype.name} if sampler.kv_layout == 'dense' else {}),
      'kv_layout': sampler.kv_layout,
      'fused_projections': sampler.model.config.fused_projections,
      **({'page_size': sampler.page_size, 'attention': sampler.attention, 'page_layout': sampler.layout}
         if sampler.kv_layout == 'paged' else {}),
      'num_slots': num_slots,
      'max_len': max_len,
      'seconds': round(seconds, 2),
      'warmup_seconds': round(warmup, 2),
      'generated_tokens': generated,
      'tokens_per_s': round(generated / seconds, 2),
      'prompt_tokens_computed_per_sample': round(computed / len(completions), 2),
      'time_split_seconds': {
          'decode': round(stats.decode_seconds, 2), 'prefill': round(stats.prefill_seconds, 2),
          'host_and_other': round(seconds - stats.decode_seconds - stats.prefill_seconds, 2),
      },
      'decode_steps': stats.decode_steps,
      'decode_step_ms': round(1e3 * step, 1),
      'slot_occupancy': round(stats.tokens / max(stats.slot_steps, 1), 3),
      'tokens_drawn_after_a_stop': stats.wasted_after_stop,
      'roofline': {
          'step_floor_ms': round(1e3 * floor['seconds'], 2), 'bound': floor['bound'],
          'bytes_per_step': {
              'weights': floor['weights_bytes'],
              'kv_cache_needed': floor['kv_cache_bytes'],
              'kv_cache_read': round(stats.kv_bytes_per_step),
              **({'kv_cache_in_pages_named': round(stats.kv_bytes_in_pages_per_step)}
                 if sampler.kv_layout == 'paged' else {}),
              'kv_cache_if_every_row_held_its_whole_prompt': sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(dense)),
          },
          'row_and_prefix_positions': list(sampler.cache_shape),
          'gflop_per_step': round(floor['flops'] / 1e9, 2),
          'decode_loop_fraction': round(floor['seconds'] / step, 4),
          # ... against the floor the best product measured could reach (not the instruction's
          # own peak), and XLA's own matmuls (its peak, not the machine's).
          'decode_loop_fraction_at_product_peak': round(at_peak('product_peak_flop_per_s') / step, 4),
          'decode_loop_fraction_at_xla_matmul_peak': round(at_peak('xla_matmul_peak_flop_per_s') / step, 4),
      },
      **({'profile': profile} if profile else {}),
  }


def export_for_peers(loaded: LoadedModel, root: pathlib.Path) -> pathlib.Path:
  """The bundled model as a float32 transformers directory, for vLLM (made once)."""
  directory = root / 'gemma3-270m-hf'
  if not (directory / 'config.json').exists():
    export_hf(loaded, directory, dtype='float32', overwrite=True)
  return directory


def run_peer(name: str, work: dict, root: pathlib.Path, tmp: pathlib.Path, timeout: int) -> dict:
  """One peer on the workload, in its own environment; its JSON, or why there is none."""
  script = pathlib.Path(__file__).parent / 'peers' / f'{name}_peer.py'
  python = pathlib.Path(sys.executable) if name == 'transformers' else root / name / 'bin' / 'python'
  if not python.exists():
    return {'name': name, 'error': f'not built: run bash benchmarks/peers/setup.sh {name}'}
  path = tmp / f'{name}.json'
  path.write_text(json.dumps(work))
  cores = os.cpu_count() or 1
  env = dict(os.environ, VLLM_CPU_OMP_THREADS_BIND=f'0-{cores - 1}', VLLM_CPU_NUM_OF_RESERVED_CPU='0',
             VLLM_CPU_KVCACHE_SPACE='4', TOKENIZERS_PARALLELISM='false')
  try:
    result = subprocess.run(
        [str(python), str(script), str(path)], capture_output=True, text=True, env=env, cwd=tmp,
        timeout=timeout,
    )
  except subprocess.TimeoutExpired:
    return {'name': name, 'error': f'did not finish in {timeout} s (--peer_timeout)'}
  lines = [line for line in result.stdout.splitlines() if line.startswith('{')]
  if result.returncode or not lines:
    return {'name': name, 'error': f'exit {result.returncode}: {result.stderr.strip()[-800:]}'}
  return json.loads(lines[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--problems', type=int, default=None,
                      help='GSM8K test questions (default: enough for --samples of each to fill the largest '
                           '--num_slots, and at least 2)')
  parser.add_argument('--samples', type=int, default=32, help='samples per problem')
  parser.add_argument('--new_tokens', type=int, default=128)
  parser.add_argument('--temperature', type=float, default=0.7)
  parser.add_argument('--top_k', type=int, default=40)
  parser.add_argument('--num_slots', default='64', help='decode slots; a comma-separated list runs each')
  parser.add_argument('--dtypes', default=None,
                      help='our dtypes to run, comma-separated (default: float32,bfloat16; bfloat16 with --random)')
  parser.add_argument('--random', default='', help='a preset to sample with random weights instead')
  parser.add_argument('--tokenizer', default='',
                      help="--random's tokenizer: a tokenizer directory or hub id (default: the bundled model's)")
  parser.add_argument('--chunk_steps', type=int, default=16)
  parser.add_argument('--fused_projections', default='true', choices=('true', 'false'),
                      help="q, k and v's weights one matrix, gate and up another (`sampling_layout`'s fuse)")
  parser.add_argument('--cache_dtype', default='', help='KV cache dtype (default: the sampler\'s)')
  parser.add_argument('--prefix_cache_dtype', default='',
                      help='dtype of the dense layout\'s shared prefix cache (default: the sampler\'s)')
  parser.add_argument('--kv_layouts', default='auto',
                      help="our KV cache layouts to run, comma-separated: auto, dense, paged, paged_xla")
  parser.add_argument('--profile', default='',
                      help='a folder: each of our runs once more under jax.profiler, its device time by op in the report')
  parser.add_argument('--peers', default=None,
                      help='comma-separated: vllm, llamacpp, transformers (default: transformers; none with --random)')
  parser.add_argument('--peer_timeout', type=int, default=1800, help='seconds before a peer is given up')
  parser.add_argument('--peers_dir', default=os.environ.get('WCSE_JAX_PEERS', '~/.cache/wcse_jax/peers'))
  args = parser.parse_args()
  if args.peers is None:
    args.peers = '' if args.random else 'transformers'
  if args.dtypes is None:  # random weights are for the roofline, which bfloat16 is measured against
    args.dtypes = 'bfloat16' if args.random else 'float32,bfloat16'
  try:
    slots = [int(n) for n in args.num_slots.split(',')]
  except ValueError:
    parser.error(f'--num_slots={args.num_slots!r}: give slot counts, comma-separated')
  if min(slots) < 1 or args.samples < 1 or (args.problems is not None and args.problems < 1):
    parser.error('--num_slots, --samples and --problems must be positive')
  if args.problems is None:  # every slot busy: a run with idle slots measures less than its slots
    args.problems = max(2, -(-max(slots) // args.samples))
  peers = [p for p in args.peers.split(',') if p]
  unknown = set(peers) - {'vllm', 'llamacpp', 'transformers'}
  if unknown:
    parser.error(f'unknown peers {sorted(unknown)}: vllm, llamacpp or transformers')
  if args.random and peers:
    parser.error('--random samples random weights, which the peers do not have: add --peers=')
  if args.tokenizer and not args.random:
    parser.error('--tokenizer is for --random: the bundled model brings its own')

  prefix, questions = gsm8k_prompt(args.problems)
  dtypes = [jnp.dtype(d) for d in args.dtypes.split(',')]
  report = {
      'model': f'{args.random} (random weights)' if args.random else 'gemma3-270m (bundled GGUF)',
      'backend': jax.default_backend(),
      'device': jax.devices()[0].device_kind,
      'cpu_cores': os.cpu_count(),
      'load_average_before': [round(x, 2) for x in os.getloadavg()],
      'workload': {'problems': args.problems, 'samples_per_problem': args.samples, 'new_tokens': args.new_tokens,
                   'temperature': args.temperature, 'top_k': args.top_k, 'num_slots': args.num_slots},
  }
  cpu = jax.default_backend() == 'cpu'
  # On an accelerator the products and reads are timed large enough that launches do not count.
  size = {} if cpu else dict(n=8192)
  xla_read = perf.memory_bandwidth(**({} if cpu else dict(gib=4.0)))
  # Independent of XLA: numpy copies over every core on CPU; torch's device copies on a CUDA GPU.
  host_copy = perf.host_copy_bandwidth() if cpu else None
  torch_copy = None if cpu else perf.torch_device_copy_bandwidth(gib=4.0)
  xla_peaks = {d.name: perf.matmul_peak_flops(dtype=d, **size) for d in dtypes}
  # Independent checks of the peaks: numpy's BLAS (float32, CPU), torch (every dtype; AMX
  # for bfloat16 on CPU, cuBLAS on a CUDA GPU). The floor uses the largest, so a slow XLA
  # kernel cannot make the roofline fraction look better.
  blas_f32 = perf.host_matmul_peak_flops() if cpu else None
  torch_device = 'cpu' if cpu else 'cuda'
  torch_peaks = ({d.name: perf.torch_matmul_peak_flops(d, device=torch_device, **size) for d in dtypes}
                 if cpu or jax.default_backend() == 'gpu' else {})
  # Our own bfloat16 kernel (model.cpu_kernels): it can beat both at the decode's shapes.
  kernel_bf16 = perf.kernel_matmul_peak_flops() if cpu and 'bfloat16' in xla_peaks else None
  # The bfloat16 dot-product instruction alone, from registers: the roof itself, which
  # every product's peak approaches from below (torch's reached 80% of it on a Zen 5).
  instruction_bf16 = perf.instruction_peak_flops() if cpu and 'bfloat16' in xla_peaks else None
  others = {name: (torch_peaks.get(name), blas_f32 if name == 'float32' else None,
                   kernel_bf16 if name == 'bfloat16' else None) for name in xla_peaks}
  independent = {name: max([p for p in others[name] if p], default=0.0) for name in xla_peaks}
  products = {name: max(peak, independent[name]) for name, peak in xla_peaks.items()}
  yardsticks = {
      'bandwidth_bytes_per_s': max(xla_read, host_copy or 0.0, torch_copy or 0.0),
      'matmul_peak_flop_per_s': {
          name: max(peak, instruction_bf16 or 0.0) if name == 'bfloat16' else peak
          for name, peak in products.items()},
      'product_peak_flop_per_s': products,
      'xla_matmul_peak_flop_per_s': xla_peaks,
  }
  report['yardsticks'] = {
      'memory_bandwidth_gb_per_s': {
          'xla_read': round(xla_read / 1e9, 2),
          **({'numpy_copy_all_cores': round(host_copy / 1e9, 2)} if host_copy else {}),
          **({'torch_device_copy': round(torch_copy / 1e9, 2)} if torch_copy else {}),
      },
      'matmul_peak_gflop_per_s': {k: round(v / 1e9, 1) for k, v in xla_peaks.items()},
      'numpy_blas_float32_matmul_gflop_per_s': blas_f32 and round(blas_f32 / 1e9, 1),
      f'torch_{torch_device}_matmul_gflop_per_s': {k: v and round(v / 1e9, 1) for k, v in torch_peaks.items()},
      'our_bfloat16_kernel_gflop_per_s': kernel_bf16 and round(kernel_bf16 / 1e9, 1),
      'bfloat16_instruction_peak_gflop_per_s': instruction_bf16 and round(instruction_bf16 / 1e9, 1),
      # Whether our bfloat16 CPU kernel runs the model's products here, and with which instructions.
      'our_bfloat16_kernel_used': bool(kernel_bf16) and cpu_kernels.chosen(),
      'our_bfloat16_kernel_isa': kernel_bf16 and cpu_kernels.isa(),
      # Whether our batched float32 kernel runs the attention over a float32 cache.
      'our_float32_attention_kernel_used': bool(kernel_bf16) and cpu_kernels.chosen('f32_batched'),
      'floor_uses': ('the largest bandwidth (XLA read; numpy copy on CPU, torch copy on a GPU) and, per '
                     'dtype, the largest matmul peak (XLA, numpy BLAS, torch, our bfloat16 CPU kernel) '
                     'or, for bfloat16 on CPU, the dot-product instruction\'s own peak where larger'),
  }
  print(json.dumps({'yardsticks': report['yardsticks']}), file=sys.stderr, flush=True)
  runs = []
  for dtype in dtypes:
    loaded = None  # the last dtype's weights go before the next are made
    loaded = random_model(args.random, dtype, args.tokenizer) if args.random else load_model('gemma3-270m', dtype=dtype)
    loaded = sampling_layout(loaded, fuse=args.fused_projections == 'true')  # once, so that no sampler holds a second copy of the weights
    for n in slots:
      for layout in args.kv_layouts.split(','):
        runs.append(run_ours(args, loaded, prefix, questions, n, dtype, layout, yardsticks))
        # Each run as it ends, on stderr: a run cut short still leaves the ones before it.
        print(json.dumps({'run': {k: v for k, v in runs[-1].items() if k != 'profile'}}), file=sys.stderr, flush=True)
        give_back_freed_memory()  # the next run's page pools are sized from free memory
  report['ours'] = runs
  if peers:
    root = pathlib.Path(args.peers_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    work = {
        'prefix': prefix, 'questions': questions, 'prompts': [prefix + q for q in questions],
        'samples': args.samples, 'new_tokens': args.new_tokens, 'temperature': args.temperature,
        'top_k': args.top_k, 'num_seqs': slots[0], 'seed': 0,
        'gguf': str(bundled_gguf_path()), 'max_len': runs[0]['max_len'],
    }
    if 'vllm' in peers:
      work['hf_dir'] = str(export_for_peers(load_model('gemma3-270m', dtype=jnp.float32), root))
    with tempfile.TemporaryDirectory() as tmp:
      report['peers'] = [run_peer(name, work, root, pathlib.Path(tmp), args.peer_timeout) for name in peers]
    measured = [p for p in report['peers'] if 'tokens_per_s' in p]
    if measured:
      fastest = max(measured, key=lambda p: p['tokens_per_s'])
      best = max(runs, key=lambda r: r['tokens_per_s'])
      report['fastest_peer'] = {'name': fastest['name'], 'tokens_per_s': fastest['tokens_per_s']}
      report['ours_best'] = {'dtype': best['dtype'], 'num_slots': best['num_slots'], 'tokens_per_s': best['tokens_per_s']}
      report['ratio_to_fastest_peer'] = round(best['tokens_per_s'] / fastest['tokens_per_s'], 3)
  report['load_average_after'] = [round(x, 2) for x in os.getloadavg()]
  print(json.dumps(report, indent=1))


if __name__ == '__main__':
  main()
