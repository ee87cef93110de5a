"""Gemma text-model configuration and the named presets.

A config is a frozen dataclass: everything the forward pass, the KV cache, the
loaders and the budget planner need to know about one model. Presets carry the
published architecture of every Gemma 1, 2 and 3 text model; the weights are
loaded separately (see `wcse_jax.checkpoints`).
"""

from __future__ import annotations

import dataclasses
import enum
import json


class AttentionKind(str, enum.Enum):
  """Whether a layer attends to the whole context or to a sliding window."""

  GLOBAL = 'global'
  LOCAL = 'local'


@dataclasses.dataclass(frozen=True, kw_only=True)
class GemmaConfig:
  """Architecture of one Gemma text model.

  `layer_pattern` is the period of attention kinds that repeats through the
  depth: Gemma 1 is `(GLOBAL,)`, Gemma 2 `(LOCAL, GLOBAL)`, Gemma 3 five LOCAL
  then one GLOBAL. Layer i has kind `layer_pattern[i % len(layer_pattern)]`.
  """

  name: str
  version: int  # 1, 2 or 3
  vocab_size: int
  embed_dim: int
  hidden_dim: int  # width of each GeGLU branch
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  query_pre_attn_scalar: float  # queries are scaled by its inverse square root
  layer_pattern: tuple[AttentionKind, ...] = (AttentionKind.GLOBAL,)
  sliding_window: int | None = None
  rope_base_global: float = 10_000.0
  rope_base_local: float = 10_000.0
  rope_scale_global: float = 1.0  # linear position scaling on global layers
  attn_logit_softcap: float | None = None
  final_logit_softcap: float | None = None
  use_post_attn_norm: bool = False
  use_post_ffw_norm: bool = False
  use_qk_norm: bool = False
  rms_norm_eps: float = 1e-6
  max_seq_len: int = 8192
  hub_id: str | None = None  # where real users get the weights
  # How the layers are stored and run, not what they compute: stacked per
  # pattern position and scanned (one period compiles, for any depth), or one
  # by one (no per-layer slicing of weights and caches; see `unstack_layers`).
  scan_layers: bool = True
  # ... and a 16-bit embedding table also held as its bits, for the lookups of
  # input tokens (`with_embedding_bits`): XLA:CPU gathers from a bfloat16 table
  # by converting the whole table first, on every call.
  embedding_bits: bool = False
  # ... and each layer's weight matrices packed for our CPU kernel, bfloat16
  # (`with_packed_weights`): a product then reads its weight once, in order,
  # where the kernel otherwise packs it again on every call.
  packed_weights: bool = False
  # ... and each layer's q, k and v weights held side by side as one matrix
  # `attn.qkv_proj` [D, (N + 2K) * H], and the GeGLU's gate and up as one
  # `mlp.gate_up_proj` [D, 2F] (`with_fused_projections`): one product each, where
  # the separate ones each walk a weight of their own (on GPU, a launch each).
  fused_projections: bool = False

  def __post_init__(self):
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
          f'{self.name}: num_heads={self.num_heads} is not a multiple of '
          f'num_kv_heads={self.num_kv_heads}.'
      )
    object.__setattr__(
        self, 'layer_pattern', tuple(AttentionKind(k) for k in self.layer_pattern)
    )
    if AttentionKind.LOCAL in self.layer_pattern and not self.sliding_window:
      raise ValueError(f'{self.name}: local layers need a sliding_window.')

  @property
  def layer_kinds(self) -> tuple[AttentionKind, ...]:
    period = self.layer_pattern
    return tuple(period[i % len(period)] for i in range(self.num_layers))

  @property
  def num_repeats(self) -> int:
    """How many whole periods of `layer_pattern` are stacked and scanned."""
    return self.num_layers // len(self.layer_pattern) if self.scan_layers else 0

  @property
  def num_tail_layers(self) -> int:
    """Layers run one by one after the scanned periods (all of them without scanning)."""
    return self.num_layers - self.num_repeats * len(self.layer_pattern)

  def replace(self, **changes) -> GemmaConfig:
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d['layer_pattern'] = [k.value for k in self.layer_pattern]
    return d

  @classmethod
  def from_dict(cls, d: dict) -> GemmaConfig:
    return cls(**{**d, 'layer_pattern': tuple(d['layer_pattern'])})

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2)


G, L = AttentionKind.GLOBAL, AttentionKind.LOCAL
_GEMMA2 = dict(
    version=2,
    vocab_size=256_000,
    layer_pattern=(L, G),
    sliding_window=4096,
    attn_logit_softcap=50.0,
    final_logit_softcap=30.0,
    use_post_attn_norm=True,
    use_post_ffw_norm=True,
)
_GEMMA3 = dict(
    version=3,
    vocab_size=262_208,
    layer_pattern=(L, L, L, L, L, G),
    sliding_window=1024,
    rope_base_global=1_000_000.0,
    rope_scale_global=8.0,
    use_post_attn_norm=True,
    use_post_ffw_norm=True,
    use_qk_norm=True,
    max_seq_len=131_072,
)
# The text-only 270M and 1B: smaller vocabulary and window, 32k context, no RoPE scaling.
_GEMMA3_SMALL = {**_GEMMA3, 'vocab_size': 262_144, 'sliding_window': 512,
                 'rope_scale_global': 1.0, 'max_seq_len': 32_768}

PRESETS: dict[str, GemmaConfig] = {
    c.name: c
    for c in [
        GemmaConfig(
            name='gemma-2b', version=1, vocab_size=256_000, embed_dim=2048,
            hidden_dim=16_384, num_layers=18, num_heads=8, num_kv_heads=1,
            head_dim=256, query_pre_attn_scalar=256, hub_id='google/gemma-2b',
        ),
        GemmaConfig(
            name='gemma-7b', version=1, vocab_size=256_000, embed_dim=3072,
            hidden_dim=24_576, num_layers=28, num_heads=16, num_kv_heads=16,
            head_dim=256, query_pre_attn_scalar=256, hub_id='google/gemma-7b',
        ),
        GemmaConfig(
            name='gemma2-2b', embed_dim=2304, hidden_dim=9216, num_layers=26,
            num_heads=8, num_kv_heads=4, head_dim=256, query_pre_attn_scalar=256,
            hub_id='google/gemma-2-2b', **_GEMMA2,
        ),
        GemmaConfig(
            name='gemma2-9b', embed_dim=3584, hidden_dim=14_336, num_layers=42,
            num_heads=16, num_kv_heads=8, head_dim=256, query_pre_attn_scalar=256,
            hub_id='google/gemma-2-9b', **_GEMMA2,
        ),
        GemmaConfig(
            # Queries scale by (embed_dim / num_heads) ** -0.5, not head_dim.
            name='gemma2-27b', embed_dim=4608, hidden_dim=36_864, num_layers=46,
            num_heads=32, num_kv_heads=16, head_dim=128,
            query_pre_attn_scalar=144, hub_id='google/gemma-2-27b', **_GEMMA2,
        ),
        GemmaConfig(
            name='gemma3-270m', embed_dim=640, hidden_dim=2048, num_layers=18,
            num_heads=4, num_kv_heads=1, head_dim=256, query_pre_attn_scalar=256,
            hub_id='google/gemma-3-270m', **_GEMMA3_SMALL,
        ),
        GemmaConfig(
            name='gemma3-1b', embed_dim=1152, hidden_dim=6912, num_layers=26,
            num_heads=4, num_kv_heads=1, head_dim=256, query_pre_attn_scalar=256,
            hub_id='google/gemma-3-1b-pt', **_GEMMA3_SMALL,
        ),
        GemmaConfig(
            name='gemma3-4b', embed_dim=2560, hidden_dim=10_240, num_layers=34,
            num_heads=8, num_kv_heads=4, head_dim=256, query_pre_attn_scalar=256,
            hub_id='google/gemma-3-4b-pt', **_GEMMA3,
        ),
        GemmaConfig(
            name='gemma3-12b', embed_dim=3840, hidden_dim=15_360, num_layers=48,
            num_heads=16, num_kv_heads=8, head_dim=256, query_pre_attn_scalar=256,
            hub_id='google/gemma-3-12b-pt', **_GEMMA3,
        ),
        GemmaConfig(
            name='gemma3-27b', embed_dim=5376, hidden_dim=21_504, num_layers=62,
            num_heads=32, num_kv_heads=16, head_dim=128,
            query_pre_attn_scalar=168, hub_id='google/gemma-3-27b-pt', **_GEMMA3,
        ),
    ]
}
del G, L


class UnknownModelError(ValueError):
  """A model name that is neither a preset nor a path nor a hub id."""


def get_preset(name: str) -> GemmaConfig:
  try:
    return PRESETS[name]
  except KeyError:
    raise UnknownModelError(
        f'Unknown model preset {name!r}; known presets: {", ".join(PRESETS)}.'
    ) from None


def count_params(config: GemmaConfig) -> int:
  """Number of parameters (the output embedding is tied to the input one).

  >>> count_params(get_preset('gemma2-9b'))
  9241705984
  """
  d, h = config.embed_dim, config.head_dim
  attention = d * h * (2 * config.num_heads + 2 * config.num_kv_heads)
  feed_forward = 3 * d * config.hidden_dim
  num_norms = 2 + config.use_post_attn_norm + config.use_post_ffw_norm
  norms = num_norms * d + (2 * h if config.use_qk_norm else 0)
  layer = attention + feed_forward + norms
  return config.vocab_size * d + config.num_layers * layer + d
