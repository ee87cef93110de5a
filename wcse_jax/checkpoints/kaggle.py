"""Kaggle/Flax Gemma checkpoints: the Orbax trees of google-deepmind/gemma.

Their parameters are named `transformer/layer_N/attn/q_einsum/w` and so on
(older files flatten the names into the keys, newer ones nest them); both are
read. The tree carries no config, so the preset names the architecture. The
tree is restored to host memory whole (about 2 bytes per parameter for bf16
checkpoints), then placed on the mesh layer by layer like every other source.
"""

from __future__ import annotations

import pathlib

import numpy as np

from wcse_jax.checkpoints.assemble import CheckpointError, Reader
from wcse_jax.model import GemmaConfig


def is_kaggle_checkpoint(path: pathlib.Path) -> bool:
  """An Orbax/Flax tree; `load.detect_format` asks only after ruling out our own
  checkpoints, which are Orbax trees too."""
  return path.is_dir() and ((path / '_METADATA').exists() or (path / 'checkpoint').exists())


def flatten(tree, prefix: str = '') -> dict[str, np.ndarray]:
  """'transformer/layer_0/attn/q_einsum' -> array, for nested or flat-keyed trees."""
  out = {}
  for key, value in tree.items():
    name = f'{prefix}/{key}' if prefix else str(key)
    if isinstance(value, dict):
      out.update(flatten(value, name))
    else:
      out[name.removesuffix('/w').removeprefix('transformer/')] = value
  return out


def restore_tree(path: pathlib.Path) -> dict[str, np.ndarray]:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  try:
    with ocp.PyTreeCheckpointer() as checkpointer:
      metadata = checkpointer.metadata(path)
      tree_metadata = getattr(metadata, 'item_metadata', None) or metadata
      restore_args = _numpy_restore_args(tree_metadata)
      tree = checkpointer.restore(path, restore_args=restore_args)
  except (OSError, ValueError, KeyError) as e:
    raise CheckpointError(f'{path}: cannot restore the Orbax tree ({e}).') from None
  return flatten(tree)


def _numpy_restore_args(metadata):
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  return jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), dict(metadata))


def kaggle_reader(path: pathlib.Path, config: GemmaConfig) -> Reader:
  """A `Reader` over a Kaggle/Flax Gemma checkpoint directory."""
  return tree_reader(restore_tree(path), config, str(path))


def tree_reader(params: dict[str, np.ndarray], config: GemmaConfig, source: str) -> Reader:
  """A `Reader` over flattened Kaggle-layout parameters."""

  def get(name: str) -> np.ndarray:
    if name not in params:
      raise CheckpointError(
          f'{source}: parameter {name} is missing; the checkpoint is partial or '
          f'not a {config.name}.'
      )
    return np.asarray(params[name], np.float32)

  def read(layer: int | None, name: str) -> np.ndarray:
    if layer is None:
      return get({'embedder.input_embedding': 'embedder/input_embedding',
                  'final_norm.scale': 'final_norm/scale'}[name])
    base = f'layer_{layer}/'
    module, _, leaf = name.rpartition('.')
    if name in ('attn.q_proj', 'attn.k_proj', 'attn.v_proj'):
      which = 'qkv'.index(name[5])
      if f'{base}attn/qkv_einsum' in params:  # multi-head: [3, N, D, H]
        return get(f'{base}attn/qkv_einsum')[which].transpose(1, 0, 2)
      if which == 0:  # [N, D, H]
        return get(f'{base}attn/q_einsum').transpose(1, 0, 2)
      return get(f'{base}attn/kv_einsum')[which - 1].transpose(1, 0, 2)  # [2, K, D, H]
    if name == 'attn.o_proj':
      return get(f'{base}attn/attn_vec_einsum')  # [N, H, D]
    if name in ('mlp.gate_proj', 'mlp.up_proj'):
      gating = get(f'{base}mlp/gating_einsum')
      branch = gating[0 if name == 'mlp.gate_proj' else 1]
      # [2, F, D] in Gemma 2/3 checkpoints, [2, D, F] in Gemma 1 ones.
      return branch.T if branch.shape[0] == config.hidden_dim else branch
    if name == 'mlp.down_proj':
      return get(f'{base}mlp/linear')  # [F, D]
    module = {'attn.query_norm': 'attn/_query_norm', 'attn.key_norm': 'attn/_key_norm'}.get(
        module, module
    )
    return get(f'{base}{module}/{leaf}')

  return read
