"""Adaptive allocation: the round planner on known grades, and the sampling run end to end."""

from __future__ import annotations

import json
import sys

import pytest

from wcse_jax import rundir
from wcse_jax.sampling import allocation

from test_sample_run import _command, _files, _run  # pylint: disable=g-bad-import-order


def _plan(samples, **kw):
  args = dict(problems=range(4), prompt_tokens={j: 10 for j in range(4)}, prefix_tokens=100, uniform_samples=8,
              round_samples=2, stop_after_correct=1, max_new_tokens=20)
  return allocation.next_round(samples, **{**args, **kw})


def _answered(plan, solved=(), tokens=10):
  return [{'problem_index': j, 'sample': i, 'correct': j in solved, 'num_tokens': tokens} for j, i in plan.pairs]


def test_rounds_start_uniform_then_feed_the_unsolved_within_the_uniform_budget():
  first = _plan([])
  assert first.index == 0 and first.pairs == tuple((j, i) for j in range(4) for i in range(2))
  samples = _answered(first, solved={0, 1})
  second = _plan(samples)
  # Budget: 100 + 4*10 + 8 * 4 * 10 = 460 tokens; spent 100 + 40 + 80 = 220. The prefix is paid
  # once; a later round costs at most, per problem, 10 + 2 * 20 = 50: both unsolved problems fit,
  # the solved ones stop.
  assert second.index == 1 and second.pairs == ((2, 2), (2, 3), (3, 2), (3, 3))
  assert (second.spent_tokens, second.budget_tokens) == (220, 460)
  samples += _answered(second)
  third = _plan(samples)  # 280 spent, 180 left: both again
  assert third.pairs == ((2, 4), (2, 5), (3, 4), (3, 5)) and third.spent_tokens == 280
  plan = third
  while plan.pairs:
    assert {j for j, _ in plan.pairs} <= {2, 3}
    samples += _answered(plan)
    plan = _plan(samples)
  # Stopped when not even one more sample's worst case (its prompt and 20 tokens) fits.
  assert 0 <= plan.budget_tokens - plan.spent_tokens < 10 + 20


def test_the_last_round_gives_a_problem_the_samples_that_fit():
  samples = _answered(_plan([]))  # 220 spent of 460, nothing solved: every problem wants 50
  kw = dict(max_new_tokens=30)  # 10 + 2 * 30 = 70 a problem: three fit (210), the fourth gets none
  second = _plan(samples, **kw)
  assert second.pairs == tuple((j, i) for j in range(3) for i in (2, 3))
  kw = dict(max_new_tokens=40)  # 90 a problem: two fit (180); 60 left buys the third one sample (50)
  assert _plan(samples, **kw).pairs == ((0, 2), (0, 3), (1, 2), (1, 3), (2, 2))


def test_the_freed_budget_goes_to_the_unsolved_problems():
  kw = dict(problems=range(8), prompt_tokens={j: 10 for j in range(8)}, prefix_tokens=10, max_new_tokens=12)
  samples = _answered(_plan([], **kw), solved=set(range(6)))
  while (plan := _plan(samples, **kw)).pairs:
    assert {j for j, _ in plan.pairs} <= {6, 7}
    samples += _answered(plan)
  assert plan.spent_tokens <= plan.budget_tokens
  drawn = {j: sum(s['problem_index'] == j for s in samples) for j in range(8)}
  assert all(drawn[j] == 2 for j in range(6)) and min(drawn[6], drawn[7]) > 8  # more than uniform's 8


def test_a_round_cut_short_is_finished_first():
  first = _plan([])
  partial = _answered(first)[:5]
  again = _plan(partial)
  assert again.index == 0 and again.pairs == first.pairs[5:]


def test_bad_allocation_settings():
  with pytest.raises(ValueError, match='must be >= 1'):
    _plan([], round_samples=0)


def test_an_adaptive_run_spends_no_more_than_uniform_and_resumes_to_the_same_files(tiny_model_dir, tmp_path):
  args = ('--match=number', '--budget=8', '--flush_every=1', '--round_samples=2', '--stop_after_correct=1')
  uniform = tmp_path / 'uniform'
  _run(_command(tiny_model_dir, uniform, *args))
  adaptive = tmp_path / 'adaptive'
  _run(_command(tiny_model_dir, adaptive, *args, '--allocation=adaptive'))
  spent = {name: json.loads((d / 'metrics.json').read_text())['models']['wc']['allocation']
           for name, d in (('uniform', uniform), ('adaptive', adaptive))}
  assert spent['uniform']['kind'] == 'uniform' and spent['adaptive']['kind'] == 'adaptive'
  assert spent['adaptive']['flops'] <= spent['adaptive']['uniform_budget_flops']
  assert spent['adaptive']['flops'] <= spent['uniform']['flops'] * 1.05  # the estimate, within its noise
  shown = _run([sys.executable, '-m', 'wcse_jax.report', str(uniform), str(adaptive)]).stdout
  assert f'| {uniform} | uniform |' in shown and f'| {adaptive} | adaptive (m=1, ' in shown
  samples = list(rundir.samples_of(adaptive, f'wc-{tiny_model_dir.name}'))
  assert {s['sample'] for s in samples if s['sample'] < 2} == {0, 1}  # round 0: every problem's first two
  # Killed after its first rounds and restarted: the files of the run that was not interrupted.
  resumed = tmp_path / 'resumed'
  shard = rundir.shard_path(resumed, f'wc-{tiny_model_dir.name}')
  reference = [line for line in (rundir.shard_path(adaptive, f'wc-{tiny_model_dir.name}')).read_text().splitlines()]
  shard.parent.mkdir(parents=True)
  shard.write_text('\n'.join(reference[: len(reference) // 2]) + '\n{"problem_index": 0, "sam')
  _run(_command(tiny_model_dir, resumed, *args, '--allocation=adaptive'))
  assert _files(resumed)['samples/' + str(shard.relative_to(resumed / 'samples'))] == \
      _files(adaptive)['samples/' + str(shard.relative_to(resumed / 'samples'))]
