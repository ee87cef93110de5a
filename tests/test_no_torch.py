"""Every entry point runs where torch cannot be imported: torch is a test-only dependency."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import REPO

ENTRY_POINTS = (
    'wcse_jax.sample', 'wcse_jax.grade', 'wcse_jax.evaluate', 'wcse_jax.finetune', 'wcse_jax.report',
    'wcse_jax.export', 'wcse_jax.false_positives', 'wcse_jax.model', 'wcse_jax.subsets', 'wcse_jax.plan',
)


def run_without_torch(module: str, *args: str, cache: pathlib.Path, timeout: int = 900):
  """`python -m module args...` with `import torch` failing, and empty caches."""
  code = (
      'import runpy, sys\n'
      "sys.modules['torch'] = None  # `import torch` raises ImportError\n"
      f'sys.argv = [{module!r}, *{list(args)!r}]\n'
      f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
  )
  env = dict(os.environ, WCSE_JAX_CACHE=str(cache / 'wcse_jax'), XDG_CACHE_HOME=str(cache),
             HF_HOME=str(cache / 'hf'), HF_HUB_OFFLINE='1')
  return subprocess.run(
      [sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
  )


@pytest.mark.parametrize('module', ENTRY_POINTS)
def test_entry_point_imports_and_shows_help_without_torch(module, tmp_path):
  result = run_without_torch(module, '--helpshort', cache=tmp_path)
  # absl prints the usage and exits 1 after --helpshort; a failed import is a traceback.
  assert result.returncode in (0, 1) and 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert 'python -m wcse_jax.' in result.stdout and 'torch' not in result.stderr.lower()


def test_main_job_runs_to_metrics_without_torch_and_empty_caches(tmp_path):
  run_dir = tmp_path / 'run'
  result = run_without_torch(
      'wcse_jax.sample', '--budget=1', '--limit=1', '--max_new_tokens=24', f'--output_dir={run_dir}',
      cache=tmp_path / 'cache',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((run_dir / 'metrics.json').read_text())
  assert metrics['models']['wc']['name'] == 'gemma3-270m'
  assert metrics['models']['wc']['samples_per_problem'] == 3  # floor(1 * 1B / 270M)
  shard = next((run_dir / 'samples').glob('wc-*/*.jsonl'))
  assert len(shard.read_text().splitlines()) == 3
  assert any((tmp_path / 'cache' / 'wcse_jax' / 'tokenizers').iterdir())

  report = run_without_torch('wcse_jax.report', str(run_dir), cache=tmp_path / 'cache')
  assert report.returncode == 0, report.stderr[-3000:]
  assert (run_dir / 'report.md').exists()
  ablations = run_without_torch('wcse_jax.subsets', str(run_dir), cache=tmp_path / 'cache')
  assert ablations.returncode == 0, ablations.stderr[-3000:]
  assert (run_dir / 'sft' / 'wc-gemma3-270m-number_matched.recipe.json').exists()
  assert 'wc-gemma3-270m-one_per_problem' in (run_dir / 'sft' / 'README.md').read_text()
  graded = tmp_path / 'graded.jsonl'
  grade = run_without_torch('wcse_jax.grade', '--dataset=gsm8k', str(shard), str(graded),
                            cache=tmp_path / 'cache')
  assert grade.returncode == 0, grade.stderr[-3000:]
  assert len(graded.read_text().splitlines()) == 3
  describe = run_without_torch('wcse_jax.model', 'describe', 'gemma3-270m', cache=tmp_path / 'cache')
  assert describe.returncode == 0 and '268' in describe.stdout, describe.stderr[-3000:]
