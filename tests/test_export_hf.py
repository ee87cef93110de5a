"""Exports to transformers directories load in transformers (and in our loader) to our logits."""

import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from conftest import REPO, ragged_batch
from wcse_jax.checkpoints import CheckpointError, load_model
from wcse_jax.checkpoints.export_hf import INDEX_FILE, export_hf, hf_config
from wcse_jax.checkpoints.hf import config_from_hf
from wcse_jax.model import PRESETS, get_preset



def _our_logits(loaded, tokens, mask, positions):
  logits, _ = loaded.model(jnp.asarray(tokens), jnp.asarray(positions), input_mask=jnp.asarray(mask))
  return np.asarray(logits)


def _transformers_logits(directory, tokens, mask):
  model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
  with torch.no_grad():
    return model(
        input_ids=torch.tensor(tokens).long(), attention_mask=torch.tensor(mask).long()
    ).logits.numpy()


@pytest.mark.parametrize('version', [1, 2, 3])
def test_export_gives_our_logits_in_transformers_and_back(tiny_hf, tmp_path, version):
  loaded = load_model(str(tiny_hf[version][0]), dtype=jnp.float32, with_tokenizer=False)
  out = export_hf(loaded, tmp_path / 'export', dtype='float32')
  assert sorted(p.name for p in out.iterdir()) == ['config.json', 'model.safetensors']
  tokens, mask, positions = ragged_batch()
  ours = _our_logits(loaded, tokens, mask, positions)

  theirs = _transformers_logits(out, tokens, mask)
  assert np.abs(ours[mask]).max() > 1.0  # logits large enough to mean something
  assert np.abs(theirs - ours)[mask].max() < 1e-4

  again = load_model(str(out), dtype=jnp.float32, with_tokenizer=False)
  assert again.config == loaded.config.replace(name=str(out))
  np.testing.assert_array_equal(_our_logits(again, tokens, mask, positions), ours)


def test_sharded_export_loads_everywhere(tiny_hf, tmp_path):
  directory, reference = tiny_hf[3]
  loaded = load_model(str(directory), dtype=jnp.float32, with_tokenizer=False)
  out = export_hf(loaded, tmp_path / 'export', dtype='float32', max_shard_bytes=100_000)
  weight_map = json.loads((out / INDEX_FILE).read_text())['weight_map']
  shards = sorted(p.name for p in out.glob('model-*.safetensors'))
  assert len(shards) > 2 and sorted(set(weight_map.values())) == shards

  model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
  expected = reference.state_dict()
  assert model.state_dict().keys() == expected.keys()
  for name, tensor in model.state_dict().items():
    torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)
  tokens, mask, positions = ragged_batch(seed=1)
  again = load_model(str(out), dtype=jnp.float32, with_tokenizer=False)
  np.testing.assert_array_equal(
      _our_logits(again, tokens, mask, positions), _our_logits(loaded, tokens, mask, positions)
  )


def test_bfloat16_export_is_our_weights_rounded(tiny_hf, tmp_path):
  directory, reference = tiny_hf[2]
  loaded = load_model(str(directory), dtype=jnp.float32, with_tokenizer=False)
  out = export_hf(loaded, tmp_path / 'export')
  assert json.loads((out / 'config.json').read_text())['dtype'] == 'bfloat16'
  model = transformers.AutoModelForCausalLM.from_pretrained(out)
  for name, tensor in reference.state_dict().items():
    assert model.state_dict()[name].dtype == torch.bfloat16
    torch.testing.assert_close(model.state_dict()[name], tensor.to(torch.bfloat16), rtol=0, atol=0)


@pytest.mark.parametrize('name', list(PRESETS))
def test_every_preset_config_reads_back_through_transformers(tmp_path, name):
  preset = get_preset(name)
  (tmp_path / 'config.json').write_text(json.dumps(hf_config(preset)))
  read_back = transformers.AutoConfig.from_pretrained(tmp_path).to_dict()
  assert config_from_hf(read_back, name=name) == preset.replace(hub_id=None)


def test_refuses_what_it_cannot_write(tiny_hf, tmp_path):
  loaded = load_model(str(tiny_hf[1][0]), dtype=jnp.float32, with_tokenizer=False)
  with pytest.raises(CheckpointError, match='cannot express.*attn_logit_softcap'):
    hf_config(loaded.config.replace(attn_logit_softcap=50.0))
  with pytest.raises(CheckpointError, match='Unknown export dtype'):
    export_hf(loaded, tmp_path / 'a', dtype='float16')
  (tmp_path / 'b').mkdir()
  (tmp_path / 'b' / 'notes.txt').write_text('mine')
  with pytest.raises(CheckpointError, match='not empty; pass overwrite=True'):
    export_hf(loaded, tmp_path / 'b')
  # Overwriting a sharded export with a single file leaves no stale shards or index.
  export_hf(loaded, tmp_path / 'b', dtype='float32', overwrite=True, max_shard_bytes=100_000)
  export_hf(loaded, tmp_path / 'b', dtype='float32', overwrite=True)
  assert sorted(p.name for p in (tmp_path / 'b').iterdir()) == ['config.json', 'model.safetensors', 'notes.txt']


def _export_cli(*args):
  return subprocess.run(
      [sys.executable, '-m', 'wcse_jax.export', *map(str, args)],
      cwd=REPO, capture_output=True, text=True, timeout=300,
  )


def test_cli_exports_the_tokenizer(tiny_model_dir, tmp_path):
  out = tmp_path / 'export'
  result = _export_cli(tiny_model_dir, out, '--dtype=float32')
  assert result.returncode == 0, result.stderr[-3000:]

  ours = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
  exported = transformers.AutoTokenizer.from_pretrained(out)
  text = 'Natalia sold clips to 48 of her friends in April, and then she sold half as many.'
  assert exported(text).input_ids == ours(text).input_ids
  config = json.loads((out / 'config.json').read_text())
  assert (config['bos_token_id'], config['eos_token_id'], config['pad_token_id']) == (
      ours.bos_token_id, ours.eos_token_id, ours.pad_token_id
  )

  again = _export_cli(tiny_model_dir, out)
  assert again.returncode == 1 and 'Traceback' not in again.stderr
  assert again.stderr.strip().splitlines()[-1].startswith(f'error: {out} is not empty')
