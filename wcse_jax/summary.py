"""From a run's graded samples to metrics.json and the filtered SFT sets.

metrics.json, per model: coverage@k and diversity@k for every k up to the
samples drawn, tokens and FLOPs; and the paper's comparison at matched
budgets, WC@(ratio*k) against SE@k for each SE budget k (WC@3k vs SE@k for
Gemma2-9B vs 27B). Prompt FLOPs count what the sampler computes: the shared
few-shot prefix once, each problem's own text once (its samples fan out from
it), none per sample; generated FLOPs count every sampled token.

`analyses` adds the paper's analyses (analysis.py): every coverage and
diversity with a bootstrap interval over problems, the same by MATH level and
subject, the matched comparison with a paired interval on WC - SE (overall and
per level), and the problems solved only by WC, only by SE, by both and by
neither at the largest matched budget.
"""

from __future__ import annotations

import collections
import json
import pathlib
from collections.abc import Iterable, Mapping, Sequence

from wcse_jax import analysis, metrics, rundir
from wcse_jax.data import grader
from wcse_jax.sampling import budget


def by_problem(samples: Iterable[dict]) -> dict[int, list[dict]]:
  """Samples grouped by problem_index (ascending), each group in sample order."""
  grouped = collections.defaultdict(list)
  for s in samples:
    grouped[s['problem_index']].append(s)
  return {p: sorted(v, key=lambda s: s['sample']) for p, v in sorted(grouped.items())}


def distinct_correct(samples: Iterable[dict]) -> dict[int, int]:
  """Per problem, the distinct correct solutions among its samples (`metrics.solution_key`);
  a problem is solved where it has one or more."""
  return {
      j: len({metrics.solution_key(s['text']) for s in group if s['correct']})
      for j, group in by_problem(samples).items()
  }


def model_metrics(
    samples: list[dict], *, params: float, prefix_tokens: int, prompt_computed: int | None = None
) -> dict:
  """Coverage, diversity, answer and token statistics, and FLOPs of one model's samples.

  `prompt_computed` (tokens) is what the sampler prefilled; by default that of one
  sampler call: the prefix once and each problem's own text once. An adaptive run,
  which prefills again each round, passes its own count.
  """
  problems = by_problem(samples)
  if not problems:
    return {'problems': 0, 'samples': 0}
  n = min(len(v) for v in problems.values())
  correct = [[s['correct'] for s in v[:n]] for v in problems.values()]
  texts = [[s['text'] for s in v[:n]] for v in problems.values()]
  generated = sum(s['num_tokens'] for s in samples)
  if prompt_computed is None:
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


def analyses(
    samples: Mapping[str, list[dict]], problems: Sequence, ratio: float, *, seed: int
) -> tuple[dict[str, dict], dict]:
  """(per model: intervals and breakdowns; run-wide: matched comparison, per level, solved-by sets).

  `samples[role]` are a model's graded samples ('wc', 'se'); `problems[i]` is
  problem_index i (its `level`, `subject` and `id` are read); `seed` seeds
  every bootstrap, so the intervals of a run are reproducible.
  """
  curves = {role: analysis.problem_curves(by_problem(s)) for role, s in samples.items() if s}
  levels = {i: p.level for i, p in enumerate(problems)}
  subjects = {i: p.subject for i, p in enumerate(problems)}
  per_model = {}
  for role, c in curves.items():
    per_model[role] = {'intervals': analysis.interval_summary(c, seed=seed)}
    if any(v is not None for v in levels.values()):
      per_model[role]['by_level'] = analysis.by_group(c, levels, seed=seed)
    if any(v is not None for v in subjects.values()):
      per_model[role]['by_subject'] = analysis.by_group(c, subjects, seed=seed)
  run_wide = {}
  if 'wc' in curves and 'se' in curves:
    wc_n, se_n = curves['wc'].coverage.shape[1], curves['se'].coverage.shape[1]
    pairs = [(budget.matched_count(k, ratio), k) for k in range(1, se_n + 1)]
    pairs = [(w, k) for w, k in pairs if 1 <= w <= wc_n]
    run_wide['matched'] = analysis.matched_comparison(curves['wc'], curves['se'], pairs, seed=seed)
    if any(v is not None for v in levels.values()):
      run_wide['matched_by_level'] = analysis.matched_by_group(curves['wc'], curves['se'], pairs, levels, seed=seed)
    if pairs:
      ids = {i: p.id for i, p in enumerate(problems)}
      run_wide['solved_by'] = analysis.solved_by(curves['wc'], curves['se'], *pairs[-1], ids)
  return per_model, run_wide


def add_analyses(
    result: dict, samples: Mapping[str, list[dict]], problems: Sequence, ratio: float, *, seed: int
) -> None:
  """Adds `analyses` to a metrics.json dict: each model's intervals and breakdowns; with both
  models, the matched rows (compare_at_matched_budget), each estimate with its interval
  ([mean, low, high] under `*_interval`) and WC - SE (`*_difference`), per level, solved-by."""
  per_model, run_wide = analyses(samples, problems, ratio, seed=seed)
  for role, extra in per_model.items():
    result['models'][role].update(extra)
  if 'se' not in result['models']:
    return
  result['matched'] = compare_at_matched_budget(result['models']['wc'], result['models']['se'], ratio)
  intervals = {(r['wc_k'], r['se_k']): r for r in run_wide.get('matched', [])}
  for row in result['matched']:
    for key, value in intervals.get((row['wc_k'], row['se_k']), {}).items():
      if key.endswith('_difference'):
        row[key] = value
      elif key.endswith(('_coverage', '_diversity')):
        row[f'{key}_interval'] = value
  for key in ('matched_by_level', 'solved_by'):
    if key in run_wide:
      result[key] = run_wide[key]


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
          # The chat form that the ecosystem's SFT tools read (datasets, TRL).
          'messages': [
              {'role': 'user', 'content': questions[s['problem_id']]},
              {'role': 'assistant', 'content': s['text'].strip()},
          ],
      })
  return out


def write_sft(run_dir: pathlib.Path, name: str, records: list[dict], recipe: dict) -> pathlib.Path:
  """sft/<name>.jsonl and, beside it, sft/<name>.recipe.json: how the set was made."""
  path = run_dir / 'sft' / f'{name}.jsonl'
  rundir.write_lines_atomic(path, records)
  rundir.write_json_atomic(path.with_suffix('.recipe.json'), {
      **recipe,
      'examples': len(records),
      'problems': len({r['problem_id'] for r in records}),
      'grader_version': grader.VERSION,
  })
  return path


def sft_sets(run_dir: pathlib.Path) -> dict[str, dict]:
  """Every SFT set of a run, by name, with its recipe."""
  sets = {}
  for path in sorted((run_dir / 'sft').glob('*.jsonl')):
    recipe_path = path.with_suffix('.recipe.json')
    sets[path.stem] = json.loads(recipe_path.read_text()) if recipe_path.exists() else {}
  return sets


def write_card(run_dir: pathlib.Path) -> pathlib.Path:
  """sft/README.md: a dataset card that `datasets.load_dataset(str(run_dir / 'sft'), NAME)` reads.

  One config per SFT set (its JSONL: `messages` plus our fields), and what a
  reader needs to trust the data: the models, budget and match mode, FLOPs per
  model, grader version, seed and counts, and each set's recipe.
  """
  metrics = json.loads((run_dir / 'metrics.json').read_text())
  config = json.loads((run_dir / 'config.json').read_text())
  sets = sft_sets(run_dir)
  plan = metrics['plan']
  lines = ['---', 'configs:']
  for i, name in enumerate(sets):
    lines += [f'- config_name: {name}', f'  data_files: {name}.jsonl'] + (['  default: true'] if i == 0 else [])
  lines += ['tags:', '- math', '- synthetic', '- reasoning', '---', '',
            f"# Synthetic solutions: {metrics['dataset']} {metrics['split']}, {metrics['problems']} problems", '',
            'Correct sampled solutions (one per distinct solution per problem), graded against the gold',
            f'answers by wcse_jax\'s grader (version {grader.VERSION}). Each line has `messages` (user: the',
            'problem; assistant: the solution), and `problem_id`, `question`, `solution`, `answer`,',
            '`source_model` and `sample`.', '',
            f"Budget `{config.get('budget')}`, {plan['match']}-matched: SE {plan['se_samples']} vs WC "
            f"{plan['wc_samples']} samples per problem (ratio {plan['ratio']:.3g}); seed {config.get('seed')}; "
            f"temperature {config.get('temperature')}, top-k {config.get('top_k')}, "
            f"at most {config.get('max_new_tokens')} new tokens.", '',
            '| model | role | params | samples/problem | coverage@n | FLOPs (prompt + generated) |',
            '|---|---|---|---|---|---|']
  for role, m in metrics['models'].items():
    if m.get('samples'):
      n = str(m['samples_per_problem'])
      flops = m['flops']['generated'] + m['flops']['prompt_computed']
      lines.append(f"| {m['name']} | {role.upper()} | {m['params'] / 1e9:.3g}B | {n} | "
                   f"{m['coverage_at_k'][n]:.3f} | {flops:.3g} |")
  lines += ['', '| set | examples | problems | recipe |', '|---|---|---|---|']
  for name, recipe in sets.items():
    shown = {k: v for k, v in recipe.items() if k not in ('examples', 'problems', 'grader_version')}
    lines.append(f"| {name} | {recipe.get('examples', '')} | {recipe.get('problems', '')} | "
                 f"`{json.dumps(shown, sort_keys=True)}` |")
  path = run_dir / 'sft' / 'README.md'
  path.write_text('\n'.join(lines) + '\n')
  return path
