"""python -m wcse_jax.model describe NAME | list

`describe` prints a model's config and parameter count without loading its
weights: NAME is a preset, a GGUF file, a transformers directory, one of our
checkpoints or a hub id (its config.json only). `list` prints every preset with
its size.
"""

from __future__ import annotations

from absl import app

from wcse_jax import cli
from wcse_jax.checkpoints import config_of
from wcse_jax.model import PRESETS, count_params


def main(argv: list[str]) -> None:
  if len(argv) == 2 and argv[1] == 'list':
    for name, config in PRESETS.items():
      print(f'{name:14s} {count_params(config) / 1e9:7.3f}B params  {config.hub_id}')
    return
  if len(argv) != 3 or argv[1] != 'describe':
    raise app.UsageError('usage: python -m wcse_jax.model describe NAME | list')
  config = config_of(argv[2])
  print(config.to_json())
  params = count_params(config)
  print(f'parameters: {params:,} ({params / 1e9:.3f}B)')


if __name__ == '__main__':
  cli.run(main)
