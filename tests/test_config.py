"""Presets: published sizes, and a formula that agrees with the built model."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from conftest import REPO
from wcse_jax.checkpoints.assemble import abstract_model
from wcse_jax.model import PRESETS, AttentionKind, GemmaConfig, count_params, get_preset


@pytest.mark.parametrize('name,published', [
    ('gemma2-9b', 9.24e9), ('gemma2-27b', 27.2e9), ('gemma3-270m', 2.68e8),
    ('gemma2-2b', 2.61e9), ('gemma3-1b', 1.0e9), ('gemma-7b', 8.54e9),
])
def test_parameter_counts_match_published_sizes(name, published):
  assert count_params(get_preset(name)) == pytest.approx(published, rel=5e-3)


@pytest.mark.parametrize('name', sorted(PRESETS))
def test_formula_counts_every_weight_of_the_model(name):
  _, state = abstract_model(get_preset(name), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
  built = sum(leaf.size for leaf in jax.tree.leaves(state))
  assert built == count_params(get_preset(name))


def test_layer_stacks_cover_the_depth():
  config = get_preset('gemma3-1b')  # 26 layers = 4 periods of 6 + 2
  assert (config.num_repeats, config.num_tail_layers) == (4, 2)
  assert config.layer_kinds[5] == AttentionKind.GLOBAL
  assert config.layer_kinds[24:] == (AttentionKind.LOCAL,) * 2
  assert GemmaConfig.from_dict(config.to_dict()) == config


def test_describe_prints_config_and_count():
  result = subprocess.run(
      [sys.executable, '-m', 'wcse_jax.model', 'describe', 'gemma2-27b'],
      capture_output=True, text=True, cwd=REPO, check=True,
  )
  assert '"query_pre_attn_scalar": 144' in result.stdout
  assert 'parameters: 27,227,128,320 (27.227B)' in result.stdout
