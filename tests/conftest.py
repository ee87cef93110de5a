"""Shared fixtures: tiny random Gemma 1/2/3 models saved by transformers."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope='module')
def _free_compiled_programs():
  """Frees each module's compiled XLA programs when it ends. XLA:CPU maps every
  program's code into memory regions of its own; the whole suite in one process
  otherwise runs past the kernel's limit on a process's mappings
  (`vm.max_map_count`, 65530 by default), where the next compile aborts."""
  yield
  import gc  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top

  from wcse_jax.sampling import kv  # pylint: disable=g-import-not-at-top

  kv.clear_compiled()
  jax.clear_caches()
  gc.collect()

# Small enough to build in a second, big enough to exercise every feature:
# grouped-query attention, a sliding window (6) shorter than the test
# sequences, a partial last period of layers for Gemma 3 (8 = 6 + 2), soft-caps,
# a query scale that is not head_dim, and linear RoPE scaling on global layers.
TINY = dict(
    vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=8,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
)


def make_tiny_hf_model(version: int, directory: pathlib.Path, **overrides):
  """Saves a random transformers Gemma `version` model; returns the torch model."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  settings = {**TINY, **overrides}
  if version == 1:
    config, cls = transformers.GemmaConfig(**settings), transformers.GemmaForCausalLM
  elif version == 2:
    config = transformers.Gemma2Config(**settings, sliding_window=6, query_pre_attn_scalar=20)
    cls = transformers.Gemma2ForCausalLM
  else:
    config = transformers.Gemma3TextConfig(
        **settings, sliding_window=6, query_pre_attn_scalar=20,
        rope_parameters={
            'full_attention': {'rope_type': 'linear', 'factor': 8.0, 'rope_theta': 1e6},
            'sliding_attention': {'rope_type': 'default', 'rope_theta': 1e4},
        },
    )
    cls = transformers.Gemma3ForCausalLM
  torch.manual_seed(version)
  model = cls(config).eval()
  with torch.no_grad():  # random norm scales, so a (1 + scale) slip shows
    for name, param in model.named_parameters():
      if 'norm' in name:
        param.normal_(0.0, 0.5)
      elif 'embed' in name:
        param.normal_(0.0, 1.0)
  model.save_pretrained(directory)
  return model


@pytest.fixture(scope='session')
def tiny_hf(tmp_path_factory):
  """version -> (directory, torch model) for tiny random Gemma 1, 2 and 3."""
  out = {}
  for version in (1, 2, 3):
    directory = tmp_path_factory.mktemp(f'gemma{version}')
    out[version] = (directory, make_tiny_hf_model(version, directory))
  return out


RAGGED_LENGTHS = (20, 13, 7)  # right-padded rows; 20 is longer than the tiny window (6)


def ragged_batch(seed=0, vocab=300):
  """(tokens, input_mask, positions) of right-padded rows of random tokens."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  lengths = RAGGED_LENGTHS
  tokens = rng.integers(1, vocab, (len(lengths), max(lengths))).astype(np.int32)
  mask = np.arange(max(lengths))[None] < np.array(lengths)[:, None]
  positions = np.broadcast_to(np.arange(max(lengths)), tokens.shape).astype(np.int32)
  return tokens, mask, positions


def run_with_devices(code: str, num_devices: int = 4, timeout: int = 600) -> str:
  """Runs python `code` in a subprocess that sees `num_devices` CPU devices."""
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={num_devices}')
  result = subprocess.run(
      [sys.executable, '-c', code], env=env, cwd=REPO, capture_output=True, text=True,
      timeout=timeout,
  )
  if result.returncode:
    raise AssertionError(f'subprocess failed:\n{result.stdout}\n{result.stderr[-3000:]}')
  return result.stdout


def make_tiny_tokenizer(directory: pathlib.Path, vocab_size: int = 400):
  """Trains a small Gemma-style SentencePiece BPE model on GSM8K questions and
  saves it as a transformers Gemma tokenizer in `directory`."""
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  from wcse_jax.data import load_problems  # pylint: disable=g-import-not-at-top

  directory.mkdir(parents=True, exist_ok=True)
  corpus = directory / 'corpus.txt'
  corpus.write_text('\n'.join(p.question for p in load_problems('gsm8k', 'train').problems[:500]))
  spm.SentencePieceTrainer.train(
      input=str(corpus), model_prefix=str(directory / 'tokenizer'), vocab_size=vocab_size,
      model_type='bpe', byte_fallback=True, add_dummy_prefix=False, minloglevel=2,
      pad_id=0, eos_id=1, bos_id=2, unk_id=3,
      pad_piece='<pad>', eos_piece='<eos>', bos_piece='<bos>', unk_piece='<unk>',
  )
  corpus.unlink()
  tokenizer = transformers.GemmaTokenizer.from_pretrained(str(directory), add_bos_token=True)
  tokenizer.save_pretrained(directory)
  return tokenizer


@pytest.fixture(scope='session')
def tiny_model_dir(tmp_path_factory):
  """A tiny random Gemma 3 with a real (small) tokenizer: loadable by name like any model."""
  directory = tmp_path_factory.mktemp('tiny-gemma3')
  make_tiny_hf_model(3, directory, vocab_size=400, max_position_embeddings=4096)
  make_tiny_tokenizer(directory)
  return directory
