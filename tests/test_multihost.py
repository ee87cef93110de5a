"""Multi-process jobs on this machine (several JAX processes on CPU devices with a
local coordinator): sampling with a shard per process, one summary of all of them,
kills and restarts, run directories the processes do not share, and run
directories on an object store (a local stand-in for gs://)."""

import json
import re
import shutil
import sys

import pytest

import multihost
import objectstore
from conftest import REPO
from wcse_jax import parallel, rundir


def _sample_command(model_dir, output_dir, *extra):
  return [
      sys.executable, '-m', 'wcse_jax.sample', f'--config={REPO}/configs/sample.py:local',
      f'--wc={model_dir}', f'--se={model_dir}', '--dataset=gsm8k', '--split=test',
      '--limit=5', '--max_new_tokens=24', '--num_slots=2', '--match=number', '--budget=4',
      '--flush_every=1', f'--output_dir={output_dir}', *extra,
  ]


def _samples(run_dir, model_dir):
  return sorted(rundir.samples_of(run_dir, model_dir), key=lambda r: (r['problem_index'], r['sample']))


def _summary_files(run_dir):
  """Every file but the sample shards, whose names carry the number of processes."""
  return {
      str(p.relative_to(run_dir)): p.read_bytes()
      for p in sorted(run_dir.rglob('*')) if p.is_file() and 'samples' not in p.parts
  }


@pytest.fixture(scope='module')
def one_process_run(tiny_model_dir, tmp_path_factory):
  run_dir = tmp_path_factory.mktemp('one') / 'run'
  multihost.run(_sample_command(tiny_model_dir, run_dir), 1)
  return run_dir


def test_two_processes_write_a_shard_each_and_one_summary_of_all(tiny_model_dir, one_process_run, tmp_path):
  run_dir = tmp_path / 'run'
  results = multihost.run(_sample_command(tiny_model_dir, run_dir), 2)
  model = f'wc-{tiny_model_dir.name}'
  shards = sorted(p.name for p in (run_dir / 'samples' / model).iterdir())
  assert shards == ['shard-00000-of-00002.jsonl', 'shard-00001-of-00002.jsonl']
  for host in (0, 1):  # problem j is process j % 2's
    lines = rundir.read_lines(rundir.shard_path(run_dir, model, host, 2))
    assert {r['problem_index'] % 2 for r in lines} == {host} and len(lines) == (3 - host) * 4
  assert 'Ran 5 gsm8k' in results[0][1] and 'Ran 5 gsm8k' not in results[1][1]  # process 0 summarises
  assert _samples(run_dir, model) == _samples(one_process_run, model)
  assert json.loads((run_dir / 'metrics.json').read_text())['models']['wc']['samples'] == 5 * 4
  assert _summary_files(run_dir) == _summary_files(one_process_run)


@pytest.mark.slow  # about 3 minutes: two runs of the bundled model
def test_the_bundled_model_sampled_by_two_processes_gives_the_samples_of_one(tmp_path):
  command = lambda out: [
      sys.executable, '-m', 'wcse_jax.sample', '--dataset=gsm8k', '--split=test', '--limit=3',
      '--budget=2', '--match=number', '--max_new_tokens=48', '--num_slots=4', f'--output_dir={out}']
  multihost.run(command(tmp_path / 'one'), 1)
  multihost.run(command(tmp_path / 'two'), 2)
  model = 'wc-gemma3-270m'
  assert len(_samples(tmp_path / 'two', model)) == 3 * 2
  assert _samples(tmp_path / 'two', model) == _samples(tmp_path / 'one', model)
  assert _summary_files(tmp_path / 'two') == _summary_files(tmp_path / 'one')


@pytest.mark.slow  # 40 s; the object-store test below kills and restarts a 2-process job in the default suite
def test_a_job_killed_mid_run_and_restarted_ends_with_the_same_files(tiny_model_dir, one_process_run, tmp_path):
  run_dir = tmp_path / 'run'
  model = f'wc-{tiny_model_dir.name}'
  processes = multihost.start(_sample_command(tiny_model_dir, run_dir), 2)
  shard = rundir.shard_path(run_dir, model, 1, 2)
  multihost.kill_when(processes, lambda: shard.exists() and shard.read_bytes().count(b'\n') >= 2)
  assert 2 <= shard.read_bytes().count(b'\n') < 8, 'not killed mid-way'
  with open(shard, 'ab') as f:  # as if killed in the middle of writing a line
    f.write(b'{"problem_index": 1, "sam')

  multihost.run(_sample_command(tiny_model_dir, run_dir), 2)
  assert _samples(run_dir, model) == _samples(one_process_run, model)
  assert _summary_files(run_dir) == _summary_files(one_process_run)


def test_unshared_run_directories_stop_the_summary_with_one_sentence(tiny_model_dir, one_process_run, tmp_path):
  # Each process writes to a directory of its own, as on hosts with their own disks.
  dirs = [tmp_path / f'host{i}' / 'run' for i in (0, 1)]
  command = _sample_command(tiny_model_dir, '{}')[:-1]
  results = multihost.wait(multihost.start(command, 2, per_process=lambda i: [f'--output_dir={dirs[i]}']))
  (code0, _, err0), (code1, _, _) = results
  assert code1 == 0 and code0 == 1
  model = f'wc-{tiny_model_dir.name}'
  error = err0.strip().splitlines()[-1]
  assert error.startswith("error: Host 0 cannot see every host's samples") and 'shard-00001-of-00002.jsonl (0 of 8 lines)' in error
  assert not (dirs[0] / 'metrics.json').exists()

  # Gathering the shards into one directory and running once there summarises the run.
  shutil.copy(rundir.shard_path(dirs[1], model, 1, 2), rundir.shard_path(dirs[0], model, 1, 2))
  multihost.run(_sample_command(tiny_model_dir, dirs[0]), 1)
  assert _samples(dirs[0], model) == _samples(one_process_run, model)
  assert _summary_files(dirs[0]) == _summary_files(one_process_run)


def test_a_job_on_an_object_store_killed_and_restarted_ends_with_the_same_files(
    tiny_model_dir, one_process_run, tmp_path
):
  root = tmp_path / 'store'
  command = [sys.executable, str(REPO / 'tests' / 'standin_run.py'),
             *_sample_command(tiny_model_dir, f'{objectstore.PROTOCOL}://bucket/runs/x')[2:]]
  job = lambda: multihost.start(command, 2, extra_env={objectstore.ROOT_ENV: str(root)})
  run_dir = root / 'bucket' / 'runs' / 'x'
  model = f'wc-{tiny_model_dir.name}'
  parts = run_dir / 'samples' / model / 'shard-00001-of-00002.jsonl.parts'
  processes = job()
  multihost.kill_when(processes, lambda: parts.exists() and len(list(parts.iterdir())) >= 2)
  assert 2 <= len(list(parts.iterdir())) < 8, 'not killed mid-way'

  results = multihost.wait(job())
  assert all(code == 0 for code, _, _ in results), results[0][2][-3000:]
  assert not parts.exists()  # folded into the shard
  assert _samples(run_dir, model) == _samples(one_process_run, model)
  assert _summary_files(run_dir) == _summary_files(one_process_run)


@pytest.fixture
def store(tmp_path, monkeypatch):
  monkeypatch.setenv(objectstore.ROOT_ENV, str(tmp_path / 'store'))
  objectstore.register()
  return tmp_path / 'store'


def test_object_store_lines_are_parts_until_folded_and_a_crash_between_leaves_copies_only(store):
  shard = rundir.shard_path(rundir.run_path(f'{objectstore.PROTOCOL}://bucket/run'), 'wc-m', 0, 1)
  with rundir.ShardWriter(shard) as writer:
    writer.write([{'problem_index': 1, 'sample': 0}])
    writer.write([{'problem_index': 0, 'sample': 1}, {'problem_index': 0, 'sample': 0}])
  with pytest.raises(OSError, match='cannot append'):
    with shard.open('a') as f:
      f.write('x')
  local = store / 'bucket' / 'run' / 'samples' / 'wc-m'
  assert sorted(p.name for p in (local / 'shard-00000-of-00001.jsonl.parts').iterdir()) == [
      'part-000000.jsonl', 'part-000001.jsonl']
  assert rundir.has_samples(shard.parents[2]) and len(rundir.read_lines(shard)) == 3
  # A crash after the fold's put, before its deletes: the parts repeat the shard.
  parts = {p.name: p.read_bytes() for p in (local / 'shard-00000-of-00001.jsonl.parts').iterdir()}
  assert rundir.finalize_shard(shard) == 3
  (local / 'shard-00000-of-00001.jsonl.parts').mkdir()
  for name, data in parts.items():
    (local / 'shard-00000-of-00001.jsonl.parts' / name).write_bytes(data)
  assert len(list(rundir.samples_of(shard.parents[2], 'wc-m'))) == 3
  assert rundir.finalize_shard(shard) == 3
  assert [(r['problem_index'], r['sample']) for r in rundir.read_lines(shard)] == [(0, 0), (0, 1), (1, 0)]
  assert not (local / 'shard-00000-of-00001.jsonl.parts').exists()


def test_a_finetuning_log_on_an_object_store_resumes_as_one_run(store):
  from wcse_jax.train.log import MetricsLog  # pylint: disable=g-import-not-at-top

  out = rundir.run_path(f'{objectstore.PROTOCOL}://bucket/finetune')
  log = MetricsLog(out, resume_step=0)
  for step in (1, 2, 3):
    log.write({'step': step, 'loss': 1.0 / step})
  log.close()
  assert not log.tensorboard and not (store / 'bucket' / 'finetune' / 'tensorboard').exists()
  log = MetricsLog(out, resume_step=2)  # restored step 2: step 3 is redone
  log.write({'step': 3, 'loss': 0.25})
  log.write({'step': 4, 'loss': 0.2, 'val_pass_at_1': 0.5})
  assert [r['loss'] for r in rundir.read_lines(out / 'metrics.jsonl')] == [1.0, 0.5, 0.25, 0.2]
  assert log.validations() == [{'step': 4, 'loss': 0.2, 'val_pass_at_1': 0.5}]


@pytest.mark.parametrize('args, env, message', [
    (dict(coordinator_address='localhost:1234'), {}, 'needs --num_processes and --process_id'),
    (dict(num_processes=2, process_id=1), {}, 'without a coordinator'),
    (dict(coordinator_address='localhost:1234', num_processes=2, process_id=2), {}, 'must be in [0, 2)'),
    ({}, {'JAX_COORDINATOR_ADDRESS': 'localhost:1234', 'JAX_NUM_PROCESSES': 'two'}, 'not an integer'),
])
def test_bad_multi_process_settings_stop_with_one_sentence(args, env, message, monkeypatch):
  for name in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID', 'TPU_WORKER_HOSTNAMES'):
    monkeypatch.delenv(name, raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  with pytest.raises(parallel.MultihostError, match=re.escape(message)):
    parallel.initialize_multihost(**args)


def _losses(out):
  return [json.loads(line)['loss'] for line in (out / 'metrics.jsonl').read_text().splitlines()]


@pytest.mark.slow  # 2 minutes
def test_finetuning_on_a_mesh_of_two_processes_follows_one_process_and_resumes(tiny_model_dir, tmp_path):
  from test_finetune_run import STEPS, _command, _sft_file  # pylint: disable=g-import-not-at-top

  data = tmp_path / 'sft.jsonl'
  _sft_file(data)
  reference = tmp_path / 'one'
  multihost.run(_command(tiny_model_dir, data, reference), 1)

  # Two processes, one CPU device each: the data axis spans both. Killed after a
  # checkpoint, restarted, the run restores that checkpoint in both processes.
  out = tmp_path / 'two'
  processes = multihost.start(_command(tiny_model_dir, data, out), 2)
  metrics = out / 'metrics.jsonl'
  multihost.kill_when(processes, lambda: metrics.exists() and metrics.read_bytes().count(b'\n') >= 5, poll=0.01)
  assert 5 <= metrics.read_bytes().count(b'\n') < STEPS, 'not killed mid-way'
  results = multihost.run(_command(tiny_model_dir, data, out), 2)
  assert 'from step 4' in results[0][2] or 'from step 6' in results[0][2]
  assert _losses(out) == pytest.approx(_losses(reference), rel=1e-4)
  assert json.loads((out / 'summary.json').read_text())['best_step'] == STEPS

  # Exported by two processes (each gathers its shards) or by one: the same files.
  export = lambda target, n: multihost.run(
      [sys.executable, '-m', 'wcse_jax.export', str(out / 'best'), str(target), '--dtype=float32'], n)
  export(tmp_path / 'hf2', 2)
  export(tmp_path / 'hf1', 1)
  files = lambda d: {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}
  assert files(tmp_path / 'hf2') == files(tmp_path / 'hf1') and any(n.endswith('.safetensors') for n in files(tmp_path / 'hf1'))
