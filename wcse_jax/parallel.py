"""Device mesh and the one table that maps logical axes to mesh axes.

Every array that is sharded (parameters, KV cache, batches, optimizer state)
names its dimensions with logical axes; `LOGICAL_RULES` maps those to the two
mesh axes, `data` and `model`. FSDP folds into `data`: with `fsdp=True` the
embedding dimension of the weights is split over `data` as well. A dimension
that the mesh axis does not divide (one key/value head over two model shards)
is replicated instead. One device is a mesh of shape (1, 1), so the same code
runs on a laptop CPU, one GPU and a TPU slice.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA, MODEL = 'data', 'model'

LOGICAL_RULES: dict[str, str | None] = {
    'batch': DATA,
    'vocab': MODEL,
    'embed': None,  # DATA under FSDP
    'q_heads': MODEL,
    'kv_heads': MODEL,
    'head_dim': None,
    'mlp': MODEL,
    'layers': None,
    'norm': None,
    'length': None,
    'accumulation': None,
    'cache_len': None,
}

# Logical axes of each parameter, by its name inside a layer (or at the top).
PARAM_AXES: dict[str, tuple[str, ...]] = {
    'embedder.input_embedding': ('vocab', 'embed'),
    'final_norm.scale': ('norm',),
    'attn.q_proj': ('embed', 'q_heads', 'head_dim'),
    'attn.k_proj': ('embed', 'kv_heads', 'head_dim'),
    'attn.v_proj': ('embed', 'kv_heads', 'head_dim'),
    'attn.o_proj': ('q_heads', 'head_dim', 'embed'),
    'attn.query_norm.scale': ('head_dim',),
    'attn.key_norm.scale': ('head_dim',),
    'mlp.gate_proj': ('embed', 'mlp'),
    'mlp.up_proj': ('embed', 'mlp'),
    'mlp.down_proj': ('mlp', 'embed'),
    'pre_attention_norm.scale': ('norm',),
    'post_attention_norm.scale': ('norm',),
    'pre_ffw_norm.scale': ('norm',),
    'post_ffw_norm.scale': ('norm',),
}

# Logical axes of one layer's cached keys or values, and of cache positions.
CACHE_AXES = ('batch', 'kv_heads', 'cache_len', 'head_dim')
CACHE_POSITION_AXES = ('batch', 'cache_len')


def make_mesh(data: int = -1, model: int = 1, devices=None) -> Mesh:
  """A (data, model) mesh; `data=-1` takes every device left after `model`."""
  devices = list(devices if devices is not None else jax.devices())
  if data == -1:
    if len(devices) % model:
      raise ValueError(f'{len(devices)} devices cannot be split into model={model} shards.')
    data = len(devices) // model
  if data * model != len(devices):
    raise ValueError(
        f'Mesh data={data} x model={model} needs {data * model} devices; '
        f'{len(devices)} are available.'
    )
  return Mesh(np.asarray(devices).reshape(data, model), (DATA, MODEL))


def logical_sharding(
    axes: tuple[str, ...], shape: tuple[int, ...], mesh: Mesh, *, fsdp: bool = False
) -> NamedSharding:
  """The NamedSharding of an array with these logical axes on this mesh."""
  if len(axes) != len(shape):
    raise ValueError(f'Logical axes {axes} do not fit shape {shape}.')
  spec, used = [], set()
  for axis, size in zip(axes, shape):
    mesh_axis = DATA if (fsdp and axis == 'embed') else LOGICAL_RULES[axis]
    if mesh_axis is None or mesh_axis in used or size % mesh.shape[mesh_axis]:
      spec.append(None)
    else:
      spec.append(mesh_axis)
      used.add(mesh_axis)
  return NamedSharding(mesh, PartitionSpec(*spec))


def param_logical_axes(path: tuple) -> tuple[str, ...]:
  """Logical axes of the parameter at this state path (stacks add 'layers')."""
  keys = [str(p) for p in path]
  if keys[0] in ('blocks', 'tail'):
    axes = PARAM_AXES['.'.join(keys[2:])]
    return ('layers', *axes) if keys[0] == 'blocks' else axes
  return PARAM_AXES['.'.join(keys)]


def param_shardings(abstract_state, mesh: Mesh, *, fsdp: bool = False):
  """A tree of NamedShardings matching a model state (nnx.State of Params)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: logical_sharding(
          param_logical_axes(_plain_path(path)), leaf.shape, mesh, fsdp=fsdp
      ),
      abstract_state,
  )


def cache_shardings(cache, mesh: Mesh):
  """NamedShardings for a KVCache: rows over `data`, key/value heads over `model`."""

  def sharding(leaf):
    if leaf.ndim <= 2:  # positions [B, S] or a flag per row [B]
      return logical_sharding(CACHE_POSITION_AXES[: leaf.ndim], leaf.shape, mesh)
    axes = CACHE_AXES
    axes = ('layers',) * (leaf.ndim - len(axes)) + axes
    return logical_sharding(axes, leaf.shape, mesh)

  return jax.tree.map(sharding, cache)


def _plain_path(path) -> tuple:
  out = []
  for p in path:
    for attr in ('key', 'idx', 'name'):
      if hasattr(p, attr):
        out.append(getattr(p, attr))
        break
  # nnx.State leaves may be wrapped (`.value`): drop that trailing key.
  return tuple(o for o in out if o != 'value')


def initialize_multihost() -> None:
  """Joins the other processes of a multi-host TPU slice (or a JAX_COORDINATOR_ADDRESS job).

  Single-host runs skip it. Call before anything touches a device.
  """
  hosts = [h for h in os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]
  if len(hosts) > 1 or os.environ.get('JAX_COORDINATOR_ADDRESS'):
    jax.distributed.initialize()


def fitting_model_axis(param_bytes: int, devices, *, share: float = 0.5) -> int:
  """The smallest tensor-parallel degree whose weight shard takes at most
  `share` of a device's memory (the rest is for the KV cache); 1 on CPU."""
  stats = devices[0].memory_stats() if devices[0].platform != 'cpu' else None
  limit = (stats or {}).get('bytes_limit')
  if not limit:
    return 1
  for degree in range(1, len(devices) + 1):
    if len(devices) % degree == 0 and param_bytes / degree <= share * limit:
      return degree
  raise ValueError(
      f'{param_bytes / 2**30:.1f} GiB of weights do not fit on {len(devices)} devices '
      f'of {limit / 2**30:.1f} GiB: use a larger slice.'
  )
