"""The budget planner and FLOPs accounting."""

import pytest

from wcse_jax.model import get_preset
from wcse_jax.sampling import budget


def test_compute_matching_gives_three_times_for_27b_vs_9b():
  se, wc = get_preset('gemma2-27b'), get_preset('gemma2-9b')
  args = dict(match='compute', wc_params=budget.model_params(wc), se_params=budget.model_params(se))
  low, high = budget.plan(budget='low', **args), budget.plan(budget='high', **args)
  assert (low.se_samples, low.wc_samples) == (1, 3)
  assert (high.se_samples, high.wc_samples) == (10, 30)


def test_exact_counts_round_down_within_the_budget():
  se, wc = get_preset('gemma2-27b'), get_preset('gemma2-9b')
  high = budget.plan(
      budget='high', match='compute', wc_params=budget.model_params(wc, 'count'),
      se_params=budget.model_params(se, 'count'),
  )
  assert high.ratio == pytest.approx(27.227 / 9.2417, rel=1e-3)
  assert high.wc_samples == 29  # 29.46 rounded down: never more compute than the SE's


def test_price_matching_gives_35_times_for_the_papers_prices():
  plan = budget.plan(budget='low', match='price', wc_params=9e9, se_params=27e9, wc_price=0.3, se_price=10.5)
  assert (plan.se_samples, plan.wc_samples) == (1, 35)
  assert budget.plan(budget=3, match='price', wc_params=1, se_params=1, wc_price=0.3, se_price=10.5).wc_samples == 105


def test_number_matching_and_local_default():
  assert budget.plan(budget='high', match='number', wc_params=9e9, se_params=27e9).wc_samples == 10
  wc, se = get_preset('gemma3-270m'), get_preset('gemma3-1b')
  plan = budget.plan(budget='high', match='compute', wc_params=budget.model_params(wc),
                     se_params=budget.model_params(se))
  assert plan.wc_samples == 37  # 10 * 1B / 270M


@pytest.mark.parametrize('bad', ['medium', '0', -2, 'x10'])
def test_bad_budgets_are_refused(bad):
  with pytest.raises(ValueError, match='--budget must be low, high or a positive integer'):
    budget.budget_samples(bad)


def test_price_matching_needs_prices():
  with pytest.raises(ValueError, match='needs positive prices'):
    budget.plan(budget='low', match='price', wc_params=1, se_params=2, wc_price=None, se_price=1)
