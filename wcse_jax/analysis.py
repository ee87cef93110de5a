"""The paper's analyses of a run's grades: intervals, breakdowns by level and subject, solved-by sets.

Every estimate is a mean over problems of a per-problem value (pass@k for
coverage@k, the expected number of distinct correct solutions for diversity@k),
so its uncertainty is that of which problems were drawn: a percentile bootstrap
over problems, seeded, gives each estimate an interval.

    curves = problem_curves(grouped_samples)           # per-problem values, [P, n] each
    estimate_with_interval(curves.coverage, seed=0)    # {'1': [0.31, 0.22, 0.40], ...}

With 6 problems an interval spans most of [0, 1]; with 7,500 a few points:
the intervals say which differences a run can show. A WC-vs-SE difference is
bootstrapped over the same resampled problems for both models (paired), so it
is tighter than the two intervals side by side suggest.

By level and subject (MATH only; GSM8K has neither) each group gets the same
estimates and intervals, and the compute-matched comparison per level is the
paper's per-level figure. `solved_by` splits the problems into those solved
only by WC, only by SE, by both and by neither, reading each model's first k
samples at a matched budget (samples are drawn independently, so the first k
are k random samples).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from wcse_jax import metrics

RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Curves:
  """Per-problem values of one model's samples: row p is problem `indices[p]`, column k-1 is k."""

  indices: tuple[int, ...]  # problem_index of each row
  coverage: np.ndarray  # [P, n] pass@k of each problem
  diversity: np.ndarray  # [P, n] expected distinct correct solutions among k
  first_solved: np.ndarray  # [P, n] whether any of the first k samples is correct


def problem_curves(grouped: Mapping[int, Sequence[dict]]) -> Curves:
  """Curves from samples grouped by problem_index, each group ordered by sample (n = the smallest group)."""
  indices = tuple(sorted(grouped))
  n = min(len(grouped[i]) for i in indices)
  ks = np.arange(1, n + 1)
  coverage = np.zeros((len(indices), n))
  diversity = np.zeros((len(indices), n))
  first_solved = np.zeros((len(indices), n), bool)
  for row, i in enumerate(indices):
    samples = grouped[i][:n]
    grades = [bool(s['correct']) for s in samples]
    coverage[row] = [metrics.pass_at_k(n, sum(grades), k) for k in ks]
    copies = collections.Counter(metrics.solution_key(s['text']) for s, ok in zip(samples, grades) if ok)
    diversity[row] = [sum(metrics.pass_at_k(n, m, k) for m in copies.values()) for k in ks]
    first_solved[row] = np.cumsum(grades) > 0
  return Curves(indices, coverage, diversity, first_solved)


def bootstrap_rows(num_rows: int, *, seed: int, resamples: int = RESAMPLES) -> np.ndarray:
  """[resamples, num_rows] row indices drawn with replacement: the same draw serves paired statistics."""
  return np.random.default_rng(seed).integers(0, num_rows, size=(resamples, num_rows))


def percentile_interval(draws: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
  """The central `confidence` interval of bootstrap draws ([resamples, ...]), per column."""
  tail = (1 - confidence) / 2 * 100
  return np.percentile(draws, tail, axis=0), np.percentile(draws, 100 - tail, axis=0)


def estimate_with_interval(
    values: np.ndarray, *, seed: int, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
    proportion: bool = False,
) -> dict[str, list[float]]:
  """{k: [mean, low, high]} of the columns of `values` ([P, n]), bootstrapped over its rows.

  With `proportion` (values in [0, 1], as coverage), a column whose values are all 0
  or all 1 gets the Wilson interval of 0 (or P) successes in P trials instead of the
  bootstrap's [0, 0]: three unsolved problems do not show that coverage is 0.
  """
  rows = bootstrap_rows(len(values), seed=seed, resamples=resamples)
  low, high = percentile_interval(values[rows].mean(axis=1), confidence)
  mean = values.mean(axis=0)
  if proportion:
    low, high = _widen_degenerate(values, low, high, confidence)
  return {str(k + 1): [_round(mean[k]), _round(low[k]), _round(high[k])] for k in range(values.shape[1])}


def _widen_degenerate(values: np.ndarray, low: np.ndarray, high: np.ndarray, confidence: float):
  """Wilson intervals for the columns of proportions whose values are all 0 or all 1."""
  low, high = low.copy(), high.copy()
  for k in range(values.shape[1]):
    column = values[:, k]
    if np.all(column == column[0]) and column[0] in (0.0, 1.0):
      low[k], high[k] = metrics.wilson_interval(int(column[0]) * len(column), len(column), confidence)
  return low, high


def format_interval(value: Sequence[float]) -> str:
  """[mean, low, high] -> '0.412 [0.301, 0.520]'."""
  mean, low, high = value
  return f'{mean:.3f} [{low:.3f}, {high:.3f}]'


def _round(x: float) -> float:
  return round(float(x), 4)


def interval_summary(curves: Curves, *, seed: int) -> dict:
  """Coverage@k and diversity@k of one model, each {k: [mean, low, high]}."""
  return {
      'problems': len(curves.indices),
      'coverage_at_k': estimate_with_interval(curves.coverage, seed=seed, proportion=True),
      'diversity_at_k': estimate_with_interval(curves.diversity, seed=seed),
  }


def by_group(curves: Curves, groups: Mapping[int, object], *, seed: int) -> dict[str, dict]:
  """interval_summary of each group of problems (`groups[problem_index]`, None: in no group)."""
  rows: dict[str, list[int]] = collections.defaultdict(list)
  for row, i in enumerate(curves.indices):
    if groups.get(i) is not None:
      rows[str(groups[i])].append(row)
  return {
      name: interval_summary(_select(curves, members), seed=seed)
      for name, members in sorted(rows.items())
  }


def _select(curves: Curves, rows: Sequence[int]) -> Curves:
  rows = np.asarray(rows)
  return Curves(
      tuple(curves.indices[r] for r in rows), curves.coverage[rows], curves.diversity[rows],
      curves.first_solved[rows],
  )


def _paired(wc: Curves, se: Curves) -> tuple[Curves, Curves]:
  """Both models' curves on the problems both have, in the same row order."""
  common = sorted(set(wc.indices) & set(se.indices))
  wc_row = {i: r for r, i in enumerate(wc.indices)}
  se_row = {i: r for r, i in enumerate(se.indices)}
  return _select(wc, [wc_row[i] for i in common]), _select(se, [se_row[i] for i in common])


def matched_comparison(
    wc: Curves, se: Curves, pairs: Sequence[tuple[int, int]], *, seed: int, confidence: float = CONFIDENCE
) -> list[dict]:
  """For each (wc_k, se_k): both coverages and diversities with intervals, and WC - SE with a paired interval."""
  wc, se = _paired(wc, se)
  if not wc.indices:
    return []
  rows = bootstrap_rows(len(wc.indices), seed=seed)
  out = []
  for wc_k, se_k in pairs:
    row = {'wc_k': wc_k, 'se_k': se_k, 'problems': len(wc.indices)}
    for name in ('coverage', 'diversity'):
      a, b = getattr(wc, name)[:, wc_k - 1], getattr(se, name)[:, se_k - 1]
      draws = np.stack([a[rows].mean(1), b[rows].mean(1), (a - b)[rows].mean(1)], axis=1)
      low, high = percentile_interval(draws, confidence)
      if name == 'coverage':
        low[:2], high[:2] = _widen_degenerate(np.stack([a, b], axis=1), low[:2], high[:2], confidence)
      for j, (key, mean) in enumerate(((f'wc_{name}', a.mean()), (f'se_{name}', b.mean()),
                                       (f'{name}_difference', (a - b).mean()))):
        row[key] = [_round(mean), _round(low[j]), _round(high[j])]
    out.append(row)
  return out


def matched_by_group(
    wc: Curves, se: Curves, pairs: Sequence[tuple[int, int]], groups: Mapping[int, object], *, seed: int
) -> dict[str, list[dict]]:
  """matched_comparison within each group of problems (the paper's per-level figure)."""
  wc, se = _paired(wc, se)
  rows: dict[str, list[int]] = collections.defaultdict(list)
  for row, i in enumerate(wc.indices):
    if groups.get(i) is not None:
      rows[str(groups[i])].append(row)
  return {
      name: matched_comparison(_select(wc, members), _select(se, members), pairs, seed=seed)
      for name, members in sorted(rows.items())
  }


def solved_by(wc: Curves, se: Curves, wc_k: int, se_k: int, ids: Mapping[int, str]) -> dict:
  """Problems solved (a correct answer among the first k samples) only by WC, only by SE, by both, by neither."""
  wc, se = _paired(wc, se)
  wc_solved, se_solved = wc.first_solved[:, wc_k - 1], se.first_solved[:, se_k - 1]
  sets = {
      'only_wc': wc_solved & ~se_solved,
      'only_se': se_solved & ~wc_solved,
      'both': wc_solved & se_solved,
      'neither': ~wc_solved & ~se_solved,
  }
  return {
      'wc_k': wc_k,
      'se_k': se_k,
      'problems': len(wc.indices),
      'counts': {name: int(mask.sum()) for name, mask in sets.items()},
      'problem_ids': {name: [ids[i] for i, m in zip(wc.indices, mask) if m] for name, mask in sets.items()},
  }
