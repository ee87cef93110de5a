"""python -m wcse_jax.report RUN_DIR: a markdown table and plots of a sampling run.

Writes RUN_DIR/report.md and RUN_DIR/coverage_diversity.png (coverage@k and
diversity@k against k for the WC and SE models, and against FLOPs per problem,
where compute-matched budgets line up) and prints the markdown.
"""

from __future__ import annotations

import json
import pathlib

from absl import app

from wcse_jax import cli


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
    lines.append(
        f"| {role.upper()} {m['name']} | {m['params'] / 1e9:.3g}B | {n} | "
        f"{m['coverage_at_k']['1']:.3f} | {m['coverage_at_k'][n]:.3f} | "
        f"{m['diversity_at_k'][n]:.3f} | {m['accuracy']:.3f} | {m['tokens']['generated']:,} | "
        f'{flops:.3g} | {m["sft_examples"]:,} |'
    )
  if metrics.get('matched'):
    lines += ['', '| budget | WC coverage | SE coverage | WC diversity | SE diversity |',
              '|---|---|---|---|---|']
    for row in metrics['matched']:
      lines.append(
          f"| WC@{row['wc_k']} vs SE@{row['se_k']} | {row['wc_coverage']:.3f} | "
          f"{row['se_coverage']:.3f} | {row['wc_diversity']:.3f} | {row['se_diversity']:.3f} |"
      )
  return '\n'.join(lines) + '\n'


def plot(metrics: dict, path: pathlib.Path) -> None:
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
    axes[0].plot(flops, [m['coverage_at_k'][str(k)] for k in ks], marker='o', label=label)
    axes[1].plot(flops, [m['diversity_at_k'][str(k)] for k in ks], marker='o', label=label)
  for ax, title in zip(axes, ('coverage@k', 'diversity@k')):
    ax.set_xscale('log')
    ax.set_xlabel('FLOPs per problem (k samples)')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(f"{metrics['dataset']} {metrics['split']} ({metrics['problems']} problems)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    raise app.UsageError('usage: python -m wcse_jax.report RUN_DIR')
  run_dir = pathlib.Path(argv[1])
  path = run_dir / 'metrics.json'
  if not path.exists():
    raise FileNotFoundError(f'{path} does not exist: is {run_dir} a finished sampling run?')
  metrics = json.loads(path.read_text())
  text = markdown(metrics)
  (run_dir / 'report.md').write_text(text)
  plot(metrics, run_dir / 'coverage_diversity.png')
  print(text)
  print(f"Wrote {run_dir / 'report.md'} and {run_dir / 'coverage_diversity.png'}.")


if __name__ == '__main__':
  cli.run(main)
