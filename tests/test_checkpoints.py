"""Kaggle/Flax trees and our Orbax checkpoints load to the reference's logits;
bad input ends in one clear sentence."""

import json
import os
import shutil
import subprocess
import sys
import time

import gguf
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import torch

from conftest import REPO, make_tiny_hf_model
from wcse_jax.checkpoints import CheckpointError, build_state, load_model, save_model
from wcse_jax.checkpoints.hf import config_from_hf
from wcse_jax.checkpoints.kaggle import kaggle_reader
from wcse_jax import parallel
from wcse_jax.model import UnknownModelError
from flax import nnx


def _logits(model, seed=0):
  tokens = np.random.default_rng(seed).integers(1, 300, (2, 12)).astype(np.int32)
  positions = np.broadcast_to(np.arange(12), tokens.shape)
  return np.asarray(model(jnp.asarray(tokens), jnp.asarray(positions))[0]), tokens


def _reference_logits(reference, tokens):
  with torch.no_grad():
    return reference(input_ids=torch.tensor(tokens).long()).logits.numpy()


def _to_kaggle_tree(reference, version, num_heads, num_kv_heads, head_dim):
  """The google-deepmind/gemma parameter layout, built from transformers' weights."""
  sd = {k: v.numpy() for k, v in reference.state_dict().items()}
  layers = {}
  for i in range(reference.config.num_hidden_layers):
    p = lambda name: sd[f'model.layers.{i}.{name}.weight']
    d = p('self_attn.q_proj').shape[1]
    q = p('self_attn.q_proj').reshape(num_heads, head_dim, d).transpose(0, 2, 1)
    k = p('self_attn.k_proj').reshape(num_kv_heads, head_dim, d).transpose(0, 2, 1)
    v = p('self_attn.v_proj').reshape(num_kv_heads, head_dim, d).transpose(0, 2, 1)
    attn = {'attn_vec_einsum': {'w': p('self_attn.o_proj').reshape(d, num_heads, head_dim).transpose(1, 2, 0)}}
    if num_kv_heads == num_heads:
      attn['qkv_einsum'] = {'w': np.stack([q, k, v])}
    else:
      attn['q_einsum'] = {'w': q}
      attn['kv_einsum'] = {'w': np.stack([k, v])}
    gate, up = p('mlp.gate_proj'), p('mlp.up_proj')  # [F, D]
    gating = np.stack([gate, up]) if version >= 2 else np.stack([gate.T, up.T])
    layer = {
        'attn': attn,
        'mlp': {'gating_einsum': gating, 'linear': p('mlp.down_proj').T},
        'pre_attention_norm': {'scale': p('input_layernorm')},
    }
    if version >= 2:
      layer['post_attention_norm'] = {'scale': p('post_attention_layernorm')}
      layer['pre_ffw_norm'] = {'scale': p('pre_feedforward_layernorm')}
      layer['post_ffw_norm'] = {'scale': p('post_feedforward_layernorm')}
    else:
      layer['pre_ffw_norm'] = {'scale': p('post_attention_layernorm')}
    layers[f'layer_{i}'] = layer
  return {'transformer': {
      'embedder': {'input_embedding': sd['model.embed_tokens.weight']},
      'final_norm': {'scale': sd['model.norm.weight']},
      **layers,
  }}


@pytest.mark.parametrize('version,num_kv_heads', [(1, 4), (2, 2)])
def test_kaggle_tree_matches_transformers(tmp_path, version, num_kv_heads):
  hf_dir = tmp_path / 'hf'
  reference = make_tiny_hf_model(version, hf_dir, num_key_value_heads=num_kv_heads)
  config = config_from_hf(json.loads((hf_dir / 'config.json').read_text()), name='tiny')
  tree = _to_kaggle_tree(reference, version, config.num_heads, num_kv_heads, config.head_dim)
  with ocp.PyTreeCheckpointer() as checkpointer:
    checkpointer.save(tmp_path / 'kaggle', tree)
  graphdef, params = build_state(
      config, kaggle_reader(tmp_path / 'kaggle', config), mesh=parallel.make_mesh(),
      dtype=jnp.float32, param_dtype=jnp.float32,
  )
  ours, tokens = _logits(nnx.merge(graphdef, params))
  assert np.abs(ours - _reference_logits(reference, tokens)).max() < 1e-4


def test_orbax_save_and_restore(tiny_hf, tmp_path):
  directory, reference = tiny_hf[2]
  loaded = load_model(str(directory), dtype=jnp.float32, with_tokenizer=False)
  save_model(tmp_path / 'ckpt', loaded)
  restored = load_model(str(tmp_path / 'ckpt'), dtype=jnp.float32, with_tokenizer=False)
  assert restored.config == loaded.config
  ours, tokens = _logits(restored.model)
  np.testing.assert_array_equal(ours, _logits(loaded.model)[0])
  assert np.abs(ours - _reference_logits(reference, tokens)).max() < 1e-4


def _copy(tiny_hf, tmp_path, version=2):
  target = tmp_path / 'model'
  shutil.copytree(tiny_hf[version][0], target)
  return target


def test_unknown_model_name():
  with pytest.raises(UnknownModelError, match="Unknown model 'gemma9-xl': not a preset \(gemma-2b"):
    load_model('gemma9-xl')


def test_config_of_a_hub_id_reads_no_weights(monkeypatch):
  from wcse_jax.checkpoints import config_of  # pylint: disable=g-import-not-at-top
  from wcse_jax.model import get_preset  # pylint: disable=g-import-not-at-top

  monkeypatch.setenv('HF_HUB_OFFLINE', '1')
  assert config_of('google/gemma-2-9b') == get_preset('gemma2-9b')  # a preset's hub id: no download
  with pytest.raises(CheckpointError, match="Could not get the config of 'someorg/some-model' from the"):
    config_of('someorg/some-model')
  with pytest.raises(UnknownModelError, match="Unknown model 'gemma9-xl': not a preset"):
    config_of('gemma9-xl')


def test_missing_weight_files(tiny_hf, tmp_path):
  target = _copy(tiny_hf, tmp_path)
  (target / 'model.safetensors').unlink()
  with pytest.raises(CheckpointError, match='no model.safetensors'):
    load_model(str(target), with_tokenizer=False)


def test_missing_shard(tiny_hf, tmp_path):
  target = _copy(tiny_hf, tmp_path)
  (target / 'model.safetensors').rename(target / 'model-00001-of-00002.safetensors')
  weight_map = {'model.embed_tokens.weight': 'model-00002-of-00002.safetensors'}
  (target / 'model.safetensors.index.json').write_text(json.dumps({'weight_map': weight_map}))
  with pytest.raises(CheckpointError, match='shard model-00002-of-00002.safetensors .* missing'):
    load_model(str(target), with_tokenizer=False)


def test_missing_tensor(tiny_hf, tmp_path):
  from safetensors.numpy import load_file, save_file  # pylint: disable=g-import-not-at-top

  target = _copy(tiny_hf, tmp_path)
  tensors = load_file(target / 'model.safetensors')
  del tensors['model.layers.3.mlp.up_proj.weight']
  save_file(tensors, target / 'model.safetensors')
  with pytest.raises(CheckpointError, match='model.layers.3.mlp.up_proj.weight is missing'):
    load_model(str(target), with_tokenizer=False)


def test_shapes_that_do_not_fit_the_config(tiny_hf, tmp_path):
  target = _copy(tiny_hf, tmp_path)
  config = json.loads((target / 'config.json').read_text())
  config['intermediate_size'] = 128
  (target / 'config.json').write_text(json.dumps(config))
  with pytest.raises(CheckpointError, match=r'mlp.\w+_proj has shape .* expects'):
    load_model(str(target), with_tokenizer=False)


def test_gguf_of_another_architecture(tmp_path):
  path = tmp_path / 'llama.gguf'
  writer = gguf.GGUFWriter(str(path), 'llama')
  writer.add_block_count(1)
  writer.add_tensor('token_embd.weight', np.zeros((4, 8), np.float32))
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  with pytest.raises(CheckpointError, match="architecture is 'llama', not a Gemma"):
    load_model(str(path))


def test_hub_id_offline_fails_fast_and_clearly(monkeypatch):
  monkeypatch.setenv('HF_HUB_OFFLINE', '1')
  start = time.monotonic()
  with pytest.raises(CheckpointError, match='Could not get .* hub .*bundled gemma3-270m'):
    load_model('someone/not-a-cached-model')
  assert time.monotonic() - start < 30


def test_cli_prints_one_line_errors():
  result = subprocess.run(
      [sys.executable, '-m', 'wcse_jax.model', 'describe', 'gemma9-xl'],
      capture_output=True, text=True, cwd=REPO, env=dict(os.environ, HF_HUB_OFFLINE='1'),
  )
  assert result.returncode == 1
  assert result.stderr.strip().count('\n') == 0
  assert result.stderr.startswith("error: Unknown model 'gemma9-xl': not a preset")


def test_kaggle_sentencepiece_tokenizer(tmp_path):
  """A Kaggle checkpoint's tokenizer.model gives SentencePiece's own ids, BOS first."""
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  from wcse_jax.checkpoints import load_tokenizer  # pylint: disable=g-import-not-at-top

  corpus = tmp_path / 'corpus.txt'
  corpus.write_text('\n'.join(f'Janet has {n} ducks and sells {n * 3} eggs.' for n in range(200)))
  spm.SentencePieceTrainer.train(
      input=str(corpus), model_prefix=str(tmp_path / 'tokenizer'), vocab_size=400,
      model_type='bpe', byte_fallback=True, add_dummy_prefix=False, minloglevel=2,
      pad_id=0, eos_id=1, bos_id=2, unk_id=3,
      pad_piece='<pad>', eos_piece='<eos>', bos_piece='<bos>', unk_piece='<unk>',
  )
  (tmp_path / 'ckpt').mkdir()
  tokenizer = load_tokenizer(tmp_path / 'ckpt', kind='kaggle')
  text = 'Janet has 12 ducks and sells 36 eggs.'
  expected = spm.SentencePieceProcessor(model_file=str(tmp_path / 'tokenizer.model')).encode(text)
  assert tokenizer(text)['input_ids'] == [2, *expected]
