"""python -m wcse_jax.report RUN_DIR: a markdown table and plots of a sampling run.

`python -m wcse_jax.report RUN_A RUN_B ...` prints runs of the same problems side
by side instead (uniform against adaptive allocation, say): see `compare`.

Writes RUN_DIR/report.md and RUN_DIR/coverage_diversity.png (coverage@k and
diversity@k against FLOPs per problem for the WC and SE models, where
compute-matched budgets line up, with their 95% bootstrap intervals shaded, and
the forecast of `python -m wcse_jax.plan` dashed where the run has one),
RUN_DIR/coverage_by_level.png (MATH runs with both models: WC vs SE coverage per
level at the largest matched budget) and
prints the markdown: each model's coverage and diversity with intervals, the
matched comparison with the paired interval of WC - SE, the same per MATH level,
and the problems solved only by WC, only by SE, by both and by neither.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from absl import app

from wcse_jax import analysis, cli, rundir, summary


def markdown(metrics: dict) -> str:
  plan = metrics['plan']
  lines = [
      f"# {metrics['dataset']} {metrics['split']}: {metrics['problems']} problems",
      '',
      f"{plan['match']}-matched budget: SE {plan['se_samples']} vs WC {plan['wc_samples']} "
      f"samples per problem (ratio {plan['ratio']:.3g}).",
      '',
      '| model | params | samples/problem | coverage@1 | coverage@n | diversity@n | accuracy '
      '| generated tokens | FLOPs | SFT examples |',
      '|---|---|---|---|---|---|---|---|---|---|',
  ]
  for role, m in metrics['models'].items():
    if not m.get('samples'):
      continue
    n = str(m['samples_per_problem'])
    flops = m['flops']['generated'] + m['flops']['prompt_computed']
    cov = m.get('intervals', {}).get('coverage_at_k', {})
    lines.append(
        f"| {role.upper()} {m['name']} | {m['params'] / 1e9:.3g}B | {n} | "
        f"{_cell(cov.get('1'), m['coverage_at_k']['1'])} | {_cell(cov.get(n), m['coverage_at_k'][n])} | "
        f"{m['diversity_at_k'][n]:.3f} | {m['accuracy']:.3f} | {m['tokens']['generated']:,} | "
        f'{flops:.3g} | {m["sft_examples"]:,} |'
    )
  lines += ['', 'Intervals are 95% percentile bootstraps over problems (seeded by the run\'s seed).']
  if metrics.get('matched'):
    lines += ['', '| budget | WC coverage | SE coverage | WC - SE coverage | WC diversity | SE diversity |',
              '|---|---|---|---|---|---|']
    for row in metrics['matched']:
      lines.append(
          f"| WC@{row['wc_k']} vs SE@{row['se_k']} | {_cell(row.get('wc_coverage_interval'), row['wc_coverage'])} | "
          f"{_cell(row.get('se_coverage_interval'), row['se_coverage'])} | {_cell(row.get('coverage_difference'))} | "
          f"{row['wc_diversity']:.3f} | {row['se_diversity']:.3f} |"
      )
  if metrics.get('matched_by_level'):
    lines += ['', '## By MATH level, at the largest matched budget', '',
              '| level | problems | budget | WC coverage | SE coverage | WC - SE |', '|---|---|---|---|---|---|']
    for level, rows in metrics['matched_by_level'].items():
      if rows:
        row = rows[-1]
        lines.append(
            f"| {level} | {row['problems']} | WC@{row['wc_k']} vs SE@{row['se_k']} | {_cell(row['wc_coverage'])} | "
            f"{_cell(row['se_coverage'])} | {_cell(row['coverage_difference'])} |"
        )
  for role, m in metrics['models'].items():
    if m.get('by_subject'):
      lines += ['', f"## {role.upper()} {m['name']} by subject", '',
                '| subject | problems | coverage@1 | coverage@n |', '|---|---|---|---|']
      for subject, g in m['by_subject'].items():
        cov = g['coverage_at_k']
        lines.append(f"| {subject} | {g['problems']} | {_cell(cov['1'])} | {_cell(cov[max(cov, key=int)])} |")
  if metrics.get('solved_by'):
    solved = metrics['solved_by']
    lines += ['', f"## Solved at WC@{solved['wc_k']} vs SE@{solved['se_k']} ({solved['problems']} problems)", '',
              '| only WC | only SE | both | neither |', '|---|---|---|---|',
              '| ' + ' | '.join(str(solved['counts'][k]) for k in ('only_wc', 'only_se', 'both', 'neither')) + ' |',
              '', 'The problem ids of each set are in metrics.json (`solved_by.problem_ids`).']
  return '\n'.join(lines) + '\n'


def false_positive_lines(results: dict) -> list[str]:
  """A table of false_positives.json: each model's rate by judge and by human labels, with intervals."""
  lines = ['', '## False-positive rate (correct answer, invalid reasoning)', '',
           '| model | method | rate [95% interval] | invalid / judged | by |', '|---|---|---|---|---|']
  for role, methods in results.items():
    for method, r in methods.items():
      by = r.get('judge') or r.get('labels') or ''
      lines.append(f"| {role.upper()} | {method} | {_cell([r['rate'], r['low'], r['high']])} | "
                   f"{r['invalid']} / {r['judged']} | {by} |")
  return lines


def _cell(interval: list[float] | None, value: float | None = None) -> str:
  """'0.412 [0.301, 0.520]' from [mean, low, high]; just the value where a run has no interval."""
  if interval is None:
    return '' if value is None else f'{value:.3f}'
  return analysis.format_interval(interval)


def plot(metrics: dict, path: pathlib.Path, forecast: dict | None = None) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for role, m in metrics['models'].items():
    if not m.get('samples'):
      continue
    ks = sorted(int(k) for k in m['coverage_at_k'])
    # FLOPs per sample: a model's k samples cost k times this, whatever the model.
    per_sample = (m['flops']['generated'] + m['flops']['prompt_computed']) / m['samples']
    flops = [k * per_sample for k in ks]
    label = f"{role.upper()} {m['name']}"
    for ax, name in zip(axes, ('coverage_at_k', 'diversity_at_k')):
      line, = ax.plot(flops, [m[name][str(k)] for k in ks], marker='o', label=label)
      interval = m.get('intervals', {}).get(name)
      if interval:
        ax.fill_between(flops, [interval[str(k)][1] for k in ks], [interval[str(k)][2] for k in ks],
                        color=line.get_color(), alpha=0.2)
  for role, f in (forecast or {}).get('models', {}).items():  # `python -m wcse_jax.plan`'s forecast
    ks = sorted(f['coverage_at_k'], key=float)
    flops = [f['flops_per_problem'][k] for k in ks]
    cov = [f['coverage_at_k'][k] for k in ks]
    line, = axes[0].plot(flops, [c[0] for c in cov], linestyle='--',
                         label=f"{role.upper()} forecast ({f['pilot_samples_per_problem']}-sample pilot)")
    axes[0].fill_between(flops, [c[1] for c in cov], [c[2] for c in cov], color=line.get_color(), alpha=0.1)
  for ax, title in zip(axes, ('coverage@k', 'diversity@k')):
    ax.set_xscale('log')
    ax.set_xlabel('FLOPs per problem (k samples)')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(f"{metrics['dataset']} {metrics['split']} ({metrics['problems']} problems)")
  fig.tight_layout()
  with path.open('wb') as f:  # a local file or an object
    fig.savefig(f, format='png', dpi=120)
  plt.close(fig)


def plot_levels(metrics: dict, path: pathlib.Path) -> bool:
  """WC vs SE coverage per MATH level at the largest matched budget, with intervals (the
  paper's per-level figure); False (nothing drawn) for runs without levels or an SE model."""
  rows = {level: r[-1] for level, r in metrics.get('matched_by_level', {}).items() if r}
  if not rows:
    return False
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  levels = sorted(rows, key=int)
  fig, ax = plt.subplots(figsize=(6, 4))
  for offset, role in ((-0.2, 'wc'), (0.2, 'se')):
    values = [rows[lv][f'{role}_coverage'] for lv in levels]
    x = [int(lv) + offset for lv in levels]
    errors = [[v[0] - v[1] for v in values], [v[2] - v[0] for v in values]]
    k = rows[levels[0]][f'{role}_k']
    ax.bar(x, [v[0] for v in values], width=0.4, yerr=errors, capsize=3,
           label=f"{role.upper()} {metrics['models'][role]['name']} @{k}")
  ax.set_xticks([int(lv) for lv in levels])
  ax.set_xlabel('MATH level')
  ax.set_ylabel('coverage at the matched budget')
  ax.legend()
  ax.grid(alpha=0.3, axis='y')
  fig.tight_layout()
  with path.open('wb') as f:  # a local file or an object
    fig.savefig(f, format='png', dpi=120)
  plt.close(fig)
  return True


def _per_problem(run_dir, metrics: dict, role: str) -> tuple[np.ndarray, np.ndarray]:
  """Whether each problem of a run was solved by `role`'s samples, and its distinct correct solutions."""
  name = rundir.model_dir_name(role, metrics['models'][role]['name'])
  distinct = np.zeros(metrics['problems'])
  for j, n in summary.distinct_correct(rundir.samples_of(run_dir, name)).items():
    distinct[j] = n
  return (distinct > 0).astype(float), distinct


def compare(run_dirs: list, metrics: list[dict], *, seed: int = 0) -> str:
  """Runs of the same problems side by side, per model (uniform against adaptive
  allocation, say): how each drew its samples, the FLOPs it spent, and what they
  bought: coverage and distinct correct solutions per problem, each with its 95%
  bootstrap interval over problems, and each run's difference from the first with a
  paired interval (the same problems resampled for both)."""
  first = metrics[0]
  for run_dir, m in zip(run_dirs[1:], metrics[1:]):
    if (m['dataset'], m['split'], m['problems']) != (first['dataset'], first['split'], first['problems']):
      raise rundir.RunError(
          f"{run_dir} holds {m['problems']} {m['dataset']} {m['split']} problems and {run_dirs[0]} "
          f"{first['problems']} {first['dataset']} {first['split']} ones: runs compare only on the same problems.")
  roles = [r for r in first['models'] if all(m['models'].get(r, {}).get('samples') for m in metrics)]
  if not roles:
    raise rundir.RunError('No model has samples in every run given: nothing to compare.')
  rows = analysis.bootstrap_rows(first['problems'], seed=seed)
  interval = lambda v: analysis.format_interval(
      [v.mean(), *(float(x) for x in analysis.percentile_interval(v[rows].mean(axis=1), analysis.CONFIDENCE))])
  lines = [f"# {first['dataset']} {first['split']}: {first['problems']} problems, {len(run_dirs)} runs compared", '']
  for role in roles:
    lines += [f"## {role.upper()} {first['models'][role]['name']}", '',
              '| run | allocation | samples/problem (min-max) | FLOPs | coverage | distinct correct/problem '
              '| coverage - first run | distinct - first run |', '|---|---|---|---|---|---|---|---|']
    base = None
    for run_dir, m in zip(run_dirs, metrics):
      model, allocation = m['models'][role], m['models'][role].get('allocation', {'kind': 'uniform'})
      solved, distinct = _per_problem(run_dir, m, role)
      counts = allocation.get('samples_per_problem', {'min': model['samples_per_problem'],
                                                      'mean': model['samples_per_problem'],
                                                      'max': model['samples_per_problem']})
      kind = allocation['kind'] + (f" (m={allocation['stop_after_correct']}, {allocation['rounds']} rounds)"
                                   if allocation['kind'] == 'adaptive' else '')
      flops = model['flops']['generated'] + model['flops']['prompt_computed']
      diffs = ['', ''] if base is None else [interval(solved - base[0]), interval(distinct - base[1])]
      base = base or (solved, distinct)
      lines.append(f"| {run_dir} | {kind} | {counts['mean']:.1f} ({counts['min']}-{counts['max']}) | {flops:.4g} "
                   f"| {interval(solved)} | {interval(distinct)} | {diffs[0]} | {diffs[1]} |")
    lines.append('')
  lines.append(f'Intervals: 95% percentile bootstraps over problems (seed {seed}); differences are paired.')
  return '\n'.join(lines) + '\n'


def _read_metrics(run_dir) -> dict:
  path = run_dir / 'metrics.json'
  if not path.exists():
    raise FileNotFoundError(f'{path} does not exist: is {run_dir} a finished sampling run?')
  return json.loads(path.read_text())


def main(argv: list[str]) -> None:
  if len(argv) < 2:
    raise app.UsageError('usage: python -m wcse_jax.report RUN_DIR [RUN_DIR ...]')
  if len(argv) > 2:  # runs side by side
    run_dirs = [rundir.run_path(a) for a in argv[1:]]
    print(compare(run_dirs, [_read_metrics(d) for d in run_dirs]), end='')
    return
  run_dir = rundir.run_path(argv[1])
  metrics = _read_metrics(run_dir)
  text = markdown(metrics)
  false_positives = run_dir / 'false_positives.json'
  if false_positives.exists():
    text += '\n'.join(false_positive_lines(json.loads(false_positives.read_text()))) + '\n'

  (run_dir / 'report.md').write_text(text)
  forecast_path = run_dir / 'forecast.json'
  plot(metrics, run_dir / 'coverage_diversity.png',
       json.loads(forecast_path.read_text()) if forecast_path.exists() else None)
  written = [run_dir / 'report.md', run_dir / 'coverage_diversity.png']
  if plot_levels(metrics, run_dir / 'coverage_by_level.png'):
    written.append(run_dir / 'coverage_by_level.png')
  print(text)
  print(f"Wrote {', '.join(map(str, written))}.")


if __name__ == '__main__':
  cli.run(main)
