"""`python -m wcse_jax.finetune` on a tiny model: SIGTERM saves and exits, SIGKILL
loses nothing, and the resumed run ends with the parameters of an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from conftest import REPO
from wcse_jax.checkpoints import load_model
from wcse_jax.data import load_problems, solution_with_final_answer
from wcse_jax.train.checkpoints import TrainCheckpoints

STEPS = 12


def _sft_file(path):
  problems = load_problems('gsm8k', 'train').problems[:24]
  with open(path, 'w') as f:
    for p in problems:
      solution = solution_with_final_answer(p.solution, p.answer, 'gsm8k')
      f.write(json.dumps({'problem_id': p.id, 'question': p.question, 'solution': solution}) + '\n')


def _command(model_dir, data, out):
  return [
      sys.executable, '-m', 'wcse_jax.finetune', f'--config={REPO}/configs/finetune.py:local',
      f'--model={model_dir}', f'--data={data}', f'--output_dir={out}', f'--steps={STEPS}',
      '--config.num_evals=0', '--config.val_count=0', '--config.save_every=2',
      '--config.log_every=1', '--config.seq_len=256', '--config.batch_rows=2',
      '--config.learning_rate=1e-3', '--config.warmup_steps=2',
  ]


def _env():
  return dict(os.environ, TQDM_DISABLE='1', HF_HUB_OFFLINE='1')


def _logged_steps(out):
  path = out / 'metrics.jsonl'
  return path.read_bytes().count(b'\n') if path.exists() else 0


def _start_and_stop(command, out, *, after_steps, sig):
  process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 300
  while process.poll() is None and time.monotonic() < deadline and _logged_steps(out) < after_steps:
    time.sleep(0.01)
  process.send_signal(sig)
  _, stderr = process.communicate(timeout=120)
  return process.returncode, stderr


def _losses(out):
  return [json.loads(line)['loss'] for line in (out / 'metrics.jsonl').read_text().splitlines()]


def test_preempted_and_killed_run_ends_like_an_uninterrupted_one(tiny_model_dir, tmp_path):
  data = tmp_path / 'sft.jsonl'
  _sft_file(data)
  reference = tmp_path / 'reference'
  result = subprocess.run(_command(tiny_model_dir, data, reference), cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]

  resumed = tmp_path / 'resumed'
  command = _command(tiny_model_dir, data, resumed)
  code, stderr = _start_and_stop(command, resumed, after_steps=3, sig=signal.SIGTERM)
  assert code == 143, stderr[-3000:]
  assert 'Preempted: saved step' in stderr
  stopped_at = TrainCheckpoints(resumed / 'checkpoints').latest_step()
  assert 3 <= stopped_at < STEPS
  code, _ = _start_and_stop(command, resumed, after_steps=stopped_at + 3, sig=signal.SIGKILL)
  assert code == -signal.SIGKILL
  result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]

  np.testing.assert_allclose(_losses(resumed), _losses(reference), rtol=1e-5)
  ours = load_model(str(resumed / 'best'), dtype=jnp.float32, with_tokenizer=False).params
  theirs = load_model(str(reference / 'best'), dtype=jnp.float32, with_tokenizer=False).params
  worst = max(jax.tree.leaves(jax.tree.map(lambda a, b: jnp.abs(a - b).max(), ours, theirs)))
  assert worst < 1e-5
  assert json.loads((resumed / 'summary.json').read_text())['best_step'] == STEPS


def test_preemption_on_a_step_just_saved_on_schedule_exits_cleanly(tiny_model_dir, tmp_path):
  data = tmp_path / 'sft.jsonl'
  _sft_file(data)
  out = tmp_path / 'run'
  # Every step is saved on schedule, so the SIGTERM always lands on a saved step.
  command = [*_command(tiny_model_dir, data, out), '--config.save_every=1']
  code, stderr = _start_and_stop(command, out, after_steps=2, sig=signal.SIGTERM)
  assert code == 143, stderr[-3000:]
  stopped_at = TrainCheckpoints(out / 'checkpoints').latest_step()
  assert f'Preempted: saved step {stopped_at};' in stderr
  assert 2 <= stopped_at < STEPS


def test_a_run_that_saved_nothing_restarts_with_new_settings(tiny_model_dir, tmp_path):
  data = tmp_path / 'sft.jsonl'
  _sft_file(data)
  out = tmp_path / 'run'
  command = [*_command(tiny_model_dir, data, out), '--steps=2']
  command = [a if a != '--config.num_evals=0' else '--config.num_evals=2' for a in command]
  failed = subprocess.run([*command, '--config.batch_rows=64'], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=600)
  assert failed.returncode == 1 and 'fewer than batch_rows=64 rows' in failed.stderr
  assert not TrainCheckpoints.any_saved(out / 'checkpoints')
  result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads((out / 'config.json').read_text())['batch_rows'] == 2
  # No held-out problems (val_count=0): nothing is scored and the last step is exported.
  summary = json.loads((out / 'summary.json').read_text())
  assert (summary['best_step'], summary['validation']) == (2, [])
  # Once a step is saved, the settings bind the run.
  refused = subprocess.run([*command, '--config.batch_rows=4'], cwd=REPO, env=_env(),
                           capture_output=True, text=True, timeout=600)
  assert refused.returncode == 1 and 'other settings (batch_rows)' in refused.stderr
