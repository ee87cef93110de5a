"""`python -m wcse_jax.sample` end to end on a tiny model: files, FLOPs, and
resuming after SIGKILL to exactly the files of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from wcse_jax import rundir
from wcse_jax.model import count_params
from wcse_jax.checkpoints import config_of, load_tokenizer
from wcse_jax.data import few_shot_prompt, load_problems
from wcse_jax.sampling import tokenize_prompts


def _command(model_dir, output_dir, *extra):
  return [
      sys.executable, '-m', 'wcse_jax.sample', f'--config={REPO}/configs/sample.py:local',
      f'--wc={model_dir}', f'--se={model_dir}', '--dataset=gsm8k', '--split=test',
      '--limit=6', '--max_new_tokens=40', '--num_slots=2', f'--output_dir={output_dir}',
      *extra,
  ]


def _env():
  return dict(os.environ, HF_HUB_OFFLINE='1', TQDM_DISABLE='1')


def _run(command):
  result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _files(run_dir):
  return {
      str(p.relative_to(run_dir)): p.read_bytes()
      for p in sorted(run_dir.rglob('*')) if p.is_file()
  }


def test_both_models_files_and_flops(tiny_model_dir, tmp_path):
  run_dir = tmp_path / 'run'
  result = _run(_command(tiny_model_dir, run_dir, '--sample_se=yes', '--match=compute', '--budget=2'))
  assert 'SE sampled' in result.stdout
  metrics = json.loads((run_dir / 'metrics.json').read_text())
  params = count_params(config_of(str(tiny_model_dir)))
  prompt = few_shot_prompt('gsm8k')
  questions = [prompt.format_question(p.question) for p in load_problems('gsm8k', 'test').problems[:6]]
  _, prompts = tokenize_prompts(
      load_tokenizer(tiny_model_dir), prompt.prefix, questions, share_prefix=False
  )
  for role in ('wc', 'se'):
    model = metrics['models'][role]
    samples = list(rundir.samples_of(run_dir, f'{role}-{tiny_model_dir.name}'))
    assert len(samples) == 6 * 2 == model['samples']
    assert {(s['problem_index'], s['sample']) for s in samples} == {(j, i) for j in range(6) for i in range(2)}
    generated = sum(s['num_tokens'] for s in samples)
    assert model['tokens']['generated'] == generated
    # Each prompt is the few-shot prefix and the question in the prefix's format.
    assert [s['prompt_tokens'] for s in samples if s['sample'] == 0] == [len(p.ids) for p in prompts]
    assert model['flops']['generated'] == 2.0 * params * generated
    assert model['flops']['prompt_computed'] == 2.0 * params * model['tokens']['prompt_computed']
    # The prefix once and each problem's own text once: less than every prompt in full.
    assert model['tokens']['prompt_computed'] < model['tokens']['prompt']
    assert set(s['finish_reason'] for s in samples) <= {'eos', 'stop', 'length'}
  assert [row['se_k'] for row in metrics['matched']] == [1, 2]
  assert (run_dir / 'sft' / f'wc-{tiny_model_dir.name}.jsonl').exists()


def test_sigkill_and_restart_end_with_the_uninterrupted_files(tiny_model_dir, tmp_path):
  args = ('--match=number', '--budget=12', '--flush_every=1')
  reference = tmp_path / 'reference'
  _run(_command(tiny_model_dir, reference, *args))
  total = 6 * 12

  resumed = tmp_path / 'resumed'
  shard = rundir.shard_path(resumed, f'wc-{tiny_model_dir.name}')
  process = subprocess.Popen(
      _command(tiny_model_dir, resumed, *args), cwd=REPO, env=_env(),
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
  )
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline and process.poll() is None:
    if shard.exists() and shard.read_bytes().count(b'\n') >= 3:
      break
    time.sleep(0.005)
  process.send_signal(signal.SIGKILL)
  process.wait()
  written = shard.read_bytes().count(b'\n')
  assert 3 <= written < total, f'killed after {written} of {total} samples: not mid-way'
  with open(shard, 'ab') as f:  # as if killed in the middle of writing a line
    f.write(b'{"problem_index": 0, "sam')

  _run(_command(tiny_model_dir, resumed, *args))
  assert _files(resumed) == _files(reference)


def test_a_resumed_run_refuses_other_settings(tiny_model_dir, tmp_path):
  run_dir = tmp_path / 'run'
  cpu = rundir.resumable_keys('cpu', 'float32')
  rundir.check_or_write_config(run_dir, {'budget': 'low', 'num_slots': 2}, resumable=cpu)
  rundir.check_or_write_config(run_dir, {'budget': 'low', 'num_slots': 8}, resumable=cpu)  # throughput only
  with pytest.raises(rundir.RunError, match='other settings \\(budget\\)'):
    rundir.check_or_write_config(run_dir, {'budget': 'high', 'num_slots': 8}, resumable=cpu)
  # On an accelerator, or in bfloat16, batch shapes may change the numbers: they are settings too.
  for backend, dtype in (('gpu', 'bfloat16'), ('tpu', 'bfloat16'), ('cpu', 'bfloat16')):
    with pytest.raises(rundir.RunError, match='other settings \\(num_slots\\)'):
      rundir.check_or_write_config(
          run_dir, {'budget': 'low', 'num_slots': 4}, resumable=rundir.resumable_keys(backend, dtype))
  with pytest.raises(rundir.RunError, match='other settings \\(dtype\\)'):
    rundir.check_or_write_config(run_dir, {'budget': 'low', 'num_slots': 8, 'dtype': 'bfloat16'}, resumable=cpu)
  # Until a sample is written the settings bind nothing: a failed start is simply redone.
  assert not rundir.has_samples(run_dir)
  rundir.check_or_write_config(run_dir, {'budget': 'high'}, has_work=rundir.has_samples(run_dir))
  with rundir.ShardWriter(rundir.shard_path(run_dir, 'wc-m')) as writer:
    writer.write([{'problem_index': 0, 'sample_index': 0}])
  assert rundir.has_samples(run_dir)
  with pytest.raises(rundir.RunError, match='other settings \\(budget\\)'):
    rundir.check_or_write_config(run_dir, {'budget': 'low'}, has_work=rundir.has_samples(run_dir))


@pytest.mark.parametrize('flag, message', [
    ('--budget=huge', '--budget must be low, high or a positive integer'),
    ('--top_p=2', 'top_p must be in (0, 1]'),
    ('--config.match=matched', '--match must be one of compute, price, number'),
])
def test_a_bad_setting_stops_with_one_line_before_loading(flag, message, tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'wcse_jax.sample', flag, f'--output_dir={tmp_path}'],
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120,
  )
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines() == [f'error: {result.stderr.strip()[7:]}']
  assert message in result.stderr
  assert not any(tmp_path.iterdir())  # nothing written
