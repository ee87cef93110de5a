"""The budget planner: how many samples per problem each model gets.

A budget is the number of samples per problem of the stronger-but-expensive
(SE) model, `S_SE` (the paper's low budget is 1, its high budget 10). The
weaker-but-cheaper (WC) model gets as many samples as the same budget buys:

    compute:  S_WC = S_SE * P_SE / P_WC      (FLOPs per token ~ 2P)
    price:    S_WC = S_SE * price_SE / price_WC
    number:   S_WC = S_SE

Gemma2-27B vs 9B: 27/9 = 3, so low = 1 vs 3 and high = 10 vs 30 samples. The
paper takes P from the models' size labels (27B, 9B); `params_from='count'`
uses the exact counts of the configs instead (27.23B / 9.24B = 2.95). S_WC is
rounded down, so the WC model never spends more than the SE budget.
"""

from __future__ import annotations

import dataclasses
import math
import re

from wcse_jax.model import PRESETS, GemmaConfig, count_params

NAMED_BUDGETS = {'low': 1, 'high': 10}
MATCH_MODES = ('compute', 'price', 'number')


def size_label_params(config: GemmaConfig) -> float | None:
  """Parameters as a preset's size label says ('gemma2-27b' -> 27e9), else None."""
  if config.name not in PRESETS:
    return None
  match = re.search(r'(\d+(?:\.\d+)?)([mb])$', config.name)
  return float(match.group(1)) * (1e6 if match.group(2) == 'm' else 1e9)


def model_params(config: GemmaConfig, params_from: str = 'label') -> float:
  """P for compute matching: the size label (the paper's choice) or the exact count."""
  if params_from not in ('label', 'count'):
    raise ValueError(f"params_from must be 'label' or 'count', got {params_from!r}.")
  label = size_label_params(config) if params_from == 'label' else None
  return label if label is not None else float(count_params(config))


def budget_samples(budget: str | int) -> int:
  """S_SE for 'low', 'high' or a positive integer."""
  if isinstance(budget, str) and budget in NAMED_BUDGETS:
    return NAMED_BUDGETS[budget]
  try:
    value = int(budget)
  except (TypeError, ValueError):
    value = 0
  if value < 1:
    raise ValueError(f'--budget must be low, high or a positive integer, got {budget!r}.')
  return value


@dataclasses.dataclass(frozen=True)
class Plan:
  """Samples per problem for each model at one budget."""

  match: str
  ratio: float  # S_WC / S_SE before rounding
  se_samples: int
  wc_samples: int

  def describe(self) -> str:
    return (
        f'{self.match}-matched: SE {self.se_samples} vs WC {self.wc_samples} samples '
        f'per problem (ratio {self.ratio:.3g})'
    )


def plan(
    *,
    budget: str | int,
    match: str,
    wc_params: float,
    se_params: float,
    wc_price: float | None = None,
    se_price: float | None = None,
) -> Plan:
  """Samples per problem for the WC and SE models.

  >>> plan(budget='high', match='compute', wc_params=9e9, se_params=27e9)
  Plan(match='compute', ratio=3.0, se_samples=10, wc_samples=30)
  >>> plan(budget='low', match='price', wc_params=9e9, se_params=27e9,
  ...      wc_price=0.3, se_price=10.5).wc_samples
  35
  """
  se_samples = budget_samples(budget)
  if match == 'compute':
    ratio = se_params / wc_params
  elif match == 'price':
    if not wc_price or not se_price or wc_price <= 0 or se_price <= 0:
      raise ValueError('--match=price needs positive prices per token for both models.')
    ratio = se_price / wc_price
  elif match == 'number':
    ratio = 1.0
  else:
    raise ValueError(f'--match must be one of {", ".join(MATCH_MODES)}, got {match!r}.')
  wc_samples = max(1, matched_count(se_samples, ratio))
  return Plan(match=match, ratio=ratio, se_samples=se_samples, wc_samples=wc_samples)


def matched_count(se_samples: int, ratio: float) -> int:
  """The WC samples that cost what `se_samples` SE samples do: rounded down,
  forgiving float noise (10.5 / 0.3 is 34.99999...)."""
  return math.floor(se_samples * ratio + 1e-9)


def flops(params: float, tokens: int) -> float:
  """Forward FLOPs of `tokens` tokens through a model of `params` parameters."""
  return 2.0 * params * tokens
