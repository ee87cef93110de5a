r"""Configs for the compute-matched sampling run, `python -m wcse_jax.sample`.

    python -m wcse_jax.sample --budget=high
        `auto`: `local` on a machine without an accelerator, else `paper_math`.
    python -m wcse_jax.sample --config=configs/sample.py:local --budget=high
        The bundled Gemma 3 270M (WC) at the count compute-matched to Gemma 3 1B
        (SE, 37 vs 10 samples), 6 GSM8K test problems, graded: about 3 minutes on
        2 CPU cores, works offline.
    python -m wcse_jax.sample --config=configs/sample.py:paper_math --budget=high
        Gemma2-9B (WC, 30 samples) vs Gemma2-27B (SE, 10 samples) on the 7,500
        MATH train problems, as in Bansal et al. (2024). Needs the hub weights (or
        --wc / --se paths); 7,500 x 30 = 225k WC and 7,500 x 10 = 75k SE completions
        of up to 512 tokens (the token limit is our choice).
    python -m wcse_jax.sample --config=configs/sample.py:paper_gsm8k --budget=low
        The same models on the 7,473 GSM8K train problems.

Every value can be overridden by the flag of the same name (--limit=100, ...).

What the paper states and what is ours: the models, datasets, sample counts
(1 vs 3 and 10 vs 30), compute matching by 27B/9B = 3 and temperature 0.7 are
the paper's; top-k 40, top-p 1, min-p 0, 512 new tokens, the seed and every
throughput setting are our choices (the paper does not state them).
"""

import ml_collections


def get_config(arg: str = 'auto') -> ml_collections.ConfigDict:
  # `auto` holds `local`'s values under the name 'auto'; the run picks `local` or
  # `paper_math` once JAX is up (looking at the backend here, while flags are parsed,
  # would start it before a multi-host job may join: see wcse_jax.sample.settings).
  c = ml_collections.ConfigDict()
  c.name = arg
  arg = 'local' if arg == 'auto' else arg
  c.wc = 'gemma2-9b'  # preset, path or hub id
  c.se = 'gemma2-27b'
  c.sample_se = 'auto'  # 'auto': when the SE weights can be loaded; 'yes' or 'no'
  c.budget = 'high'  # low (S_SE = 1), high (S_SE = 10), or an integer S_SE
  c.match = 'compute'  # compute | price | number
  c.params_from = 'label'  # P for compute matching: size labels (27B/9B = 3) or exact counts
  c.wc_price = 0.3  # price per token (any unit) for --match=price; the paper's 0.3 vs 10.5
  c.se_price = 10.5
  c.dataset = 'math'  # math | gsm8k | math500
  c.split = 'train'  # the paper samples SFT data for the train problems
  c.data_source = 'bundled'  # bundled | hf | tfds | path to a JSONL file
  c.limit = 0  # first N problems (0: all)
  c.output_dir = ''  # default: runs/<config name>-<dataset>-<budget>
  c.seed = 0
  # Sampling: temperature 0.7 as in the paper; the rest are our choices (the paper states none).
  c.temperature = 0.7
  c.top_k = 40  # our choice
  c.top_p = 1.0  # our choice (off)
  c.min_p = 0.0  # our choice (off)
  c.max_new_tokens = 512  # our choice
  # Throughput (our choices); on CPU in float32 these may change when a run resumes
  # without changing its results; elsewhere a resumed run keeps them (see README).
  c.num_slots = 256  # samples decoded together per host
  # Weights: 'auto' is float32 on CPU (exact) and bfloat16 on GPU/TPU; bfloat16 on CPU decodes
  # about 1.4x faster (the KV cache stays float32 there).
  c.dtype = 'auto'
  c.prefill_rows = 16
  c.chunk_steps = 32
  # KV cache: 'dense' rows (the prefix read once per step for all slots) or 'paged' (page
  # tables; JAX's Pallas kernels on GPU/TPU, which read the prefix once per slot); 'auto' is
  # dense until a measurement on an accelerator says otherwise. page_size: positions per page.
  c.kv_layout = 'auto'
  c.page_size = 16
  c.mesh_model = 0  # tensor-parallel degree; 0 picks the smallest that fits the weights
  c.grader_workers = 0  # 0: one per core, at most 8
  c.flush_every = 64  # samples graded and written together (and at least every 5 s)
  # Allocation (beyond the paper): 'uniform' draws S samples of every problem; 'adaptive' spends
  # the same FLOPs in rounds of round_samples per problem, a problem stopping once it has
  # stop_after_correct correct samples (wcse_jax/sampling/allocation.py).
  c.allocation = 'uniform'
  c.stop_after_correct = 4
  c.round_samples = 4

  if arg == 'local':
    c.wc = 'gemma3-270m'  # bundled: no download
    c.se = 'gemma3-1b'  # only its size is needed: the WC count is matched to it
    c.sample_se = 'no'
    c.dataset = 'gsm8k'
    c.split = 'test'
    c.limit = 6  # 6 problems x 37 samples: about 3 minutes on 2 CPU cores
    c.max_new_tokens = 192  # GSM8K solutions take about 100 tokens
    c.num_slots = 64
    c.prefill_rows = 4
    c.chunk_steps = 16
    c.mesh_model = 1
  elif arg == 'paper_gsm8k':
    c.dataset = 'gsm8k'
  elif arg != 'paper_math':
    raise ValueError(f'Unknown config {arg!r}: auto, local, paper_math or paper_gsm8k.')
  return c
