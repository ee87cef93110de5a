"""Exporting a model as a Hugging Face transformers directory, to serve it elsewhere.

    export_hf(load_model('runs/paper_math-math-high/finetune/wc-wc-high/best'), 'exports/gemma2-9b-sft')
    # exports/gemma2-9b-sft/config.json         Gemma2ForCausalLM, tied embeddings
    # exports/gemma2-9b-sft/model.safetensors   or model-00001-of-00004.safetensors, ...
    #                                           plus model.safetensors.index.json
    # exports/gemma2-9b-sft/tokenizer.json, tokenizer_config.json, ...
    transformers.AutoModelForCausalLM.from_pretrained('exports/gemma2-9b-sft')  # our logits

It is the exact inverse of `hf.py`, whose table of names it shares. Each tensor
is gathered to the host on its own (one layer of a stacked leaf at a time) and
streamed into its file, so the host never holds more than one tensor. Shards
are at most `max_shard_bytes` (5 GB, like transformers). config.json is written
last: a directory without one is an export that did not finish.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import struct

import jax
import ml_dtypes
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from wcse_jax.checkpoints import hf
from wcse_jax.checkpoints.assemble import CheckpointError, leaf_layers
from wcse_jax.model import AttentionKind, GemmaConfig

MAX_SHARD_BYTES = 5 * 10**9
INDEX_FILE = 'model.safetensors.index.json'
# Export dtype -> (numpy dtype, safetensors code).
DTYPES = {'bfloat16': (ml_dtypes.bfloat16, 'BF16'), 'float32': (np.float32, 'F32')}
_ARCHITECTURES = {
    1: ('gemma', 'GemmaForCausalLM'),
    2: ('gemma2', 'Gemma2ForCausalLM'),
    3: ('gemma3_text', 'Gemma3ForCausalLM'),
}


def hf_config(config: GemmaConfig, *, dtype: str = 'bfloat16', tokenizer=None) -> dict:
  """The transformers config.json of a model: `hf.config_from_hf` inverted.

  >>> from wcse_jax.model import get_preset
  >>> hf_config(get_preset('gemma3-4b'))['rope_parameters']
  {'full_attention': {'rope_type': 'linear', 'factor': 8.0, 'rope_theta': 1000000.0},
   'sliding_attention': {'rope_type': 'default', 'rope_theta': 10000.0}}

  Raises CheckpointError for a config that transformers' Gemma of its version
  cannot express (e.g. Gemma 1 with soft-capping).
  """
  model_type, architecture = _ARCHITECTURES[config.version]
  out = {
      'architectures': [architecture],
      'model_type': model_type,
      'dtype': dtype,
      'vocab_size': config.vocab_size,
      'hidden_size': config.embed_dim,
      'intermediate_size': config.hidden_dim,
      'num_hidden_layers': config.num_layers,
      'num_attention_heads': config.num_heads,
      'num_key_value_heads': config.num_kv_heads,
      'head_dim': config.head_dim,
      'rms_norm_eps': config.rms_norm_eps,
      'max_position_embeddings': config.max_seq_len,
      'hidden_act' if config.version == 1 else 'hidden_activation': 'gelu_pytorch_tanh',
      'tie_word_embeddings': True,
      'rope_parameters': _rope_parameters(config),
  }
  if config.version >= 2:
    out.update(
        query_pre_attn_scalar=_number(config.query_pre_attn_scalar),
        sliding_window=config.sliding_window,
        layer_types=[
            'sliding_attention' if kind == AttentionKind.LOCAL else 'full_attention'
            for kind in config.layer_kinds
        ],
        attn_logit_softcapping=config.attn_logit_softcap,
        final_logit_softcapping=config.final_logit_softcap,
    )
  # transformers 4 (and servers built on it) read RoPE from these older keys instead.
  out['rope_theta'] = config.rope_base_global
  if config.version == 3:
    out['rope_local_base_freq'] = config.rope_base_local
    out['rope_scaling'] = out['rope_parameters']['full_attention'] if config.rope_scale_global != 1 else None
  if tokenizer is not None:
    for special in ('bos', 'eos', 'pad'):
      if getattr(tokenizer, f'{special}_token_id', None) is not None:
        out[f'{special}_token_id'] = getattr(tokenizer, f'{special}_token_id')
  _check_expressible(config, out)
  return out


def _rope_parameters(config: GemmaConfig) -> dict:
  """transformers 5 RoPE settings: one entry per layer type for Gemma 3."""
  if config.version < 3:  # one base for every layer
    return {'rope_type': 'default', 'rope_theta': config.rope_base_global}
  full = {'rope_type': 'default', 'rope_theta': config.rope_base_global}
  if config.rope_scale_global != 1:
    full = {'rope_type': 'linear', 'factor': config.rope_scale_global, 'rope_theta': config.rope_base_global}
  return {
      'full_attention': full,
      'sliding_attention': {'rope_type': 'default', 'rope_theta': config.rope_base_local},
  }


def _number(x: float) -> int | float:
  """256.0 -> 256: transformers types query_pre_attn_scalar as an int."""
  return int(x) if float(x).is_integer() else x


def _essentials(config: GemmaConfig) -> dict:
  """What the forward pass depends on: not names, nor local-layer settings without local layers."""
  out = config.to_dict()
  for key in ('name', 'hub_id', 'layer_pattern'):
    out.pop(key)
  if AttentionKind.LOCAL not in config.layer_pattern:
    out.update(sliding_window=None, rope_base_local=None)
  return {**out, 'layer_kinds': config.layer_kinds}


def _check_expressible(config: GemmaConfig, hf_dict: dict) -> None:
  """Whether transformers computes what we compute from this config.json."""
  back, ours = _essentials(hf.config_from_hf(hf_dict, name=config.name)), _essentials(config)
  lost = [key for key in ours if ours[key] != back[key]]
  has_local = AttentionKind.LOCAL in config.layer_pattern
  if config.version < 3 and (
      config.rope_scale_global != 1 or (has_local and config.rope_base_local != config.rope_base_global)
  ):
    lost.append('rope (Gemma 1 and 2 use one unscaled RoPE base on every layer)')
  if lost:
    raise CheckpointError(
        f'{config.name}: transformers Gemma {config.version} cannot express this config '
        f'({", ".join(lost)}); it cannot be exported.'
    )


def to_hf_layout(tensor, how: str):
  """Ours [in, heads, head_dim] to transformers' Linear [out, in]: `hf.to_our_layout` inverted."""
  if how in ('heads_in', 'kv_heads_in'):  # [D, N, H] -> [N*H, D]
    return tensor.transpose(1, 2, 0).reshape(-1, tensor.shape[0])
  if how == 'heads_out':  # [N, H, D] -> [D, N*H]
    return tensor.transpose(2, 0, 1).reshape(tensor.shape[2], -1)
  if how == 'transpose':
    return tensor.T
  return tensor


@dataclasses.dataclass(frozen=True)
class ExportTensor:
  """One transformers tensor: which state leaf (and repeat of a stacked one) it comes from."""

  name: str  # e.g. 'model.layers.7.self_attn.q_proj.weight'
  layer: int | None  # None for the embedding and the final norm
  path: tuple  # of the state leaf
  repeat: int | None  # index on the leading repeat axis of a stacked leaf
  how: str  # layout change, see `to_hf_layout`
  shape: tuple[int, ...]  # in transformers' layout


def export_tensors(config: GemmaConfig, params: nnx.State) -> list[ExportTensor]:
  """Every tensor of the export, embedding first, then layer by layer."""
  layer_names = hf.layer_names(config)
  tensors = []
  for path, variable in nnx.to_flat_state(params):
    name, layers = leaf_layers(config, path)
    shape = variable.get_value().shape
    if layers is None:
      tensors.append(ExportTensor(f'model.{hf.TOP_NAMES[name]}', None, path, None, 'same', shape))
      continue
    hf_name, how = layer_names[name]
    stacked = path[0] == 'blocks'
    layer_shape = jax.eval_shape(
        lambda x, how=how: to_hf_layout(x, how),
        jax.ShapeDtypeStruct(shape[1:] if stacked else shape, np.float32),
    ).shape
    for r, layer in enumerate(layers):
      tensors.append(ExportTensor(
          f'model.layers.{layer}.{hf_name}', layer, path, r if stacked else None, how, layer_shape
      ))

  def position(t: ExportTensor) -> int:  # the embedding, the layers in order, the final norm
    if t.layer is not None:
      return t.layer
    return -1 if t.path[0] == 'embedder' else config.num_layers

  return sorted(tensors, key=lambda t: (position(t), t.name))


def export_hf(
    loaded,
    directory: str | os.PathLike,
    *,
    dtype: str = 'bfloat16',
    overwrite: bool = False,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> pathlib.Path:
  """Writes a `LoadedModel` as a transformers directory; returns its path.

  `overwrite=True` replaces the config and weights of an existing export (the
  tokenizer files are rewritten when the model has a tokenizer). On several
  hosts every process must call it; process 0 writes.
  """
  if dtype not in DTYPES:
    raise CheckpointError(f'Unknown export dtype {dtype!r}; use one of {", ".join(DTYPES)}.')
  config_json = hf_config(loaded.config, dtype=dtype, tokenizer=loaded.tokenizer)
  directory = pathlib.Path(directory).expanduser().absolute()
  writes = jax.process_index() == 0
  if writes:
    check_export_dir(directory, overwrite=overwrite)
    # Stale shards or an old index would be read in place of the new weights.
    for stale in ['config.json', INDEX_FILE, *(p.name for p in directory.glob('model*.safetensors'))]:
      (directory / stale).unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
  np_dtype, code = DTYPES[dtype]
  tensors = export_tensors(loaded.config, loaded.params)
  shards = _shards(tensors, np.dtype(np_dtype).itemsize, max_shard_bytes)
  flat = dict(nnx.to_flat_state(loaded.params))
  for file_name, shard in shards.items():
    # Other hosts take part in every gather and write nowhere.
    target = directory / file_name if writes else pathlib.Path(os.devnull)
    _write_safetensors(target, shard, np_dtype, code, lambda t: _host_tensor(flat, t))
  if not writes:
    return directory
  if len(shards) > 1:
    weight_map = {t.name: file_name for file_name, shard in shards.items() for t in shard}
    total = sum(math.prod(t.shape) for t in tensors) * np.dtype(np_dtype).itemsize
    index = {'metadata': {'total_size': total}, 'weight_map': weight_map}
    (directory / INDEX_FILE).write_text(json.dumps(index, indent=2))
  if loaded.tokenizer is not None:
    loaded.tokenizer.save_pretrained(directory)
  (directory / 'config.json').write_text(json.dumps(config_json, indent=2))
  return directory


def check_export_dir(directory: str | os.PathLike, *, overwrite: bool = False) -> None:
  """Raises CheckpointError unless an export may be written into `directory`."""
  directory = pathlib.Path(directory).expanduser()
  if directory.exists() and not directory.is_dir():
    raise CheckpointError(f'{directory} is a file; pass a directory to export into.')
  if directory.exists() and any(directory.iterdir()) and not overwrite:
    raise CheckpointError(f'{directory} is not empty; pass overwrite=True (--overwrite) to replace it.')


def _shards(tensors: list[ExportTensor], itemsize: int, max_bytes: int) -> dict[str, list[ExportTensor]]:
  """File name -> its tensors, in order, each file at most `max_bytes` (or one tensor)."""
  groups, size = [[]], 0
  for t in tensors:
    nbytes = math.prod(t.shape) * itemsize
    if groups[-1] and size + nbytes > max_bytes:
      groups, size = groups + [[]], 0
    groups[-1].append(t)
    size += nbytes
  if len(groups) == 1:
    return {'model.safetensors': groups[0]}
  n = len(groups)
  return {f'model-{i + 1:05d}-of-{n:05d}.safetensors': group for i, group in enumerate(groups)}


def _host_tensor(flat: dict, tensor: ExportTensor) -> np.ndarray:
  """One tensor gathered to this host, in transformers' layout."""
  array = flat[tensor.path].get_value()
  if tensor.repeat is not None:
    array = array[tensor.repeat]
  if array.is_fully_addressable:
    host = np.asarray(array)
  else:  # spread over several hosts: a collective every process joins
    host = np.asarray(multihost_utils.process_allgather(array, tiled=True))
  return to_hf_layout(host, tensor.how)


def _write_safetensors(path: pathlib.Path, tensors: list[ExportTensor], np_dtype, code: str, read) -> None:
  """Streams a safetensors file: the header from the planned shapes, then each tensor as read."""
  itemsize = np.dtype(np_dtype).itemsize
  header, offset = {'__metadata__': {'format': 'pt'}}, 0
  for t in tensors:
    nbytes = math.prod(t.shape) * itemsize
    header[t.name] = {'dtype': code, 'shape': list(t.shape), 'data_offsets': [offset, offset + nbytes]}
    offset += nbytes
  encoded = json.dumps(header, separators=(',', ':')).encode()
  encoded += b' ' * (-len(encoded) % 8)  # data starts 8-byte aligned
  with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(encoded)))
    f.write(encoded)
    for t in tensors:
      np.ascontiguousarray(read(t), np_dtype).tofile(f)
