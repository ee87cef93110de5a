"""The false-positive-rate commands on a run directory."""

import csv
import json
import subprocess
import sys

from conftest import REPO
from wcse_jax import rundir
from wcse_jax.data import load_problems
from wcse_jax.false_positives import greedy_generate


def _fake_run(run_dir, model='gemma3-270m'):
  """A run directory with 6 correct and 2 wrong GSM8K samples."""
  problems = load_problems('gsm8k', 'test').problems[:4]
  config = {'dataset': 'gsm8k', 'split': 'test', 'data_source': 'bundled', 'wc': model}
  rundir.check_or_write_config(run_dir, config)
  samples = [
      {'problem_index': j, 'problem_id': p.id, 'sample': i, 'text': f'{p.solution} ({i})',
       'correct': i < 2 or j == 0}
      for j, p in enumerate(problems) for i in range(2)
  ]
  with rundir.ShardWriter(rundir.shard_path(run_dir, rundir.model_dir_name('wc', model))) as w:
    w.write(samples)


def _write_labels(path, labels):
  rows = list(csv.DictReader(path.open()))
  for row, label in zip(rows, labels):
    row['label'] = label
  with path.open('w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def _cli(*args):
  return subprocess.run(
      [sys.executable, '-m', 'wcse_jax.false_positives', *map(str, args)],
      cwd=REPO, capture_output=True, text=True,
  )


def test_export_and_read_human_labels(tmp_path):
  run_dir = tmp_path / 'run'
  _fake_run(run_dir)
  out = tmp_path / 'labels.csv'
  assert _cli('export', run_dir, out, '--num=5').returncode == 0
  rows = list(csv.DictReader(out.open()))
  assert len(rows) == 5 and all(r['label'] == '' for r in rows)
  _write_labels(out, ['invalid'] + ['valid'] * 4)
  result = _cli('labels', run_dir, out)
  assert result.returncode == 0, result.stderr
  human = json.loads((run_dir / 'false_positives.json').read_text())['wc']['human']
  assert (human['invalid'], human['judged'], human['rate']) == (1, 5, 0.2)
  assert human['low'] < 0.2 < human['high']


def test_bad_label_is_one_clear_line(tmp_path):
  run_dir = tmp_path / 'run'
  _fake_run(run_dir)
  out = tmp_path / 'labels.csv'
  _cli('export', run_dir, out, '--num=2')
  _write_labels(out, ['maybe', 'valid'])
  result = _cli('labels', run_dir, out)
  assert result.returncode == 1
  assert result.stderr.startswith('error: ') and "label 'maybe'" in result.stderr
  assert result.stderr.strip().count('\n') == 0


def test_greedy_generate_answers_every_prompt(tiny_model_dir):
  generate = greedy_generate(str(tiny_model_dir), max_new_tokens=6)
  prompts = ['Q: 1+1?\nA:', 'Q: What is 3 times 4?\nA:', 'Q: 1+1?\nA:']
  replies = generate(prompts)
  assert len(replies) == 3 and replies[0] == replies[2]  # greedy: same prompt, same reply


def test_a_missing_csv_argument_is_a_usage_error(tmp_path):
  run_dir = tmp_path / 'run'
  _fake_run(run_dir)
  for verb in ('export', 'labels'):
    result = _cli(verb, run_dir)
    assert result.returncode == 1 and 'usage: false_positives' in result.stderr
    assert 'Traceback' not in result.stderr
