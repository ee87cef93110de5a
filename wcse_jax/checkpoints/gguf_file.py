"""GGUF files (llama.cpp): the bundled Gemma 3 270M and any Gemma 1/2/3 GGUF.

Quantised tensors are dequantised to float32 with the `gguf` package, one
tensor at a time. llama.cpp stores Gemma's RMSNorm scales as `1 + scale`;
they are brought back to the zero-centred form here.
"""

from __future__ import annotations

import pathlib

import gguf
import numpy as np

from wcse_jax.checkpoints.assemble import CheckpointError, Reader
from wcse_jax.checkpoints.hf import to_our_layout
from wcse_jax.model import PRESETS, AttentionKind, GemmaConfig

_ARCHITECTURES = {'gemma': 1, 'gemma2': 2, 'gemma3': 3}

# Our per-layer name -> (GGUF name, layout transform as in checkpoints.hf).
_LAYER_NAMES = {
    'attn.q_proj': ('attn_q.weight', 'heads_in'),
    'attn.k_proj': ('attn_k.weight', 'kv_heads_in'),
    'attn.v_proj': ('attn_v.weight', 'kv_heads_in'),
    'attn.o_proj': ('attn_output.weight', 'heads_out'),
    'attn.query_norm.scale': ('attn_q_norm.weight', 'norm'),
    'attn.key_norm.scale': ('attn_k_norm.weight', 'norm'),
    'mlp.gate_proj': ('ffn_gate.weight', 'transpose'),
    'mlp.up_proj': ('ffn_up.weight', 'transpose'),
    'mlp.down_proj': ('ffn_down.weight', 'transpose'),
    'pre_attention_norm.scale': ('attn_norm.weight', 'norm'),
    'post_attention_norm.scale': ('post_attention_norm.weight', 'norm'),
    'pre_ffw_norm.scale': ('ffn_norm.weight', 'norm'),
    'post_ffw_norm.scale': ('post_ffw_norm.weight', 'norm'),
}


def open_gguf(path: pathlib.Path) -> gguf.GGUFReader:
  try:
    return gguf.GGUFReader(str(path))
  except Exception as e:  # the gguf package raises bare ValueErrors
    raise CheckpointError(f'{path}: not a readable GGUF file ({e}).') from None


def _field(reader, key, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def config_from_gguf(reader, name: str) -> GemmaConfig:
  """Our config from GGUF metadata, completed by the matching preset.

  GGUF does not record Gemma's query scale, local RoPE base or layer pattern;
  those come from the preset with the same version, width and depth (llama.cpp
  makes the same choices), else from the architecture's defaults.
  """
  arch = _field(reader, 'general.architecture')
  if arch not in _ARCHITECTURES:
    raise CheckpointError(
        f'{name}: GGUF architecture is {arch!r}, not a Gemma text model '
        f'({", ".join(_ARCHITECTURES)}).'
    )
  version = _ARCHITECTURES[arch]
  embed_dim = int(_field(reader, f'{arch}.embedding_length'))
  num_layers = int(_field(reader, f'{arch}.block_count'))
  num_heads = int(_field(reader, f'{arch}.attention.head_count'))
  head_dim = int(_field(reader, f'{arch}.attention.key_length', embed_dim // num_heads))
  preset = next(
      (
          p for p in PRESETS.values()
          if (p.version, p.embed_dim, p.num_layers) == (version, embed_dim, num_layers)
      ),
      None,
  )
  pattern = {
      1: (AttentionKind.GLOBAL,),
      2: (AttentionKind.LOCAL, AttentionKind.GLOBAL),
      3: (AttentionKind.LOCAL,) * 5 + (AttentionKind.GLOBAL,),
  }[version]
  scaling = _field(reader, f'{arch}.rope.scaling.type')
  embedding = next(t for t in reader.tensors if t.name == 'token_embd.weight')
  return GemmaConfig(
      name=name,
      version=version,
      vocab_size=int(embedding.shape[-1]),
      embed_dim=embed_dim,
      hidden_dim=int(_field(reader, f'{arch}.feed_forward_length')),
      num_layers=num_layers,
      num_heads=num_heads,
      num_kv_heads=int(_field(reader, f'{arch}.attention.head_count_kv', num_heads)),
      head_dim=head_dim,
      query_pre_attn_scalar=preset.query_pre_attn_scalar if preset else head_dim,
      layer_pattern=preset.layer_pattern if preset else pattern,
      sliding_window=_field(reader, f'{arch}.attention.sliding_window') if version > 1 else None,
      rope_base_global=float(_field(reader, f'{arch}.rope.freq_base', 10_000.0)),
      rope_base_local=preset.rope_base_local if preset else 10_000.0,
      rope_scale_global=float(_field(reader, f'{arch}.rope.scaling.factor', 1.0))
      if scaling == 'linear' else 1.0,
      attn_logit_softcap=_field(reader, f'{arch}.attn_logit_softcapping'),
      final_logit_softcap=_field(reader, f'{arch}.final_logit_softcapping'),
      use_post_attn_norm=version >= 2,
      use_post_ffw_norm=version >= 2,
      use_qk_norm=version >= 3,
      rms_norm_eps=float(_field(reader, f'{arch}.attention.layer_norm_rms_epsilon', 1e-6)),
      max_seq_len=int(_field(reader, f'{arch}.context_length', 8192)),
      hub_id=preset.hub_id if preset else None,
  )


def gguf_reader(reader, config: GemmaConfig, path: pathlib.Path) -> Reader:
  """A `Reader` that dequantises GGUF tensors into our layout."""
  tensors = {t.name: t for t in reader.tensors}

  def get(gguf_name: str) -> np.ndarray:
    if gguf_name not in tensors:
      raise CheckpointError(f'{path}: tensor {gguf_name} is missing; the file is partial.')
    t = tensors[gguf_name]
    return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)

  def read(layer: int | None, name: str) -> np.ndarray:
    if layer is None:
      if name == 'embedder.input_embedding':
        return get('token_embd.weight')
      return get('output_norm.weight') - 1.0
    gguf_name, how = _LAYER_NAMES[name]
    tensor = get(f'blk.{layer}.{gguf_name}')
    return tensor - 1.0 if how == 'norm' else to_our_layout(tensor, how, config)

  return read
