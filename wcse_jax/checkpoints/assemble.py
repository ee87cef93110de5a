"""Building a sharded parameter state from any weight source, one layer at a time.

Every loader reduces to a `read(layer, name)` function that returns one tensor
of one layer in our layout (`layer` is None for the embedding and final norm).
`build_state` asks for each tensor once and copies into each device only the
slice that device holds, so a 27B model lands sharded over the mesh and the
host never holds more than its own shards plus one layer's tensor.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from wcse_jax import parallel
from wcse_jax.model import GemmaConfig, Transformer

Reader = Callable[[int | None, str], np.ndarray]


class CheckpointError(ValueError):
  """Weights that are missing, partial or do not fit the config."""


def abstract_model(config: GemmaConfig, *, dtype, param_dtype) -> tuple[nnx.GraphDef, nnx.State]:
  """Graph and shape-only state of a model, without allocating weights."""
  model = nnx.eval_shape(
      lambda: Transformer(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=param_dtype)
  )
  return nnx.split(model)


def leaf_layers(config: GemmaConfig, path: tuple) -> tuple[str, list[int] | None]:
  """The per-layer name of a state leaf and the layer indices stacked in it.

  `('blocks', 2, 'attn', 'q_proj')` is layers 2, 2+P, 2+2P, ... of name
  'attn.q_proj' (P the pattern period); `('tail', 0, ...)` is layer R*P.
  """
  keys = [str(p) for p in path]
  if keys[0] == 'blocks':
    period = len(config.layer_pattern)
    return '.'.join(keys[2:]), [r * period + int(keys[1]) for r in range(config.num_repeats)]
  if keys[0] == 'tail':
    return '.'.join(keys[2:]), [config.num_repeats * len(config.layer_pattern) + int(keys[1])]
  return '.'.join(keys), None


def build_state(
    config: GemmaConfig,
    read: Reader,
    *,
    mesh: Mesh,
    dtype,
    param_dtype,
    fsdp: bool = False,
    source: str = 'checkpoint',
) -> tuple[nnx.GraphDef, nnx.State]:
  """Reads every parameter through `read` into arrays sharded over `mesh`."""
  graphdef, abstract = abstract_model(config, dtype=dtype, param_dtype=param_dtype)
  flat = nnx.to_flat_state(abstract)
  for path, variable in flat:
    name, layers = leaf_layers(config, path)
    shape, dtype = variable.get_value().shape, variable.get_value().dtype
    sharding = parallel.logical_sharding(parallel.param_logical_axes(path), shape, mesh, fsdp=fsdp)
    tail = path[0] == 'tail'

    def fetch(layer, expected):
      tensor = np.asarray(read(layer, name))
      if tensor.shape != expected:
        where = f'layer {layer} ' if layer is not None else ''
        raise CheckpointError(
            f'{source}: {where}{name} has shape {tensor.shape}, but {config.name} '
            f'expects {expected}; the weights do not fit this config.'
        )
      return tensor

    if layers is None or tail:
      whole = fetch(layers[0] if tail else None, shape)
      value = _place(shape, dtype, sharding, lambda idx: whole[idx], None)
    else:
      value = _place(
          shape, dtype, sharding, None, lambda r: fetch(layers[r], shape[1:])
      )
    variable.set_value(value)
  return graphdef, nnx.from_flat_state(flat)


def _place(shape, dtype, sharding, slice_whole, read_layer):
  """One global array from per-device slices, reading each layer once."""
  by_bounds: dict[tuple, list] = {}  # ((start, stop) per dim) -> devices
  for device, index in sharding.addressable_devices_indices_map(shape).items():
    bounds = tuple(s.indices(n)[:2] for s, n in zip(index, shape))
    by_bounds.setdefault(bounds, []).append(device)
  to_slices = lambda bounds: tuple(slice(*b) for b in bounds)
  if read_layer is None:
    buffers = {b: slice_whole(to_slices(b)) for b in by_bounds}
  else:
    buffers = {b: np.empty([stop - start for start, stop in b], dtype) for b in by_bounds}
    for r in range(shape[0]):
      tensor = None
      for bounds, buffer in buffers.items():
        (start, stop), rest = bounds[0], to_slices(bounds[1:])
        if start <= r < stop:
          tensor = read_layer(r) if tensor is None else tensor
          buffer[r - start] = tensor[rest]
  arrays = [
      jax.device_put(np.asarray(buffers[bounds], dtype), device)
      for bounds, devices in by_bounds.items()
      for device in devices
  ]
  return jax.make_array_from_single_device_arrays(shape, sharding, arrays)
