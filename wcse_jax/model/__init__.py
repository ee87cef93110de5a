"""Gemma 1/2/3 text models in Flax NNX: configs, presets, the forward pass."""

from wcse_jax.model.config import (
    PRESETS,
    AttentionKind,
    GemmaConfig,
    UnknownModelError,
    count_params,
    get_preset,
)
from wcse_jax.model.modules import LayerCache
from wcse_jax.model.paged import PagedKVCache
from wcse_jax.model.transformer import (
    KVCache,
    Transformer,
    cache_sizes,
    causal_mask,
    copy_pages,
    init_cache,
    init_paged_cache,
    segment_mask,
    packable,
    with_embedding_bits,
    with_fused_projections,
    with_packed_weights,
    unstack_layers,
)
