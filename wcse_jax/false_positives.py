"""python -m wcse_jax.false_positives: how often a correct final answer hides wrong reasoning.

    python -m wcse_jax.false_positives judge RUN_DIR --num=200
        an LLM judge (run with our sampler, greedy) reads each sampled solution whose
        answer graded correct, with the problem and its gold solution, and says whether
        the reasoning is valid. The judge is the strongest model of the run, its SE
        model, unless --judge names another (any loadable model); the bundled Gemma 3
        270M base model is never a judge. The prompt is a text file a user can read
        and change: data/bundled/prompts/false_positive_judge.txt, or --judge_prompt.
    python -m wcse_jax.false_positives export RUN_DIR labels.csv --num=200
        a seeded random sample to CSV, for people to fill the `label` column
    python -m wcse_jax.false_positives labels RUN_DIR labels.csv
        reads the filled CSV back

Each writes its estimate (rate, Wilson interval, counts) into
RUN_DIR/false_positives.json under the model's role and the method ('judge'
or 'human'); `python -m wcse_jax.report RUN_DIR` shows both.
"""

from __future__ import annotations

import json
import pathlib

from absl import app, flags

from wcse_jax import cli, metrics, rundir
from wcse_jax.data import load_problems

# Base models too small to judge reasoning: their verdicts would measure the judge, not the data.
TOO_WEAK_TO_JUDGE = ('gemma3-270m',)


def judge_model(run_dir: pathlib.Path, named: str) -> str:
  """The judge: `named`, else the run's SE model; never one of TOO_WEAK_TO_JUDGE."""
  judge = named or json.loads((run_dir / 'config.json').read_text()).get('se', '')
  if not judge:
    raise cli.SettingError(f'{run_dir} names no SE model: pass --judge=MODEL (a strong instruction-following one).')
  if pathlib.Path(judge.rstrip('/')).name.removesuffix('.gguf') in TOO_WEAK_TO_JUDGE:
    raise cli.SettingError(
        f'{judge} is too small to judge reasoning; pass --judge= a strong model (the paper uses its strongest).')
  return judge


def candidates(run_dir: pathlib.Path, role: str) -> list[metrics.Candidate]:
  """Every sample of `role` whose final answer graded correct, with its gold solution."""
  config = json.loads((run_dir / 'config.json').read_text())
  model_dir = rundir.model_dir_name(role, config[role])
  problems = {
      p.id: p for p in load_problems(config['dataset'], config['split'], source=config['data_source'])
  }
  found = [
      metrics.Candidate(s['problem_id'], problems[s['problem_id']].question,
                        problems[s['problem_id']].solution, s['text'])
      for s in rundir.samples_of(run_dir, model_dir) if s['correct']
  ]
  if not found:
    raise rundir.RunError(f'{run_dir} has no correct {role} samples to check.')
  return found


def greedy_generate(model_name: str, max_new_tokens: int):
  """`generate(prompts) -> replies` with our sampler, greedy, one reply per prompt."""
  from wcse_jax.checkpoints import load_model  # pylint: disable=g-import-not-at-top
  from wcse_jax.sampling import (  # pylint: disable=g-import-not-at-top
      Sampler, SamplingParams, context_length, sampling_layout,
  )

  loaded = sampling_layout(load_model(model_name), donate=True)  # laid out once for every call

  def generate(prompts: list[str]) -> list[str]:
    max_len = context_length(loaded.tokenizer, loaded.config, '', prompts, max_new_tokens)
    sampler = Sampler(loaded, max_len=max_len)
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    replies = [''] * len(prompts)
    for c in sampler.sample('', prompts, num_samples=1, params=params, seed=0):
      replies[c.problem] = c.text
    return replies

  return generate


def record(run_dir: pathlib.Path, role: str, method: str, estimate: metrics.FalsePositiveRate, **extra) -> None:
  path = run_dir / 'false_positives.json'
  results = json.loads(path.read_text()) if path.exists() else {}
  results.setdefault(role, {})[method] = {**vars(estimate), **extra}
  rundir.write_json_atomic(path, results)
  print(f'{role} {method}: false-positive rate {estimate.rate:.3f} '
        f'[{estimate.low:.3f}, {estimate.high:.3f}] ({estimate.invalid}/{estimate.judged} invalid)')


def main(argv: list[str]) -> None:
  needed = {'judge': 3, 'export': 4, 'labels': 4}  # the program, the verb and its arguments
  if len(argv) < 2 or argv[1] not in needed or len(argv) != needed[argv[1]]:
    raise app.UsageError('usage: false_positives judge RUN_DIR | export RUN_DIR OUT.csv | labels RUN_DIR IN.csv')
  verb, run_dir = argv[1], rundir.run_path(argv[2])
  if verb == 'labels':
    record(run_dir, flags.FLAGS.role, 'human', metrics.false_positive_rate_from_labels(argv[3]), labels=argv[3])
    return
  found = candidates(run_dir, flags.FLAGS.role)
  if verb == 'export':
    sample = metrics.export_for_labelling(found, argv[3], sample_size=flags.FLAGS.num, seed=flags.FLAGS.seed)
    print(f'Wrote {len(sample)} solutions to {argv[3]}: fill `label` with valid or invalid.')
    return
  judge = judge_model(run_dir, flags.FLAGS.judge)
  template = metrics.judge_template(flags.FLAGS.judge_prompt or None)
  chosen = metrics.seeded_sample(found, flags.FLAGS.num, flags.FLAGS.seed)  # the solutions `export` writes
  generate = greedy_generate(judge, flags.FLAGS.max_new_tokens)
  try:
    report = metrics.judge_false_positive_rate(chosen, generate, template=template)
  except ValueError:  # no reply held a clean verdict
    raise rundir.RunError(
        f'{judge} gave no "Verdict: valid/invalid" line for any of {len(chosen)} '
        'solutions: use a stronger (instruction-following) judge.'
    ) from None
  record(run_dir, flags.FLAGS.role, 'judge', report.estimate, judge=judge,
         judge_prompt=flags.FLAGS.judge_prompt or 'bundled')


def define_flags() -> None:
  """The command line. Defined only when run as a program, so that importing this module
  beside others (`sample` has --seed too) defines no flag twice."""
  flags.DEFINE_enum('role', 'wc', ['wc', 'se'], 'Whose samples to check.')
  flags.DEFINE_string('judge', '', "Judge model: preset, path or hub id (default: the run's SE model).")
  flags.DEFINE_string(
    'judge_prompt', '', 'Text file of the judge prompt, with {question}, {gold_solution} and {solution}.')
  flags.DEFINE_integer('num', 200, 'Correct-answer solutions to check (a seeded sample).')
  flags.DEFINE_integer('seed', 0, 'Seed of the random sample.')
  flags.DEFINE_integer('max_new_tokens', 512, 'Longest judge reply.')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
