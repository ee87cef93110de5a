"""The paper's analyses on small synthetic runs whose answers are known, and the report that shows them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wcse_jax import analysis, metrics, report, rundir, summary
from wcse_jax.data.problems import Problem


def _samples(grades: list[list[bool]], texts: list[list[str]] | None = None) -> list[dict]:
  return [
      {'problem_index': p, 'sample': i, 'correct': ok, 'text': texts[p][i] if texts else f'solution {p}.{i}',
       'num_tokens': 1, 'prompt_tokens': 1, 'finish_reason': 'eos'}
      for p, row in enumerate(grades) for i, ok in enumerate(row)
  ]


def _problems(levels: list[int | None], subjects: list[str | None] | None = None) -> list[Problem]:
  subjects = subjects or [None] * len(levels)
  return [
      Problem(id=f'p{i}', dataset='math', question='q', answer='1', solution='', level=lv, subject=sj)
      for i, (lv, sj) in enumerate(zip(levels, subjects))
  ]


def test_coverage_and_diversity_by_level_and_subject():
  # Level 1: problems 0 and 1 always solved, by two distinct solutions; level 2: problem 2 never.
  grades = [[True, True], [True, True], [False, False]]
  texts = [['a', 'b'], ['a', 'b'], ['x', 'x']]
  problems = _problems([1, 1, 2], ['Algebra', 'Geometry', 'Algebra'])
  per_model, run_wide = summary.analyses({'wc': _samples(grades, texts)}, problems, 1.0, seed=0)
  wc = per_model['wc']
  assert run_wide == {}  # one model: nothing to compare
  # Every problem of a level solved (or none): the interval is Wilson's, not the bootstrap's
  # [1, 1]; two problems cannot show that coverage is 1.
  two_of_two = [1.0, *(round(x, 4) for x in metrics.wilson_interval(2, 2))]
  assert wc['by_level']['1']['coverage_at_k'] == {'1': two_of_two, '2': two_of_two}
  assert wc['by_level']['1']['diversity_at_k']['2'] == [2.0, 2.0, 2.0]
  assert wc['by_level']['2']['coverage_at_k']['2'] == [0.0, *(round(x, 4) for x in metrics.wilson_interval(0, 1))]
  assert wc['by_subject']['Algebra']['coverage_at_k']['1'][0] == pytest.approx(0.5)
  assert wc['by_subject']['Geometry']['problems'] == 1
  overall = wc['intervals']['coverage_at_k']['1']
  assert overall[0] == pytest.approx(2 / 3, abs=1e-4) and overall[1] <= 2 / 3 <= overall[2]


def test_gsm8k_has_no_levels_and_is_summarised_overall_only():
  per_model, _ = summary.analyses({'wc': _samples([[True], [False]])}, _problems([None, None]), 1.0, seed=0)
  assert set(per_model['wc']) == {'intervals'}


def test_solved_by_sets_and_the_matched_comparison():
  # WC: 3 samples a problem; SE: 1. Ratio 3: WC@3 against SE@1.
  wc = [[False, False, True], [False, False, False], [True, False, False], [False, False, False]]
  se = [[False], [True], [True], [False]]
  problems = _problems([1, 2, 1, 2])
  per_model, run_wide = summary.analyses({'wc': _samples(wc), 'se': _samples(se)}, problems, 3.0, seed=0)
  solved = run_wide['solved_by']
  assert (solved['wc_k'], solved['se_k']) == (3, 1)
  assert solved['counts'] == {'only_wc': 1, 'only_se': 1, 'both': 1, 'neither': 1}
  assert solved['problem_ids'] == {'only_wc': ['p0'], 'only_se': ['p1'], 'both': ['p2'], 'neither': ['p3']}
  row = run_wide['matched'][0]
  assert (row['wc_k'], row['se_k'], row['problems']) == (3, 1, 4)
  assert row['wc_coverage'][0] == pytest.approx(0.5) and row['se_coverage'][0] == pytest.approx(0.5)
  assert row['coverage_difference'][0] == pytest.approx(0.0)
  assert row['coverage_difference'][1] < 0 < row['coverage_difference'][2]
  by_level = run_wide['matched_by_level']
  assert by_level['1'][0]['wc_coverage'][0] == pytest.approx(1.0)  # p0 and p2
  assert by_level['2'][0]['se_coverage'][0] == pytest.approx(0.5)  # p1 of p1 and p3
  assert set(per_model) == {'wc', 'se'}


def test_intervals_are_reproducible_and_narrow_with_more_problems():
  rng = np.random.default_rng(1)
  small = rng.random((6, 4)) < 0.5
  large = rng.random((600, 4)) < 0.5
  first = summary.analyses({'wc': _samples(small.tolist())}, _problems([None] * 6), 1.0, seed=3)
  again = summary.analyses({'wc': _samples(small.tolist())}, _problems([None] * 6), 1.0, seed=3)
  assert first == again
  width = lambda r: r[2] - r[1]  # noqa: E731
  big, _ = summary.analyses({'wc': _samples(large.tolist())}, _problems([None] * 600), 1.0, seed=3)
  assert width(first[0]['wc']['intervals']['coverage_at_k']['1']) > 5 * width(big['wc']['intervals']['coverage_at_k']['1'])


def test_intervals_contain_the_true_coverage_at_the_nominal_rate():
  """Problems' success rates from Beta(0.5, 1.5); the interval of coverage@4 from 40 problems x 8
  samples should contain the population's coverage@4, E[1 - (1 - p)^4], in about 95% of runs."""
  rng = np.random.default_rng(0)
  a, b, k, runs = 0.5, 1.5, 4, 300
  truth = 1 - np.mean((1 - rng.beta(a, b, 2_000_000)) ** k)
  hits = 0
  for run in range(runs):
    p = rng.beta(a, b, 40)
    grades = rng.random((40, 8)) < p[:, None]
    curves = analysis.problem_curves({i: [{'correct': g, 'text': ''} for g in row] for i, row in enumerate(grades)})
    _, low, high = analysis.estimate_with_interval(curves.coverage, seed=run)[str(k)]
    hits += low <= truth <= high
  # 95% nominal; the binomial noise of 300 runs is about +-2.5 points, and percentile
  # bootstraps on 40 problems run a little narrow.
  assert 0.89 <= hits / runs <= 0.99, hits / runs


def test_report_shows_intervals_levels_and_solved_by(tmp_path):
  wc = [[False, False, True], [False, False, False], [True, False, False], [False, False, False]]
  se = [[False], [True], [True], [False]]
  problems = _problems([1, 2, 1, 2], ['Algebra'] * 4)
  samples = {'wc': _samples(wc), 'se': _samples(se)}
  per_model, run_wide = summary.analyses(samples, problems, 3.0, seed=0)
  del per_model, run_wide
  models = {role: {'name': role, 'params': 1e9, 'sft_examples': 1, **summary.model_metrics(s, params=1e9, prefix_tokens=0)}
            for role, s in samples.items()}
  result = {'plan': {'match': 'compute', 'se_samples': 1, 'wc_samples': 3, 'ratio': 3.0},
            'dataset': 'math', 'split': 'test', 'problems': 4, 'models': models}
  summary.add_analyses(result, samples, problems, 3.0, seed=0)
  stored = json.loads(json.dumps(result))
  assert stored['matched'][0]['coverage_difference'][0] == 0.0
  assert stored['matched'][0]['wc_coverage'] == 0.5 and len(stored['matched'][0]['wc_coverage_interval']) == 3
  text = report.markdown(stored)
  assert '0.500 [' in text and '## By MATH level' in text and '| 1 | 1 | 1 | 1 |' in text
  assert 'by subject' in text
  report.plot(stored, tmp_path / 'plot.png')
  assert (tmp_path / 'plot.png').stat().st_size > 0
  assert report.plot_levels(stored, tmp_path / 'levels.png') and (tmp_path / 'levels.png').stat().st_size > 0
  assert not report.plot_levels({'models': {}}, tmp_path / 'none.png')


def _comparable_run(run_dir, correct_texts, allocation, problems=4):
  """A run directory of one model whose problem j has the samples `correct_texts[j]` ((correct, text) pairs)."""
  shard = rundir.shard_path(run_dir, rundir.model_dir_name('wc', 'm'))
  shard.parent.mkdir(parents=True)
  lines = [{'problem_index': j, 'sample': i, 'correct': ok, 'text': text}
           for j, pairs in enumerate(correct_texts) for i, (ok, text) in enumerate(pairs)]
  shard.write_text(''.join(json.dumps(line) + '\n' for line in lines))
  model = {'name': 'm', 'samples': len(lines), 'samples_per_problem': 2, 'allocation': allocation,
           'flops': {'generated': 3e12, 'prompt_computed': 1e12}}
  (run_dir / 'metrics.json').write_text(json.dumps(
      {'dataset': 'gsm8k', 'split': 'train', 'problems': problems, 'models': {'wc': model}}))
  return run_dir


def test_runs_of_the_same_problems_compare_side_by_side_with_paired_differences(tmp_path):
  uniform = _comparable_run(tmp_path / 'u', [[(True, 'x = 1'), (True, 'x=2')], [(True, 'a'), (False, 'b')],
                                             [(False, 'c')] * 2, [(False, 'd')] * 2], {'kind': 'uniform'})
  adaptive = _comparable_run(tmp_path / 'a', [[(True, 'x = 1')], [(False, 'b')] * 3, [(True, 'c')], [(True, 'd')]],
                             {'kind': 'adaptive', 'stop_after_correct': 1, 'rounds': 3,
                              'samples_per_problem': {'min': 1, 'mean': 1.5, 'max': 3}})
  text = report.compare([uniform, adaptive], [json.loads((d / 'metrics.json').read_text()) for d in (uniform, adaptive)])
  first, second = [line for line in text.splitlines() if line.startswith(f'| {tmp_path}')]
  # Coverage 2/4 and 3/4; distinct correct solutions 3/4 in both (problem 0 had two).
  assert '| uniform | 2.0 (2-2) | 4e+12 | 0.500 [' in first and '| 0.750 [' in first
  assert '| adaptive (m=1, 3 rounds) | 1.5 (1-3) |' in second
  assert '| 0.750 [' in second and '| 0.250 [' in second and '| 0.000 [' in second
  broken = _comparable_run(tmp_path / 'b', [[(True, 'a')]] * 5, {'kind': 'uniform'}, problems=5)
  with pytest.raises(rundir.RunError, match='runs compare only on the same problems'):
    report.compare([uniform, broken], [json.loads((d / 'metrics.json').read_text()) for d in (uniform, broken)])
