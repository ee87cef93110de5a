"""Forecasting coverage from a pilot: simulated problems with known success rates, and the plan command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wcse_jax import forecast, plan, rundir, sample
from wcse_jax.data.problems import Problem
from wcse_jax.sampling import budget


def test_the_fit_recovers_known_beta_parameters():
  rng = np.random.default_rng(0)
  p = rng.beta(0.4, 1.6, 4000)
  n = np.full(4000, 8)
  fit = forecast.fit_beta_binomial(n, rng.binomial(n, p))
  assert fit.a == pytest.approx(0.4, rel=0.15) and fit.b == pytest.approx(1.6, rel=0.15)
  assert fit.coverage(1) == pytest.approx(fit.mean)


def test_coverage_at_four_times_the_pilot_lies_in_its_interval_at_the_nominal_rate():
  """Pilots of 4 samples on 150 problems; the forecast of coverage@16 should contain the coverage@16
  those problems have (the mean of 1 - (1 - p)^16 over their true p) in about 95% of runs."""
  rng = np.random.default_rng(1)
  runs, hits = 60, 0
  for run in range(runs):
    a, b = rng.uniform(0.2, 1.0), rng.uniform(0.5, 3.0)
    p = rng.beta(a, b, 150)
    n = np.full(150, 4)
    predicted = forecast.forecast(n, rng.binomial(n, p), [16], seed=run, resamples=100)
    _, low, high = predicted['coverage_at_k']['16']
    hits += low <= np.mean(1 - (1 - p) ** 16) <= high
  # 95% nominal; 60 runs put the binomial noise at about +-3 points.
  assert 0.85 <= hits / runs <= 1.0, hits / runs


def test_an_all_wrong_pilot_bounds_coverage_instead_of_claiming_zero():
  result = forecast.forecast([3, 3, 3], [0, 0, 0], [1, 37], seed=0, resamples=20)
  assert result['coverage_at_k']['1'][:2] == [0.0, 0.0] and result['coverage_at_k']['1'][2] > 0.3
  assert result['coverage_at_k']['37'][2] == 1.0
  with pytest.raises(ValueError, match='at least 2 per problem'):
    forecast.forecast([1, 1, 1], [0, 1, 0], [4], seed=0)


def _pilot(run_dir, monkeypatch, se_samples=2):
  """WC (gemma3-270m, 7 samples) and SE (gemma3-1b) on 40 problems with success rates from Beta(0.5, 1)."""
  rng = np.random.default_rng(0)
  problems = [Problem(id=f'q{i}', dataset='gsm8k', question='q', answer='1', solution='') for i in range(40)]
  config = {'wc': 'gemma3-270m', 'se': 'gemma3-1b', 'match': 'compute', 'params_from': 'label', 'budget': 2,
            'seed': 0, 'dataset': 'gsm8k', 'split': 'test', 'temperature': 0.7, 'top_k': 40, 'max_new_tokens': 8}
  plan_ = budget.plan(budget=se_samples, match='compute', wc_params=0.27e9, se_params=1e9)
  runs = [sample.ModelRun('wc', 'gemma3-270m', plan_.wc_samples, 268_000_000),
          sample.ModelRun('se', 'gemma3-1b', plan_.se_samples, 1_000_000_000)]
  for run, strength in zip(runs, (0.5, 1.5)):
    rates = rng.beta(0.5 * strength, 1.0, len(problems))
    with rundir.ShardWriter(rundir.shard_path(run_dir, run.directory)) as writer:
      writer.write([
          {'problem_index': j, 'problem_id': p.id, 'sample': i, 'text': f'{j} {i}', 'num_tokens': 8,
           'prompt_tokens': 4, 'finish_reason': 'eos', 'extracted': '1', 'correct': bool(rng.random() < rates[j])}
          for j, p in enumerate(problems) for i in range(run.samples)
      ])
  rundir.check_or_write_config(run_dir, config)
  monkeypatch.setattr(sample, '_prompt_lengths', lambda model, dataset, problems: (0, [0] * len(problems)))
  sample.summarize(config, plan_, runs, problems, run_dir)


def test_plan_forecasts_both_models_at_the_target_budget(tmp_path, monkeypatch):
  _pilot(tmp_path, monkeypatch)
  result = plan.plan_from_pilot(tmp_path, 'high', seed=0)
  assert (result['target']['se_samples'], result['target']['wc_samples']) == (10, 37)
  wc, se = result['models']['wc'], result['models']['se']
  assert (wc['target_k'], se['target_k'], wc['pilot_samples_per_problem'], se['pilot_samples_per_problem']) == (37, 10, 7, 2)
  for m in (wc, se):
    est, low, high = m['coverage_at_k'][str(m['target_k'])]
    assert 0 <= low <= est <= high <= 1
    assert m['flops_per_problem'][str(m['target_k'])] > m['flops_per_problem']['1']
  assert result['advice'].startswith(('sample WC', 'sample SE', 'WC is ahead', 'SE is ahead'))
  # The report overlays the forecast on the measured curves.
  from wcse_jax import report  # pylint: disable=g-import-not-at-top

  report.plot(json.loads((tmp_path / 'metrics.json').read_text()), tmp_path / 'p.png', result)
  assert (tmp_path / 'p.png').stat().st_size > 0


def test_backtest_fits_on_the_first_samples_only(tmp_path, monkeypatch):
  _pilot(tmp_path, monkeypatch)
  result = plan.plan_from_pilot(tmp_path, 'high', seed=0, backtest=0.3)
  wc = result['models']['wc']
  assert wc['pilot_samples_per_problem'] == 2  # round(0.3 * 7)
  assert set(wc['measured_coverage_at_k']) == {str(k) for k in range(1, 8)}
  measured, predicted = wc['measured_coverage_at_k']['7'], wc['coverage_at_k']['7']
  assert predicted[1] - 0.15 <= measured <= predicted[2] + 0.15  # in the same range, on 40 problems


def test_a_one_sample_pilot_is_refused_in_one_sentence(tmp_path, monkeypatch):
  _pilot(tmp_path, monkeypatch, se_samples=1)
  with pytest.raises(rundir.RunError, match='se pilot: a pilot of 1 sample per problem'):
    plan.plan_from_pilot(tmp_path, 'high', seed=0)
