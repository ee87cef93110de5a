"""Hugging Face transformers directories: config.json plus safetensors.

Tensors are memory-mapped straight from the safetensors files (bfloat16
included), so nothing is read until a device asks for its slice. Sharded
checkpoints are found through `model.safetensors.index.json`. Multimodal
Gemma 3 directories work too: their text weights and `text_config` are used.
"""

from __future__ import annotations

import json
import pathlib
import struct

import ml_dtypes
import numpy as np

from wcse_jax.checkpoints.assemble import CheckpointError, Reader
from wcse_jax.model import AttentionKind, GemmaConfig

_SAFETENSORS_DTYPES = {
    'F32': np.float32,
    'F16': np.float16,
    'BF16': ml_dtypes.bfloat16,
    'F64': np.float64,
}
_MODEL_TYPES = {'gemma': 1, 'gemma2': 2, 'gemma3_text': 3, 'gemma3': 3}


def is_hf_dir(path: pathlib.Path) -> bool:
  return path.is_dir() and (path / 'config.json').exists()


def period_of(kinds: list[AttentionKind]) -> tuple[AttentionKind, ...]:
  """The shortest pattern whose repetition gives these per-layer kinds."""
  for p in range(1, len(kinds) + 1):
    if all(kinds[i] == kinds[i % p] for i in range(len(kinds))):
      return tuple(kinds[:p])
  raise AssertionError('unreachable')


def config_from_hf(hf: dict, name: str) -> GemmaConfig:
  """Our config from a transformers Gemma/Gemma2/Gemma3 config dict."""
  hf = hf.get('text_config', hf) if hf.get('model_type') == 'gemma3' else hf
  model_type = hf.get('model_type')
  if model_type not in _MODEL_TYPES:
    raise CheckpointError(
        f'{name}: model_type {model_type!r} is not a Gemma text model '
        f'(expected one of {", ".join(_MODEL_TYPES)}).'
    )
  version = _MODEL_TYPES[model_type]
  num_layers = hf['num_hidden_layers']
  head_dim = hf.get('head_dim') or hf['hidden_size'] // hf['num_attention_heads']
  kinds = [
      AttentionKind.LOCAL if t == 'sliding_attention' else AttentionKind.GLOBAL
      for t in hf.get('layer_types') or _default_layer_types(hf, version, num_layers)
  ]
  rope_global, rope_local, scale_global = _rope(hf, version)
  return GemmaConfig(
      name=name,
      version=version,
      vocab_size=hf['vocab_size'],
      embed_dim=hf['hidden_size'],
      hidden_dim=hf['intermediate_size'],
      num_layers=num_layers,
      num_heads=hf['num_attention_heads'],
      num_kv_heads=hf.get('num_key_value_heads') or hf['num_attention_heads'],
      head_dim=head_dim,
      query_pre_attn_scalar=hf.get('query_pre_attn_scalar') or head_dim,
      layer_pattern=period_of(kinds),
      sliding_window=hf.get('sliding_window') if AttentionKind.LOCAL in kinds else None,
      rope_base_global=rope_global,
      rope_base_local=rope_local,
      rope_scale_global=scale_global,
      attn_logit_softcap=hf.get('attn_logit_softcapping'),
      final_logit_softcap=hf.get('final_logit_softcapping'),
      use_post_attn_norm=version >= 2,
      use_post_ffw_norm=version >= 2,
      use_qk_norm=version >= 3,
      rms_norm_eps=hf.get('rms_norm_eps', 1e-6),
      max_seq_len=hf.get('max_position_embeddings', 8192),
  )


def _default_layer_types(hf, version, num_layers):
  if version == 1:
    return ['full_attention'] * num_layers
  period = 2 if version == 2 else hf.get('sliding_window_pattern', 6)
  return [
      'full_attention' if (i + 1) % period == 0 else 'sliding_attention'
      for i in range(num_layers)
  ]


def _rope(hf: dict, version: int) -> tuple[float, float, float]:
  """(global base, local base, global linear scale) across config versions.

  Gemma 1 and 2 use one base for every layer; Gemma 3 gives its local layers
  their own (`rope_local_base_freq` before transformers 5, 10,000 by default).
  """
  params = hf.get('rope_parameters') or {}
  if 'full_attention' in params:  # transformers 5: one entry per layer type
    full, sliding = params['full_attention'], params.get('sliding_attention', {})
  else:
    full = {**params, **(hf.get('rope_scaling') or {})}
    full.setdefault('rope_theta', hf.get('rope_theta', 10_000.0))
    local_default = 10_000.0 if version >= 3 else full['rope_theta']
    sliding = {'rope_theta': hf.get('rope_local_base_freq', local_default)}
  rope_type = full.get('rope_type') or full.get('type') or 'default'
  if rope_type not in ('default', 'linear'):
    raise CheckpointError(f'RoPE type {rope_type!r} is not supported (default or linear).')
  scale = float(full.get('factor', 1.0)) if rope_type == 'linear' else 1.0
  return (
      float(full.get('rope_theta', 10_000.0)),
      float(sliding.get('rope_theta', 10_000.0)),
      scale,
  )


class SafetensorsFile:
  """A lazily memory-mapped safetensors file: `file[name]` is a numpy view."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    with open(path, 'rb') as f:
      (header_len,) = struct.unpack('<Q', f.read(8))
      self.header = json.loads(f.read(header_len))
    self.header.pop('__metadata__', None)
    self.data_start = 8 + header_len

  def __getitem__(self, name: str) -> np.ndarray:
    info = self.header[name]
    dtype = _SAFETENSORS_DTYPES.get(info['dtype'])
    if dtype is None:
      raise CheckpointError(f'{self.path}: tensor {name} has unsupported dtype {info["dtype"]}.')
    start, end = info['data_offsets']
    return np.memmap(
        self.path, dtype=dtype, mode='r', offset=self.data_start + start,
        shape=tuple(info['shape']),
    ) if end > start else np.zeros(info['shape'], dtype)


def open_safetensors(directory: pathlib.Path) -> dict[str, SafetensorsFile]:
  """Tensor name -> the file that holds it, for single or sharded checkpoints."""
  index = directory / 'model.safetensors.index.json'
  if index.exists():
    weight_map = json.loads(index.read_text())['weight_map']
    files = {}
    for shard in sorted(set(weight_map.values())):
      if not (directory / shard).exists():
        raise CheckpointError(
            f'{directory}: shard {shard} listed in {index.name} is missing; '
            'the download is incomplete.'
        )
      files[shard] = SafetensorsFile(directory / shard)
    return {name: files[shard] for name, shard in weight_map.items()}
  single = directory / 'model.safetensors'
  if not single.exists():
    raise CheckpointError(
        f'{directory}: no model.safetensors or model.safetensors.index.json '
        '(only safetensors weights are supported; convert .bin files first).'
    )
  file = SafetensorsFile(single)
  return {name: file for name in file.header}


# Our names outside the layers -> transformers names (after the model prefix).
TOP_NAMES = {'embedder.input_embedding': 'embed_tokens.weight', 'final_norm.scale': 'norm.weight'}


# Our per-layer name -> (transformers name, how to bring it into our layout).
def layer_names(config: GemmaConfig) -> dict[str, tuple[str, str]]:
  ffw_norm = 'pre_feedforward_layernorm' if config.version >= 2 else 'post_attention_layernorm'
  names = {
      'attn.q_proj': ('self_attn.q_proj.weight', 'heads_in'),
      'attn.k_proj': ('self_attn.k_proj.weight', 'kv_heads_in'),
      'attn.v_proj': ('self_attn.v_proj.weight', 'kv_heads_in'),
      'attn.o_proj': ('self_attn.o_proj.weight', 'heads_out'),
      'mlp.gate_proj': ('mlp.gate_proj.weight', 'transpose'),
      'mlp.up_proj': ('mlp.up_proj.weight', 'transpose'),
      'mlp.down_proj': ('mlp.down_proj.weight', 'transpose'),
      'pre_attention_norm.scale': ('input_layernorm.weight', 'same'),
      'pre_ffw_norm.scale': (f'{ffw_norm}.weight', 'same'),
  }
  if config.version >= 2:
    names['post_attention_norm.scale'] = ('post_attention_layernorm.weight', 'same')
    names['post_ffw_norm.scale'] = ('post_feedforward_layernorm.weight', 'same')
  if config.use_qk_norm:
    names['attn.query_norm.scale'] = ('self_attn.q_norm.weight', 'same')
    names['attn.key_norm.scale'] = ('self_attn.k_norm.weight', 'same')
  return names


def to_our_layout(tensor: np.ndarray, how: str, config: GemmaConfig) -> np.ndarray:
  """transformers Linear weights are [out, in]; ours are [in, heads, head_dim]."""
  h = config.head_dim
  if how == 'heads_in':
    return tensor.reshape(config.num_heads, h, -1).transpose(2, 0, 1)
  if how == 'kv_heads_in':
    return tensor.reshape(config.num_kv_heads, h, -1).transpose(2, 0, 1)
  if how == 'heads_out':
    return tensor.reshape(-1, config.num_heads, h).transpose(1, 2, 0)
  if how == 'transpose':
    return tensor.T
  return tensor


def hf_reader(directory: pathlib.Path, config: GemmaConfig) -> Reader:
  """A `Reader` over a transformers Gemma directory."""
  tensors = open_safetensors(directory)
  prefix = _text_prefix(tensors, directory)
  names = layer_names(config)

  def get(name: str) -> np.ndarray:
    if name not in tensors:
      raise CheckpointError(
          f'{directory}: tensor {name} is missing; the checkpoint is partial or '
          f'not a {config.name}-shaped Gemma.'
      )
    return tensors[name][name]

  def read(layer: int | None, name: str) -> np.ndarray:
    if layer is None:
      return np.asarray(get(prefix + TOP_NAMES[name]), np.float32)
    hf_name, how = names[name]
    tensor = np.asarray(get(f'{prefix}layers.{layer}.{hf_name}'), np.float32)
    return to_our_layout(tensor, how, config)

  return read


def _text_prefix(tensors: dict, directory) -> str:
  """'model.' for text models, 'model.language_model.' etc. for multimodal ones."""
  for name in tensors:
    if name.endswith('embed_tokens.weight') and 'vision' not in name:
      return name[: -len('embed_tokens.weight')]
  raise CheckpointError(f'{directory}: no embed_tokens.weight tensor; not a Gemma checkpoint.')
