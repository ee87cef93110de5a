r"""python -m wcse_jax.plan PILOT_RUN: which model to sample at a budget, forecast from a pilot.

    python -m wcse_jax.sample --config=configs/sample.py:paper_math --budget=2 --limit=300 \
        --output_dir=runs/pilot                      # the pilot: SE 2, WC 6 samples per problem
    python -m wcse_jax.plan runs/pilot --budget=high # predicted coverage of WC@30 vs SE@10
    python -m wcse_jax.plan runs/x --backtest=0.25   # fit on each problem's first quarter of
                                                     # samples, compare with what all of them show

For each model the pilot sampled, a beta-binomial fit of its problems' success
rates (forecast.py) predicts coverage@k at the target budget's compute-matched
counts (S_SE at --budget, S_WC = ratio x S_SE as `sample` would plan them), with
95% bootstrap intervals, and says which model buys more coverage, or that the
pilot cannot tell them apart (overlapping intervals: sample more pilot
problems). A pilot needs at least 2 samples per problem of each model.

Writes PILOT_RUN/forecast.json (the fit, and coverage@k and correct@k forecasts
on a grid of k up to 4x the target, with intervals and the FLOPs per problem of
each k), which `python -m wcse_jax.report` overlays on the measured curves.
"""

from __future__ import annotations

import json
import pathlib

from absl import app, flags

from wcse_jax import cli, forecast, rundir, summary
from wcse_jax.checkpoints import config_of
from wcse_jax.sampling import budget

def target_plan(config: dict, budget_name: str) -> budget.Plan:
  """The plan `sample` would make at `budget_name` for the pilot's models and match mode."""
  try:
    value = int(budget_name)
  except ValueError:
    value = budget_name
  return budget.plan(
      budget=value, match=config.get('match', 'compute'),
      wc_params=budget.model_params(config_of(config['wc']), config.get('params_from', 'label')),
      se_params=budget.model_params(config_of(config['se']), config.get('params_from', 'label')),
      wc_price=config.get('wc_price'), se_price=config.get('se_price'),
  )


def _grid(target: int, measured: int) -> list[int]:
  ks = set(range(1, measured + 1)) | {target}
  k = 1
  while k <= 4 * max(target, 1):
    ks.add(k)
    k *= 2
  ks.add(4 * target)
  return sorted(ks)


def plan_from_pilot(run_dir: pathlib.Path, budget_name: str, *, seed: int, backtest: float = 0.0) -> dict:
  """The forecast for every model the pilot sampled; see the module docstring."""
  config_path, metrics_path = run_dir / 'config.json', run_dir / 'metrics.json'
  if not config_path.exists() or not metrics_path.exists():
    raise rundir.RunError(f'{run_dir} is not a finished sampling run (no config.json or metrics.json).')
  config = json.loads(config_path.read_text())
  metrics = json.loads(metrics_path.read_text())
  target = target_plan(config, budget_name)
  out = {'target': {'budget': budget_name, **vars(target)}, 'models': {}}
  for role, m in metrics['models'].items():
    if not m.get('samples'):
      continue
    grouped = summary.by_problem(rundir.samples_of(run_dir, rundir.model_dir_name(role, config[role])))
    measured_n = m['samples_per_problem']
    first = max(2, round(backtest * measured_n)) if backtest else None
    n, c = forecast.pilot_counts(grouped, first)
    k_target = target.wc_samples if role == 'wc' else target.se_samples
    ks = _grid(k_target, measured_n)
    try:
      result = forecast.forecast(n, c, ks, seed=seed)
    except ValueError as e:
      raise rundir.RunError(f'{role} pilot: {e}.') from None
    flops_per_sample = (m['flops']['generated'] + m['flops']['prompt_computed']) / m['samples']
    result.update(
        name=m['name'], pilot_samples_per_problem=int(n.max()), target_k=k_target,
        flops_per_problem={str(k): k * flops_per_sample for k in ks},
        measured_coverage_at_k=m['coverage_at_k'],
    )
    out['models'][role] = result
  if not out['models']:
    raise rundir.RunError(f'{run_dir} holds no samples to forecast from.')
  out['advice'] = advice(out)
  return out


def advice(result: dict) -> str:
  """One sentence: which model's predicted coverage at the target is higher, if the pilot can tell."""
  models = result['models']
  if set(models) != {'wc', 'se'}:
    only = next(iter(models))
    return (f'only {only.upper()} was sampled in the pilot: sample the other model too '
            '(at least 2 samples per problem) to compare them')
  wc = models['wc']['coverage_at_k'][str(models['wc']['target_k'])]
  se = models['se']['coverage_at_k'][str(models['se']['target_k'])]
  best, other = ('wc', 'se') if wc[0] >= se[0] else ('se', 'wc')
  b, o = (wc, se) if best == 'wc' else (se, wc)
  if b[1] > o[2]:
    return f'sample {best.upper()}: its predicted coverage {b[0]:.3f} beats {other.upper()}\'s {o[0]:.3f}'
  return (f'{best.upper()} is ahead ({b[0]:.3f} vs {o[0]:.3f}) but the intervals overlap: '
          'a pilot on more problems would tell')


def define_flags() -> None:
  """The command line. Defined only when run as a program: --budget would clash with
  `sample`'s flags where both modules are imported."""
  flags.DEFINE_string('budget', 'high', 'Target budget: low, high or S_SE (an integer).')
  flags.DEFINE_float(
      'backtest', 0.0, "Fit on this fraction of each problem's samples and compare with all of them (0: off).")
  flags.DEFINE_integer('forecast_seed', 0, 'Seed of the bootstrap.')


def main(argv: list[str]) -> None:
  args = flags.FLAGS
  if len(argv) != 2:
    raise app.UsageError('usage: python -m wcse_jax.plan PILOT_RUN [--budget=high] [--backtest=0.25]')
  if not 0 <= args.backtest < 1:
    raise cli.SettingError(f'--backtest takes a fraction in [0, 1), got {args.backtest}.')
  run_dir = rundir.run_path(argv[1])
  result = plan_from_pilot(run_dir, args.budget, seed=args.forecast_seed, backtest=args.backtest)
  rundir.write_json_atomic(run_dir / 'forecast.json', result)
  t = result['target']
  print(f"Target: budget {t['budget']}, {t['match']}-matched: SE {t['se_samples']} vs WC {t['wc_samples']} "
        'samples per problem.')
  for role, m in result['models'].items():
    k = str(m['target_k'])
    cov, fit = m['coverage_at_k'][k], m['fit']
    print(f"  {role.upper()} {m['name']}: pilot {fit['problems']} problems x {m['pilot_samples_per_problem']} "
          f"samples, Beta({fit['a']:.3g}, {fit['b']:.3g}); coverage@{k} {cov[0]:.3f} [{cov[1]:.3f}, {cov[2]:.3f}]")
    if args.backtest:
      for kk, measured in m['measured_coverage_at_k'].items():
        if int(kk) > m['pilot_samples_per_problem'] and kk in m['coverage_at_k']:
          f = m['coverage_at_k'][kk]
          print(f'    k={kk}: forecast {f[0]:.3f} [{f[1]:.3f}, {f[2]:.3f}], measured {measured:.3f}')
  print(result['advice'] + '.')
  print(f"Wrote {run_dir / 'forecast.json'}.")


if __name__ == '__main__':
  define_flags()
  cli.run(main)
