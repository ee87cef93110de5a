"""The accelerator check's driver script (`benchmarks/device_check.sh`), run with a stand-in
Python: argument handling, every step run whatever an earlier one gave, failures reported."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'benchmarks' / 'device_check.sh'

# Answers what the script asks of Python: the kernel tests fail, the benchmarks print JSON
# that names their arguments, everything else succeeds.
STAND_IN = """#!/usr/bin/env bash
case "$*" in
  *pytest*) echo "1 failed"; exit 1 ;;
  *decode.py*) printf '{"args": "%s"}\\n' "$*" ;;
  *) echo "stand-in" ;;
esac
"""


def _run(tmp_path, *args, env=None):
  python = tmp_path / 'python'
  python.write_text(STAND_IN)
  python.chmod(0o755)
  env = {**os.environ, 'PYTHON': str(python), 'OUT': str(tmp_path / 'out'), **(env or {})}
  return subprocess.run(['bash', str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def test_a_failed_step_does_not_stop_the_later_ones(tmp_path):
  result = _run(tmp_path)
  assert result.returncode == 1, result.stderr
  assert 'failed: kernel_tests' in result.stdout
  out = tmp_path / 'out'
  assert (out / 'kernel_tests.log').read_text().strip() == '1 failed'
  paged = (out / 'decode_paged.json').read_text()
  assert '--random=gemma2-2b' in paged and '--num_slots=64,256' in paged and '--kv_layouts=paged ' in paged
  assert '--profile=' in paged
  dense = (out / 'decode_dense.json').read_text()
  assert '--num_slots=256' in dense and '--kv_layouts=dense' in dense
  chunks = (out / 'decode_chunks.json').read_text()
  assert '--num_slots=256' in chunks and '--kv_layouts=paged ' in chunks and '--chunk_steps=64' in chunks
  assert not (out / 'gpu_paged_blocks.json').exists()  # the stand-in's backend is no GPU
  assert sorted(p.name for p in out.iterdir()) == [  # a device machine brings back 8 files
      'decode_chunks.json', 'decode_dense.json', 'decode_paged.json', 'kernel_tests.log']


def test_the_dry_run_uses_toy_sizes(tmp_path):
  result = _run(tmp_path, '--dry-run')
  assert result.returncode == 1
  paged = (tmp_path / 'out' / 'decode_paged.json').read_text()
  assert '--random=gemma3-270m' in paged and '--new_tokens=8' in paged and '--num_slots=8' in paged
  assert (tmp_path / 'out' / 'gpu_paged_blocks.json').read_text().strip() == 'stand-in'


def test_steps_past_the_deadline_are_skipped_and_reported(tmp_path):
  result = _run(tmp_path, env={'DEADLINE': '0'})
  assert result.returncode == 1
  assert 'failed: kernel_tests decode_paged decode_chunks decode_dense' in result.stdout
  assert 'skipped decode_dense: the deadline is near' in result.stderr
  assert not (tmp_path / 'out' / 'decode_paged.json').exists()


def test_an_unknown_argument_is_refused(tmp_path):
  result = _run(tmp_path, '--bogus')
  assert result.returncode == 2
  assert 'usage:' in result.stderr
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('args, message', [
    (['--tokenizer=somewhere', '--peers='], '--tokenizer is for --random'),
    (['--random=gemma2-2b', '--peers=transformers'], 'add --peers='),
    (['--num_slots=64,many', '--peers='], 'give slot counts'),
    (['--samples=0', '--peers='], 'must be positive'),
])
def test_the_benchmark_refuses_flags_that_do_not_go_together(args, message):
  result = subprocess.run(
      [sys.executable, str(ROOT / 'benchmarks' / 'decode.py'), *args], capture_output=True, text=True, timeout=300,
  )
  assert result.returncode == 2
  assert message in result.stderr
