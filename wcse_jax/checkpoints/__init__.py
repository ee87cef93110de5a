"""Loading and saving weights: HF safetensors, GGUF, Kaggle/Flax Orbax trees, ours."""

from wcse_jax.checkpoints.assemble import CheckpointError, build_state
from wcse_jax.checkpoints.export_hf import export_hf
from wcse_jax.checkpoints.load import (
    BUNDLED_MODEL,
    LoadedModel,
    config_of,
    default_dtype,
    load_model,
    load_tokenizer,
    resolve,
)
from wcse_jax.checkpoints.orbax_io import save_model
