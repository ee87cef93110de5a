r"""python -m wcse_jax.subsets RUN_DIR: the paper's ablation data from a finished sampling run.

    python -m wcse_jax.subsets runs/paper_math-math-high
    python -m wcse_jax.subsets runs/x --fractions=0.25,0.5 --coverage=0.4 --subset_seed=1
    python -m wcse_jax.subsets runs/x --push_to_hub=my-org/wcse-math-high   # all SFT sets + card

Writes, next to the run's SFT sets (sft/<model>.jsonl), each with the recipe
that made it (sft/<set>.recipe.json), and rewrites the dataset card sft/README.md:

    <wc>-number_matched        WC's correct solutions from its first S_SE samples per problem
                               only: as many samples as SE drew, against the compute-matched
                               set (all S_WC samples) from the same samples
    <set>-problems_<f>         every set restricted to a seeded random fraction f of the
                               problems (dataset-size ablation)
    <set>-one_per_problem      one correct solution per problem (its first), all problems kept:
                               coverage unchanged, diversity 1 (diversity ablation)
    <set>-coverage_<c>         all solutions of a seeded random subset of the covered problems,
                               so that a fraction c of the run's problems is covered (coverage
                               ablation: --coverage=same_as_se matches the SE set's coverage)

Any of them is a finetuning set: `python -m wcse_jax.finetune --data=RUN_DIR/sft/<set>.jsonl`.
Subsets are drawn with --subset_seed (default 0) and are the same on every run of the command.
"""

from __future__ import annotations

import json
import pathlib
import random
import sys

from absl import app, flags

from wcse_jax import cli, rundir, summary
from wcse_jax.data import DataError



def _by_problem(records: list[dict]) -> dict[str, list[dict]]:
  grouped: dict[str, list[dict]] = {}
  for r in records:
    grouped.setdefault(r['problem_id'], []).append(r)
  return grouped


def number_matched(run_dir: pathlib.Path, wc_dir: str, se_samples: int, questions: dict[str, str], name: str):
  """WC's SFT records from its first `se_samples` samples of every problem."""
  samples = [s for s in rundir.samples_of(run_dir, wc_dir) if s['sample'] < se_samples]
  return summary.sft_records(samples, questions, name)


def problem_fraction(records: list[dict], all_problems: list[str], fraction: float, seed: int) -> list[dict]:
  """The records of a seeded random `fraction` of all the run's problems (covered or not)."""
  chosen = set(random.Random(seed).sample(sorted(all_problems), round(fraction * len(all_problems))))
  return [r for r in records if r['problem_id'] in chosen]


def one_per_problem(records: list[dict]) -> list[dict]:
  """The first (lowest sample index) correct solution of every covered problem."""
  return [min(group, key=lambda r: r['sample']) for group in _by_problem(records).values()]


def reduced_coverage(
    records: list[dict], num_problems: int, coverage: float, seed: int, name: str = 'the set'
) -> list[dict]:
  """All solutions of a seeded random subset of the covered problems: round(coverage * num_problems) of them."""
  covered = sorted(_by_problem(records))
  keep = round(coverage * num_problems)
  if keep > len(covered):
    raise DataError(f'{name} covers only {len(covered)} of {num_problems} problems, '
                    f'fewer than --coverage={coverage:g} asks for')
  chosen = set(random.Random(seed).sample(covered, keep))
  return [r for r in records if r['problem_id'] in chosen]


def _fraction(text: str, what: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise cli.SettingError(f'--{what} takes fractions like 0.25, got {text!r}.') from None
  if not 0 < value <= 1:
    raise cli.SettingError(f'--{what} takes fractions in (0, 1], got {text!r}.')
  return value


def make_subsets(run_dir: pathlib.Path, *, fractions: list[float], coverage: list[str], seed: int) -> dict[str, int]:
  """Writes every subset and the card; returns {set name: examples}."""
  if not (run_dir / 'metrics.json').exists():
    raise DataError(f'{run_dir}/metrics.json does not exist: is {run_dir} a finished sampling run?')
  metrics = json.loads((run_dir / 'metrics.json').read_text())
  base = {name: recipe for name, recipe in summary.sft_sets(run_dir).items() if recipe.get('kind') == 'all_correct'}
  if not base:
    raise DataError(f'{run_dir}/sft holds no SFT set of a sampling run (sft/<model>.jsonl with its recipe).')
  records = {name: rundir.read_lines(run_dir / 'sft' / f'{name}.jsonl') for name in base}
  questions = {r['problem_id']: r['question'] for rs in records.values() for r in rs}
  problem_ids = sorted({s['problem_id'] for name in base for s in rundir.samples_of(run_dir, name)})
  num_problems = len(problem_ids)
  made: dict[str, int] = {}

  def write(name, rows, recipe):
    summary.write_sft(run_dir, name, rows, {'seed': seed, **recipe})
    made[name] = len(rows)

  by_role = {recipe.get('role'): name for name, recipe in base.items()}
  plan = metrics['plan']
  if 'wc' in by_role and plan['se_samples'] < plan['wc_samples']:
    wc = by_role['wc']
    rows = number_matched(run_dir, wc, plan['se_samples'], questions, base[wc]['source_model'])
    write(f'{wc}-number_matched', rows, {
        'kind': 'number_matched', 'from': wc, 'samples_per_problem': plan['se_samples'],
        'note': f"WC's first {plan['se_samples']} samples per problem (as many as SE), against the "
                f"compute-matched {plan['wc_samples']}"})
  for name, rows in records.items():
    for f in fractions:
      write(f'{name}-problems_{f:g}', problem_fraction(rows, problem_ids, f, seed),
            {'kind': 'problem_fraction', 'from': name, 'fraction': f, 'of_problems': num_problems})
    write(f'{name}-one_per_problem', one_per_problem(rows), {'kind': 'one_per_problem', 'from': name})
    for target in coverage:
      if target == 'same_as_se':
        if 'se' not in by_role or name == by_role['se']:
          continue  # no SE set to match, or the SE set itself
        value, label = len(_by_problem(records[by_role['se']])) / num_problems, 'same_as_se'
        if value > len(_by_problem(rows)) / num_problems:
          print(f'{name} covers fewer problems than the SE set: no {name}-coverage_same_as_se', file=sys.stderr)
          continue
      else:
        value = label = _fraction(target, 'coverage')
      write(f'{name}-coverage_{label:g}' if isinstance(label, float) else f'{name}-coverage_{label}',
            reduced_coverage(rows, num_problems, value, seed, name),
            {'kind': 'reduced_coverage', 'from': name, 'coverage': round(value, 4), 'of_problems': num_problems})
  summary.write_card(run_dir)
  return made


def push_to_hub(run_dir: pathlib.Path, repo: str) -> str:
  """Uploads sft/ (every set, its recipe and the card) to the hub dataset `repo`; its URL."""
  import huggingface_hub  # pylint: disable=g-import-not-at-top

  try:
    api = huggingface_hub.HfApi()
    api.create_repo(repo, repo_type='dataset', exist_ok=True)
    api.upload_folder(folder_path=str(run_dir / 'sft'), repo_id=repo, repo_type='dataset',
                      allow_patterns=['*.jsonl', '*.recipe.json', 'README.md'])
  except Exception as e:  # pylint: disable=broad-except  # offline, no token, no rights: one sentence
    reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    raise DataError(f'could not push {run_dir}/sft to the hub as {repo} ({reason}); '
                    'check the network and `huggingface-cli login`.') from None
  return f'https://huggingface.co/datasets/{repo}'


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    raise app.UsageError('usage: python -m wcse_jax.subsets RUN_DIR [--fractions=...] [--coverage=...]')
  run_dir = rundir.run_path(argv[1])
  fractions = [_fraction(f, 'fractions') for f in flags.FLAGS.fractions]
  for target in flags.FLAGS.coverage:
    if target != 'same_as_se':
      _fraction(target, 'coverage')
  made = make_subsets(run_dir, fractions=fractions, coverage=flags.FLAGS.coverage, seed=flags.FLAGS.subset_seed)
  for name, count in made.items():
    print(f'{run_dir}/sft/{name}.jsonl: {count} examples')
  print(f'Card: {run_dir}/sft/README.md (datasets.load_dataset("{run_dir}/sft", "<set>"))')
  if flags.FLAGS.push_to_hub:
    print(f'Pushed: {push_to_hub(run_dir, flags.FLAGS.push_to_hub)}', file=sys.stderr)


def define_flags() -> None:
  """The command line. Defined only when run as a program, so that importing this module
  beside others (`sample` has --seed too) defines no flag twice."""
  flags.DEFINE_list('fractions', ['0.25', '0.5'], 'Dataset-size subsets: fractions of the problems.')
  flags.DEFINE_list(
    'coverage', ['same_as_se'], 'Coverage ablations: fractions of the problems to cover, or same_as_se.')
  flags.DEFINE_integer('subset_seed', 0, 'Seed of the random subsets.')
  flags.DEFINE_string('push_to_hub', '', 'ORG/NAME: push the SFT sets and their card to the Hugging Face hub.')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
