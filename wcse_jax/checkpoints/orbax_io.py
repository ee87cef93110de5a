"""Our own model checkpoints: Orbax-saved parameters, config and tokenizer.

    CKPT/wcse_config.json     the GemmaConfig (and dtypes) the weights belong to
    CKPT/params/              Orbax StandardCheckpointer tree of the nnx state
    CKPT/tokenizer/           the tokenizer files

Restoring reads every array straight into its shards on the target mesh.
"""

from __future__ import annotations

import json
import pathlib
import tempfile

import jax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh

from wcse_jax import parallel, rundir
from wcse_jax.checkpoints.assemble import CheckpointError, abstract_model
from wcse_jax.model import GemmaConfig

CONFIG_FILE = 'wcse_config.json'


def is_our_checkpoint(path: pathlib.Path) -> bool:
  return path.is_dir() and (path / CONFIG_FILE).exists()


def save_model(path: str | pathlib.Path, loaded) -> pathlib.Path:
  """Saves a `LoadedModel` (or anything with config, params, tokenizer), to a local
  directory or a URL (`gs://...`: Orbax writes the parameters there itself).

  In a multi-process job every process calls it (each saves the parameter
  shards it holds) and process 0 writes the tokenizer and config.
  """
  path = rundir.run_path(path)
  path = path.absolute() if rundir.is_local(path) else path
  path.mkdir(parents=True, exist_ok=True)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(rundir.orbax_path(path / 'params'), nnx.to_pure_dict(loaded.params), force=True)
  if jax.process_index() != 0:
    return path
  if loaded.tokenizer is not None:
    if rundir.is_local(path):
      loaded.tokenizer.save_pretrained(path / 'tokenizer')
    else:  # transformers writes local files only: through a temporary directory
      with tempfile.TemporaryDirectory() as local:
        loaded.tokenizer.save_pretrained(local)
        for file in pathlib.Path(local).iterdir():
          (path / 'tokenizer' / file.name).write_bytes(file.read_bytes())
  (path / CONFIG_FILE).write_text(json.dumps({'config': loaded.config.to_dict()}, indent=2))
  return path


def read_config(path: pathlib.Path) -> GemmaConfig:
  try:
    return GemmaConfig.from_dict(json.loads((path / CONFIG_FILE).read_text())['config'])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f'{path / CONFIG_FILE}: unreadable model config ({e}).') from None


def restore_model(
    path: pathlib.Path, *, mesh: Mesh, dtype, param_dtype, fsdp: bool = False,
    tokenizer=None, with_tokenizer: bool = True,
):
  """Restores a checkpoint written by `save_model` onto `mesh`."""
  from wcse_jax.checkpoints.load import LoadedModel, load_tokenizer  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(path).absolute()
  config = read_config(path)
  if not (path / 'params').exists():
    raise CheckpointError(f'{path}: the params/ directory is missing; the checkpoint is partial.')
  graphdef, abstract = abstract_model(config, dtype=dtype, param_dtype=param_dtype)
  shardings = parallel.param_shardings(abstract, mesh, fsdp=fsdp)
  target = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
      nnx.to_pure_dict(abstract),
      nnx.to_pure_dict(shardings),
  )
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      restored = checkpointer.restore(path / 'params', target)
  except (ValueError, KeyError) as e:
    raise CheckpointError(
        f'{path}: the saved parameters do not fit {config.name} ({e}).'
    ) from None
  nnx.replace_by_pure_dict(abstract, restored)
  return LoadedModel(
      config=config,
      graphdef=graphdef,
      params=abstract,
      tokenizer=load_tokenizer(tokenizer or path / 'tokenizer', kind='hf')
      if with_tokenizer else None,
      source=str(path),
      mesh=mesh,
  )
