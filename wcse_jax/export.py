r"""python -m wcse_jax.export MODEL OUT_DIR: a model as a Hugging Face transformers directory.

    python -m wcse_jax.export runs/paper_math-math-high/finetune/wc-wc-high/best exports/gemma2-9b-sft
    python -m wcse_jax.export gemma3-270m exports/gemma3-270m --dtype=float32 --overwrite
    python -m wcse_jax.export gemma2-9b exports/gemma2-9b --weights=/data/kaggle/gemma2-9b

MODEL is anything `load_model` takes: a preset, one of our Orbax checkpoints,
a GGUF file, a transformers directory or a hub id (--weights and --tokenizer
as in `load_model`). OUT_DIR gets config.json, model.safetensors (for big
models, 5 GB shards and model.safetensors.index.json) and the tokenizer, so

    transformers.AutoModelForCausalLM.from_pretrained('exports/gemma2-9b-sft')

gives our logits and any server that reads transformers directories can serve it. The
weights are loaded sharded over every device (FSDP), in the export dtype, and
written one tensor at a time, so a model exports wherever it fits.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
from absl import app, flags

from wcse_jax import cli
from wcse_jax.checkpoints import load_model
from wcse_jax.checkpoints.export_hf import DTYPES, check_export_dir, export_hf

_DTYPE = flags.DEFINE_enum('dtype', 'bfloat16', list(DTYPES), 'Dtype of the exported weights.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace the weights and config in a non-empty OUT_DIR.')
_WEIGHTS = flags.DEFINE_string('weights', None, 'Weights for a preset MODEL (needed for Kaggle trees).')
_TOKENIZER = flags.DEFINE_string('tokenizer', None, 'Where the tokenizer comes from, if not from MODEL.')


def main(argv: list[str]) -> None:
  if len(argv) != 3:
    raise app.UsageError('usage: python -m wcse_jax.export MODEL OUT_DIR [--dtype=bfloat16|float32] [--overwrite]')
  model, out_dir = argv[1:]
  check_export_dir(out_dir, overwrite=_OVERWRITE.value)  # before minutes of loading
  loaded = load_model(
      model, dtype=getattr(jnp, _DTYPE.value), fsdp=True, weights=_WEIGHTS.value,
      tokenizer=_TOKENIZER.value,
  )
  path = export_hf(loaded, out_dir, dtype=_DTYPE.value, overwrite=_OVERWRITE.value)
  print(f'{model} ({loaded.config.name}, {_DTYPE.value}) -> {path}', file=sys.stderr)


if __name__ == '__main__':
  cli.run(main, multihost=True)
