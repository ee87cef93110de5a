"""The entry points keep compiled programs under the project's cache directory."""

import os
import subprocess
import sys

import pytest

_MAIN = '''
import jax, jax.numpy as jnp
from wcse_jax import cli

hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event == '/jax/compilation_cache/cache_hits' else None)

def main(argv):
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)  # cache even quick compiles
  print(jax.jit(lambda x: x * 2 + 1)(jnp.arange(3.0)).tolist(), len(hits))

cli.run(main)
'''


@pytest.mark.parametrize('setting', [None, '0'])
def test_an_entry_point_stores_what_it_compiles_unless_turned_off(tmp_path, setting):
  env = {**os.environ, 'WCSE_JAX_CACHE': str(tmp_path), 'JAX_PLATFORMS': 'cpu'}
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  env.pop('WCSE_JAX_COMPILATION_CACHE', None)
  if setting is not None:
    env['WCSE_JAX_COMPILATION_CACHE'] = setting
  for run in range(2):  # the second run loads what the first stored
    out = subprocess.run([sys.executable, '-c', _MAIN], env=env, capture_output=True, text=True, check=True)
    result, hits = out.stdout.strip().rsplit(' ', 1)
    assert result == '[1.0, 3.0, 5.0]', out.stderr
    assert (int(hits) > 0) == (run == 1 and setting is None), (run, hits)
  stored = list((tmp_path / 'xla').glob('*')) if (tmp_path / 'xla').exists() else []
  if setting is None:
    assert any('lambda' in p.name for p in stored), stored
  else:
    assert not stored
