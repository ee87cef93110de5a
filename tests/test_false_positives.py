"""The false-positive-rate commands on a run directory."""

import csv
import json
import subprocess
import sys
import types

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


def test_the_default_judge_is_the_runs_se_model_never_the_bundled_270m(tmp_path):
  from wcse_jax import false_positives  # pylint: disable=g-import-not-at-top

  run_dir = tmp_path / 'run'
  _fake_run(run_dir)
  assert false_positives.judge_model(run_dir, 'google/gemma-2-27b') == 'google/gemma-2-27b'
  config = json.loads((run_dir / 'config.json').read_text())
  (run_dir / 'config.json').write_text(json.dumps({**config, 'se': 'gemma2-27b'}))
  assert false_positives.judge_model(run_dir, '') == 'gemma2-27b'
  for weak in ('gemma3-270m', '/models/gemma3-270m.gguf'):
    result = _cli('judge', run_dir, f'--judge={weak}')
    assert result.returncode == 1 and 'too small to judge' in result.stderr
    assert result.stderr.strip().count('\n') == 0


def test_the_judge_prompt_is_a_file_a_user_can_change(tmp_path, tiny_model_dir):
  from wcse_jax import metrics  # pylint: disable=g-import-not-at-top

  run_dir = tmp_path / 'run'
  _fake_run(run_dir)
  bundled = metrics.judge_template()
  assert '{solution}' in bundled and 'Verdict: valid' in bundled
  broken = tmp_path / 'broken.txt'
  broken.write_text('Judge this: {question}')
  result = _cli('judge', run_dir, f'--judge={tiny_model_dir}', f'--judge_prompt={broken}')
  assert result.returncode == 1 and 'lacks {gold_solution}, {solution}' in result.stderr
  mine = tmp_path / 'mine.txt'
  mine.write_text('Q {question} \\frac{1}{2} G {gold_solution} S {solution} -> Verdict?')
  candidate = metrics.Candidate('p', 'what?', 'gold', 'mine')
  assert metrics.judge_prompt(candidate, metrics.judge_template(mine)) == 'Q what? \\frac{1}{2} G gold S mine -> Verdict?'
  # A random tiny model gives no verdict: one sentence, not a rate of nothing.
  result = _cli('judge', run_dir, f'--judge={tiny_model_dir}', f'--judge_prompt={mine}', '--num=2',
                '--max_new_tokens=4')
  assert result.returncode == 1 and 'gave no "Verdict: valid/invalid" line' in result.stderr


def test_the_report_shows_human_and_judge_rates_with_intervals(tmp_path):
  from wcse_jax import false_positives, report  # pylint: disable=g-import-not-at-top

  run_dir = tmp_path / 'run'
  _fake_run(run_dir)
  estimate = json.loads(json.dumps({'rate': 0.2, 'low': 0.04, 'high': 0.6, 'invalid': 1, 'judged': 5}))
  false_positives.record(run_dir, 'wc', 'human', types.SimpleNamespace(**estimate), labels='l.csv')
  lines = report.false_positive_lines(json.loads((run_dir / 'false_positives.json').read_text()))
  assert any('| WC | human | 0.200 [0.040, 0.600] | 1 / 5 | l.csv |' in line for line in lines)
