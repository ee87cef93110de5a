r"""Forecast coverage at a larger budget from a small pilot, before paying for it.

A problem's single-sample success rate p varies across problems; coverage@k is
the mean over problems of 1 - (1 - p)^k, so it is the spread of p, above all
how many problems have p near 0, that decides how coverage grows with k
(Schaeffer et al. 2025). We fit that spread as a beta distribution from a pilot
(n_i samples of problem i, c_i of them correct):

    c_i ~ Binomial(n_i, p_i),   p_i ~ Beta(a, b)       (beta-binomial, by maximum likelihood)

and predict, for any k (or any FLOPs budget, through the FLOPs a sample costs),

    coverage@k  = 1 - B(a, b + k) / B(a, b)
    correct@k   = k a / (a + b)                      (expected correct samples per problem)

with 95% intervals from refitting on problems resampled with replacement (a
seeded bootstrap). Problems whose pilot samples were all right or all wrong
are what pin the spread down, so the pilot needs at least 2 samples per
problem; more problems narrow the interval more than more samples do.

    fit = fit_beta_binomial(n=[4, 4, 4], c=[0, 1, 4])
    fit.coverage(16)                          # 0.74
    forecast(n, c, ks=[16, 32], seed=0)       # {16: [0.74, 0.61, 0.85], 32: [...]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special

from wcse_jax import analysis

RESAMPLES = 200
CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class BetaFit:
  """Beta(a, b) over problems' success rates."""

  a: float
  b: float

  @property
  def mean(self) -> float:
    return self.a / (self.a + self.b)

  def coverage(self, k: float) -> float:
    """E[1 - (1 - p)^k]: the expected coverage@k of a problem drawn from the fit."""
    return float(1.0 - np.exp(special.betaln(self.a, self.b + k) - special.betaln(self.a, self.b)))

  def correct(self, k: float) -> float:
    return float(k * self.mean)


def _neg_log_likelihood(theta: np.ndarray, n: np.ndarray, c: np.ndarray, w: np.ndarray) -> float:
  a, b = np.exp(theta)
  # log C(n, c) does not depend on (a, b) and is left out.
  return -float(np.sum(w * (special.betaln(c + a, n - c + b) - special.betaln(a, b))))


def fit_beta_binomial(n: Sequence[int], c: Sequence[int], weights: Sequence[float] | None = None) -> BetaFit:
  """Maximum-likelihood Beta(a, b) from per-problem samples n and correct counts c."""
  n, c = np.asarray(n, float), np.asarray(c, float)
  w = np.ones_like(n) if weights is None else np.asarray(weights, float)
  if len(n) == 0 or np.any(n < 1) or np.any(c < 0) or np.any(c > n):
    raise ValueError('need problems with 0 <= correct <= samples and samples >= 1')
  if np.all(n < 2):
    raise ValueError('a pilot of 1 sample per problem shows the mean success rate but not its spread: '
                     'sample at least 2 per problem')
  # Start at the method-of-moments fit, then maximise the likelihood in log space.
  m = np.clip(np.average(c / n, weights=w), 1e-3, 1 - 1e-3)
  start = np.log([m * 2.0, (1 - m) * 2.0])
  result = optimize.minimize(_neg_log_likelihood, start, args=(n, c, w), method='L-BFGS-B',
                             bounds=[(-9.0, 9.0), (-9.0, 9.0)])
  a, b = np.exp(result.x)
  return BetaFit(float(a), float(b))


def forecast(
    n: Sequence[int], c: Sequence[int], ks: Sequence[float], *, seed: int,
    resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
) -> dict[str, dict]:
  """Predicted coverage@k and correct@k for every k in `ks`, each [estimate, low, high].

  Also returns the fit itself under 'fit' ({'a', 'b', 'problems', 'mean_samples'}).
  """
  n, c = np.asarray(n), np.asarray(c)
  m = len(ks)

  def predicted(f: BetaFit) -> list[float]:  # coverage@k for every k, then correct@k
    return [f.coverage(k) for k in ks] + [f.correct(k) for k in ks]

  fit = fit_beta_binomial(n, c)
  point = np.asarray(predicted(fit))
  rng = np.random.default_rng(seed)
  draws = []
  for _ in range(resamples):
    weights = np.bincount(rng.integers(0, len(n), len(n)), minlength=len(n))
    try:
      draws.append(predicted(fit_beta_binomial(n, c, weights)))
    except ValueError:
      continue
  low, high = analysis.percentile_interval(np.asarray(draws), confidence)
  low, high = np.minimum(low, point), np.maximum(high, point)  # the estimate lies inside

  ks_array = np.asarray(ks, float)
  if c.sum() in (0, n.sum()):
    # Every pilot sample wrong (or right): the bootstrap cannot vary anything. Bound the
    # mean success rate by Clopper-Pearson on all N samples instead, and coverage@k by
    # k times it (E[1 - (1 - p)^k] <= k E[p]), or from below by it (coverage@k >= coverage@1).
    bound = (1 - confidence) / 2
    if c.sum() == 0:
      upper = 1 - bound ** (1 / n.sum())
      low, high = np.zeros(2 * m), np.concatenate([np.minimum(1.0, ks_array * upper), ks_array * upper])
    else:
      lower = bound ** (1 / n.sum())
      low, high = np.concatenate([np.full(m, lower), ks_array * lower]), np.concatenate([np.ones(m), ks_array])

  def row(j0: int) -> dict[str, list[float]]:
    return {_key(k): [round(float(point[j0 + j]), 4), round(float(low[j0 + j]), 4), round(float(high[j0 + j]), 4)]
            for j, k in enumerate(ks)}

  return {
      'fit': {'a': round(fit.a, 5), 'b': round(fit.b, 5), 'problems': int(len(n)), 'mean_samples': float(np.mean(n))},
      'coverage_at_k': row(0),
      'correct_at_k': row(m),
  }


def _key(k: float) -> str:
  return str(int(k)) if float(k).is_integer() else f'{k:.3g}'


def pilot_counts(grouped: dict[int, list[dict]], first: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(samples, correct) per problem from graded samples grouped by problem; only each
  problem's `first` samples (by sample index) when given, to backtest a forecast."""
  n, c = [], []
  for samples in grouped.values():
    chosen = sorted(samples, key=lambda s: s['sample'])[:first]
    n.append(len(chosen))
    c.append(sum(bool(s['correct']) for s in chosen))
  return np.asarray(n), np.asarray(c)
