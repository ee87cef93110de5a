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
    'pages': None,  # a page pool is shared by every row: whole on each data shard
    'page': None,
    'kv': None,
    'fused': None,  # parts side by side: a split over devices would cut across them
}

# Logical axes of each parameter, by its name inside a layer (or at the top).
PARAM_AXES: dict[str, tuple[str, ...]] = {
    'embedder.input_embedding': ('vocab', 'embed'),
    'embedder.embedding_bits': ('vocab', 'embed'),
    'final_norm.scale': ('norm',),
    'attn.q_proj': ('embed', 'q_heads', 'head_dim'),
    'attn.k_proj': ('embed', 'kv_heads', 'head_dim'),
    'attn.v_proj': ('embed', 'kv_heads', 'head_dim'),
    'attn.qkv_proj': ('embed', 'fused'),  # q, k and v side by side (`with_fused_projections`)
    'attn.o_proj': ('q_heads', 'head_dim', 'embed'),
    'attn.query_norm.scale': ('head_dim',),
    'attn.key_norm.scale': ('head_dim',),
    'mlp.gate_proj': ('embed', 'mlp'),
    'mlp.up_proj': ('embed', 'mlp'),
    'mlp.gate_up_proj': ('embed', 'fused'),
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


def paged_cache_shardings(cache, mesh: Mesh):
  """NamedShardings for a PagedKVCache: pools split over key/value heads, the view replicated."""
  from wcse_jax.model import paged  # pylint: disable=g-import-not-at-top

  axes = paged.pool_axes(cache.layout)
  pool = lambda arrays: tuple(
      logical_sharding(a if x.ndim == len(a) else ('layers',) + a, x.shape, mesh)
      for x, a in zip(arrays, axes)
  )
  replicated = NamedSharding(mesh, PartitionSpec())
  return cache.replace(
      blocks=tuple(pool(p) for p in cache.blocks),
      tail=tuple(pool(p) for p in cache.tail),
      **jax.tree.map(lambda _: replicated, dict(
          tables=cache.tables, first=cache.first, prefix=cache.prefix, prefixed=cache.prefixed,
      )),
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


# Environment variables a hand-started job may set instead of flags (JAX itself
# reads only the first).
COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV = (
    'JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID'
)


class MultihostError(ValueError):
  """A multi-process setting that cannot work."""


def cluster_detected() -> bool:
  """Whether this process is one of several that JAX finds by itself: a multi-host
  Cloud TPU slice, a SLURM job of several tasks, or an Open MPI job."""
  hosts = [h for h in os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]
  several = lambda name: int(os.environ.get(name) or 1) > 1
  return (
      len(hosts) > 1
      or ('SLURM_JOB_ID' in os.environ and several('SLURM_NTASKS'))
      or several('OMPI_COMM_WORLD_SIZE')
  )


def initialize_multihost(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
  """Joins the other processes of a multi-process job; call before anything touches a device.

  Given a coordinator (argument or JAX_COORDINATOR_ADDRESS), the process
  count and this process's id come from the arguments or from
  JAX_NUM_PROCESSES and JAX_PROCESS_ID: that is how N processes are started
  by hand (one GPU box, or several CPU processes on one machine). Without one,
  a cluster JAX detects (multi-host TPU slice, SLURM, Open MPI) is joined with
  JAX's own detection. Otherwise the run is a single process and nothing
  happens. On CPU, collectives go through gloo.
  """
  coordinator_address = coordinator_address or os.environ.get(COORDINATOR_ENV) or None
  num_processes = num_processes if num_processes is not None else _env_int(NUM_PROCESSES_ENV)
  process_id = process_id if process_id is not None else _env_int(PROCESS_ID_ENV)
  if coordinator_address is None:
    if num_processes not in (None, 1) or process_id not in (None, 0):
      raise MultihostError(
          'A process count or id was given without a coordinator: set --coordinator_address '
          f'(or {COORDINATOR_ENV}) to host:port of process 0.'
      )
    if cluster_detected():
      _use_gloo_on_cpu()
      jax.distributed.initialize()
    return
  if num_processes is None or process_id is None:
    if cluster_detected():  # the cluster supplies the count and the id
      _use_gloo_on_cpu()
      jax.distributed.initialize(coordinator_address)
      return
    raise MultihostError(
        f'--coordinator_address={coordinator_address} needs --num_processes and --process_id '
        f'(or {NUM_PROCESSES_ENV} and {PROCESS_ID_ENV}) for a job started by hand.'
    )
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise MultihostError(
        f'--process_id must be in [0, {num_processes}) and --num_processes >= 1; '
        f'got process_id={process_id}, num_processes={num_processes}.'
    )
  if num_processes == 1:
    return
  _use_gloo_on_cpu()
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if not value:
    return None
  try:
    return int(value)
  except ValueError:
    raise MultihostError(f'{name}={value!r} is not an integer.') from None


def _use_gloo_on_cpu() -> None:
  """CPU devices of several processes talk through gloo (GPU and TPU are unaffected)."""
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')


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
