"""From a run's graded samples to metrics.json and the filtered SFT sets.

metrics.json, per model: coverage@k and diversity@k for every k up to the
samples drawn, tokens and FLOPs; and the paper's comparison at matched
budgets, WC@(ratio*k) against SE@k for each SE budget k (WC@3k vs SE@k for
Gemma2-9B vs 27B). Prompt FLOPs count what the sampler computes: the shared
few-shot prefix once, each problem's own text once (its samples fan out from
it), none per sample; generated FLOPs count every sampled token.
"""

from __future__ import annotations

import collections
import pathlib

from wcse_jax import metrics, rundir
from wcse_jax.sampling import budget


def _by_problem(samples: list[dict]) -> dict[int, list[dict]]:
  grouped = collections.defaultdict(list)
  for s in samples:
    grouped[s['problem_index']].append(s)
  return {p: sorted(v, key=lambda s: s['sample']) for p, v in sorted(grouped.items())}


def model_metrics(samples: list[dict], *, params: float, prefix_tokens: int) -> dict:
  """Coverage, diversity, answer and token statistics, and FLOPs of one model's samples."""
  problems = _by_problem(samples)
  if not problems:
    return {'problems': 0, 'samples': 0}
  n = min(len(v) for v in problems.values())
  correct = [[s['correct'] for s in v[:n]] for v in problems.values()]
  texts = [[s['text'] for s in v[:n]] for v in problems.values()]
  generated = sum(s['num_tokens'] for s in samples)
  prompt_computed = prefix_tokens + sum(v[0]['prompt_tokens'] - prefix_tokens for v in problems.values())
  return {
      'problems': len(problems),
      'samples': len(samples),
      'samples_per_problem': n,
      'coverage_at_k': {k: metrics.coverage_at_k(correct, k) for k in range(1, n + 1)},
      'diversity_at_k': {k: metrics.diversity_at_k(texts, correct, k) for k in range(1, n + 1)},
      'accuracy': sum(map(sum, correct)) / (len(correct) * n),
      'finish_reasons': dict(collections.Counter(s['finish_reason'] for s in samples)),
      'tokens': {
          'generated': generated,
          'prompt': sum(s['prompt_tokens'] for s in samples),
          'prompt_computed': prompt_computed,
      },
      'flops': {
          'generated': budget.flops(params, generated),
          'prompt_computed': budget.flops(params, prompt_computed),
      },
  }


def compare_at_matched_budget(wc: dict, se: dict, ratio: float) -> list[dict]:
  """WC@floor(ratio*k) vs SE@k for every SE budget k both runs can show."""
  rows = []
  for k in range(1, se.get('samples_per_problem', 0) + 1):
    wc_k = budget.matched_count(k, ratio)
    if wc_k < 1 or wc_k > wc.get('samples_per_problem', 0):
      continue
    rows.append({
        'se_k': k,
        'wc_k': wc_k,
        'se_coverage': se['coverage_at_k'][k],
        'wc_coverage': wc['coverage_at_k'][wc_k],
        'se_diversity': se['diversity_at_k'][k],
        'wc_diversity': wc['diversity_at_k'][wc_k],
    })
  return rows


def sft_records(samples: list[dict], questions: dict[str, str], source_model: str) -> list[dict]:
  """Correct samples, one per distinct solution (`metrics.solution_key`) per problem."""
  seen, out = set(), []
  for s in sorted(samples, key=lambda s: (s['problem_index'], s['sample'])):
    key = (s['problem_id'], metrics.solution_key(s['text']))
    if s['correct'] and key not in seen:
      seen.add(key)
      out.append({
          'problem_id': s['problem_id'],
          'question': questions[s['problem_id']],
          'solution': s['text'].strip(),
          'answer': s['extracted'],
          'source_model': source_model,
          'sample': s['sample'],
      })
  return out


def write_sft(run_dir: pathlib.Path, model_dir: str, records: list[dict]) -> pathlib.Path:
  path = run_dir / 'sft' / f'{model_dir}.jsonl'
  rundir.write_lines_atomic(path, records)
  return path
