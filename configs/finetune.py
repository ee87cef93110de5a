r"""Configs for supervised finetuning on sampled solutions, `python -m wcse_jax.finetune`.

    python -m wcse_jax.sample --split=train --limit=40 --budget=2 --output_dir=runs/demo
    python -m wcse_jax.finetune --config=configs/finetune.py:local
        The bundled Gemma 3 270M on the SFT set of a local sampling run of GSM8K
        train problems (the first command: about 6 minutes, a handful of
        examples), 30 steps of 2 x 512 tokens, validated three times on 20
        held-out GSM8K train problems: about 15 minutes on 2 CPU cores.
    python -m wcse_jax.finetune --config=configs/finetune.py:student-wc-high
        The paper's three paradigms, PARADIGM-DATA-BUDGET:
          student  Gemma-7B learns from Gemma2-9B (wc) or Gemma2-27B (se) data:
                   knowledge distillation
          wc       Gemma2-9B on its own data (self-improvement) or on Gemma2-27B's
                   (distillation)
          se       Gemma2-27B on Gemma2-9B's data (weak-to-strong improvement) or
                   on its own (self-improvement)
        on the SFT sets of `configs/sample.py:paper_math` runs at the low or high
        budget. Gemma2-27B needs a v4-32 or larger slice (or 8 x 80 GB GPUs) with
        FSDP; Gemma-7B and Gemma2-9B fit a v4-8.

`num_evals` evenly spaced checkpoints are scored by greedy pass@1 on held-out
train problems and the best is kept and exported (checkpoint selection on
held-out data, as the paper describes); sweep --learning_rate over
`learning_rate_grid` and keep the best run on validation.

What the paper states and what is ours: the three paradigms, their models and
their data are the paper's. The optimisation settings below (epochs, learning
rates and their grid, batch size, sequence length, warmup, the validation set's
size, num_evals) are our choices: the paper does not state values we could
reproduce exactly, so read them as defaults to sweep, not as its settings.
"""

import ml_collections

_PARADIGM_MODELS = {'student': 'gemma-7b', 'wc': 'gemma2-9b', 'se': 'gemma2-27b'}
_DATA_MODELS = {'wc': 'wc-gemma2-9b', 'se': 'se-gemma2-27b'}


def get_config(arg: str = 'local') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = arg
  c.model = 'gemma3-270m'  # preset, path or hub id of the model to finetune
  # SFT JSONL (question/solution). Sampled from train problems: training on the default
  # run's GSM8K test samples would contaminate a test evaluation.
  c.data = 'runs/demo/sft/wc-gemma3-270m.jsonl'
  c.dataset = 'gsm8k'  # answer format of the data and of validation
  c.output_dir = ''  # default: <sampling run of data>/finetune/<config name>
  c.seed = 0
  # Validation: greedy pass@1 on held-out problems, excluded from the training data.
  c.val_split = 'train'
  c.val_count = 20  # the last N problems of the split
  c.val_max_new_tokens = 256
  c.num_evals = 10  # evenly spaced scored checkpoints; the best is exported
  # Data and optimisation.
  c.seq_len = 512
  c.batch_rows = 2  # packed rows per update
  c.accumulation = 1  # micro-batches per update (batch_rows must divide by it)
  c.epochs = 3
  c.steps = 30  # 0: epochs x batches per epoch
  c.learning_rate = 1e-5
  c.learning_rate_grid = (5e-6, 1e-5, 2e-5)
  c.warmup_steps = 5
  c.weight_decay = 0.0
  c.max_grad_norm = 1.0
  # Memory and speed.
  c.compute_dtype = 'float32'  # bfloat16 on accelerators, float32 master weights either way
  c.remat = True  # recompute each layer in the backward pass
  c.loss_chunk = 256  # positions turned into logits at a time
  c.mesh_model = 1  # tensor-parallel degree; the rest of the devices shard data (FSDP)
  c.fsdp = True
  # Checkpoints and logs.
  c.save_every = 10
  c.keep_last = 2
  c.log_every = 5

  if arg == 'local':
    c.num_evals = 3  # each validation decodes 20 solutions: a minute or two on a CPU
    return c
  try:
    paradigm, data, budget = arg.split('-')
    c.model = _PARADIGM_MODELS[paradigm]
    c.data = f'runs/paper_math-math-{budget}/sft/{_DATA_MODELS[data]}.jsonl'
  except (ValueError, KeyError):
    raise ValueError(
        f'Unknown config {arg!r}: local, or PARADIGM-DATA-BUDGET with PARADIGM in '
        'student|wc|se, DATA in wc|se and BUDGET in low|high.'
    ) from None
  c.dataset = 'math'
  c.val_count = 500
  c.val_max_new_tokens = 512
  c.seq_len = 1024  # a MATH problem and its solution fit in 1,024 tokens
  c.batch_rows = 32
  c.accumulation = 1
  c.steps = 0  # the epochs decide
  c.learning_rate = 1e-6
  c.learning_rate_grid = (5e-7, 1e-6, 2e-6)
  c.warmup_steps = 50
  c.compute_dtype = 'bfloat16'
  c.mesh_model = 4 if paradigm == 'se' else 1
  c.save_every = 200
  c.log_every = 10
  return c
