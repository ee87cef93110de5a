r"""python -m wcse_jax.sample --budget=high: the compute-matched sampling run.

Samples few-shot chain-of-thought solutions from a weaker-but-cheaper (WC) and
a stronger-but-expensive (SE) model at the counts one budget buys, grades each
as it is written, and ends with metrics.json and the filtered SFT sets (layout
in `wcse_jax.rundir`). Started again with the same command, a killed run goes
on where it stopped and ends with the same files. On a multi-host TPU slice
every host samples its share of the problems on its own devices and writes its
own shard; the first host writes the summary.

    python -m wcse_jax.sample --budget=high                 # configs/sample.py:auto
    python -m wcse_jax.sample --config=configs/sample.py:paper_math --budget=low
    python -m wcse_jax.sample --wc=gemma2-2b --se=gemma2-9b --dataset=math500 --limit=50
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from ml_collections import config_flags
from tqdm import tqdm

from wcse_jax import analysis, cli, parallel, rundir, summary
from wcse_jax.checkpoints import CheckpointError, config_of, default_dtype, load_model, resolve
from wcse_jax.data import Grader, few_shot_prompt, load_problems
from wcse_jax.data.grader import VERSION as grader_version
from wcse_jax.model import count_params
from wcse_jax.sampling import (
    SamplingParams, Sampler, allocation, budget, context_length, sampling_layout, tokenize_prompts,
)

_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs' / 'sample.py'
_CONFIG = config_flags.DEFINE_config_file(
    'config', f'{_CONFIGS}:auto', 'Run config (configs/sample.py:NAME).', lock_config=False
)
_ENUMS = {
    'match': budget.MATCH_MODES,
    'sample_se': ('auto', 'yes', 'no'),
    'dataset': ('math', 'gsm8k', 'math500'),
    'allocation': ('uniform', 'adaptive'),
    'dtype': ('auto', 'float32', 'bfloat16'),
    'kv_layout': ('auto', 'dense', 'paged'),
}
_OVERRIDES = {
    'budget': (flags.DEFINE_string, 'low, high, or the SE samples per problem.'),
    'match': (flags.DEFINE_enum, 'compute, price or number matching.'),
    'wc': (flags.DEFINE_string, 'Weaker-but-cheaper model: preset, path or hub id.'),
    'se': (flags.DEFINE_string, 'Stronger-but-expensive model: preset, path or hub id.'),
    'sample_se': (flags.DEFINE_enum, 'Sample the SE model too: auto, yes or no.'),
    'dataset': (flags.DEFINE_enum, 'Problems to sample.'),
    'split': (flags.DEFINE_string, 'train or test.'),
    'data_source': (flags.DEFINE_string, 'bundled, hf, tfds or a JSONL path.'),
    'limit': (flags.DEFINE_integer, 'Sample only the first N problems (0: all).'),
    'output_dir': (flags.DEFINE_string, 'Run directory.'),
    'seed': (flags.DEFINE_integer, 'Sampling seed.'),
    'temperature': (flags.DEFINE_float, 'Sampling temperature (0: greedy).'),
    'top_k': (flags.DEFINE_integer, 'Top-k (0: off).'),
    'top_p': (flags.DEFINE_float, 'Top-p (1: off).'),
    'min_p': (flags.DEFINE_float, 'Min-p (0: off).'),
    'max_new_tokens': (flags.DEFINE_integer, 'Most tokens per solution.'),
    'num_slots': (flags.DEFINE_integer, 'Samples decoded together per host.'),
    'dtype': (flags.DEFINE_enum, 'Weights: auto (float32 on CPU, bfloat16 on GPU/TPU), float32 or '
              'bfloat16 (about 1.4x faster decoding on CPU, where the KV cache stays float32).'),
    'flush_every': (flags.DEFINE_integer, 'Write graded samples to disk at least every N.'),
    'kv_layout': (flags.DEFINE_enum, 'KV cache: auto (paged on GPU, else dense), dense or paged (page '
                  'tables; JAX\'s Pallas kernels on GPU/TPU).'),
    'page_size': (flags.DEFINE_integer, 'Positions per KV page (paged).'),
    'allocation': (flags.DEFINE_enum, 'uniform: every problem its S samples; adaptive: the same FLOPs in '
                   'rounds, a problem stopping at --stop_after_correct correct samples.'),
    'stop_after_correct': (flags.DEFINE_integer, 'adaptive: correct samples after which a problem stops drawing.'),
    'round_samples': (flags.DEFINE_integer, 'adaptive: samples per problem per round.'),
}
_FLAGS = {
    name: define(name, None, _ENUMS[name], help_text) if name in _ENUMS
    else define(name, None, help_text)
    for name, (define, help_text) in _OVERRIDES.items()
}


def settings() -> dict:
  """The config file's values with every flag given on the command line applied.

  The `auto` config becomes `local` on CPU and `paper_math` elsewhere, keeping
  any `--config.NAME=...` given with it.
  """
  config = _CONFIG.value.to_dict()
  if config['name'] == 'auto':
    config = _resolve_auto(config)
  for name, flag in _FLAGS.items():
    if flag.present:
      config[name] = flag.value
  if not config['output_dir']:
    config['output_dir'] = f"runs/{config['name']}-{config['dataset']}-{config['budget']}"
  check_settings(config)
  return config


def _resolve_auto(config: dict) -> dict:
  spec = importlib.util.spec_from_file_location('wcse_jax_sample_configs', _CONFIGS)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  name = 'local' if jax.default_backend() == 'cpu' else 'paper_math'
  given = module.get_config('auto').to_dict()  # what --config.NAME=... changed differs from it
  changed = {key: value for key, value in config.items() if key != 'name' and given.get(key) != value}
  return {**module.get_config(name).to_dict(), **changed}


def check_settings(config: dict) -> None:
  """Stops with one sentence on a value that cannot work, before anything loads."""
  for name in ('limit', 'seed'):
    if config[name] < 0:
      raise cli.SettingError(f'--{name} must be >= 0, got {config[name]}.')
  for name in ('num_slots', 'prefill_rows', 'chunk_steps', 'flush_every', 'stop_after_correct', 'round_samples',
               'page_size'):
    if config[name] < 1:
      raise cli.SettingError(f'--{name} must be >= 1, got {config[name]}.')
  try:
    budget.plan(budget=config['budget'], match=config['match'], wc_params=1.0, se_params=1.0,
                wc_price=config['wc_price'], se_price=config['se_price'])
    sampling_params(config, stop=())
  except ValueError as e:
    raise cli.SettingError(str(e)) from None
  choices = {**_ENUMS, 'params_from': ('label', 'count')}
  for name, allowed in choices.items():
    if config[name] not in allowed:
      raise cli.SettingError(f"--{name} must be one of {', '.join(allowed)}, got {config[name]!r}.")


def weights_dtype(config: dict):
  """The dtype the weights and their products are in: the backend's default for 'auto'."""
  return default_dtype() if config['dtype'] == 'auto' else jnp.dtype(config['dtype'])


def sampling_params(config: dict, stop: tuple[str, ...]) -> SamplingParams:
  return SamplingParams(
      temperature=config['temperature'], top_k=config['top_k'] or None, top_p=config['top_p'],
      min_p=config['min_p'], max_new_tokens=config['max_new_tokens'], stop_strings=stop,
  )


@dataclasses.dataclass(frozen=True)
class ModelRun:
  role: str  # 'wc' or 'se'
  name: str
  samples: int
  params: int  # exact count, for FLOPs

  @property
  def directory(self) -> str:
    return rundir.model_dir_name(self.role, self.name)


def plan_runs(config: dict) -> tuple[budget.Plan, list[ModelRun], str]:
  """The budget plan, the models to sample, and why the SE is or is not sampled."""
  wc, se = config_of(config['wc']), config_of(config['se'])
  plan = budget.plan(
      budget=config['budget'], match=config['match'],
      wc_params=budget.model_params(wc, config['params_from']),
      se_params=budget.model_params(se, config['params_from']),
      wc_price=config['wc_price'], se_price=config['se_price'],
  )
  runs = [ModelRun('wc', config['wc'], plan.wc_samples, count_params(wc))]
  note = 'SE not sampled (sample_se=no): its size sets the WC count.'
  if config['sample_se'] != 'no':
    try:
      resolve(config['se'])
      runs.append(ModelRun('se', config['se'], plan.se_samples, count_params(se)))
      note = 'SE sampled.'
    except CheckpointError as e:
      if config['sample_se'] == 'yes':
        raise
      note = f'SE not sampled: its weights are not available ({e})'
  return plan, runs, note


def sample_model(run: ModelRun, config: dict, problems, run_dir: pathlib.Path) -> int:
  """Samples, grades and appends this host's share of one model's samples; returns the
  lines in this host's shard.

  Problem j is host j % hosts's. What any shard of the directory already holds
  (this host's, or one written before a change in the number of hosts) is not
  drawn again.
  """
  host, hosts = jax.process_index(), jax.process_count()
  shard = rundir.shard_path(run_dir, run.directory, host, hosts)
  rundir.read_lines(shard, repair=True)  # cuts a line torn by a crash
  visible = lambda: rundir.samples_of(run_dir, run.directory)
  mine = list(range(host, len(problems), hosts))
  if config['allocation'] == 'adaptive':
    _draw_adaptive(run, config, problems, shard, visible, mine)
  else:
    done = {(r['problem_index'], r['sample']) for r in visible()}
    pairs = [(j, i) for j in mine for i in range(run.samples) if (j, i) not in done]
    if pairs:
      _Drawer(run, config, problems).draw(pairs, shard)
  return rundir.finalize_shard(shard)


def _draw_adaptive(run: ModelRun, config: dict, problems, shard: pathlib.Path, visible, mine: list) -> None:
  """Rounds of allocation.next_round until the uniform run's FLOPs are spent (see allocation.py)."""
  prefix_tokens, own_tokens = _prompt_lengths(run.name, config['dataset'], problems)
  drawer = None  # the model loads only if a round is left to draw
  while True:
    plan = allocation.next_round(
        visible(), problems=mine, prompt_tokens={j: own_tokens[j] for j in mine}, prefix_tokens=prefix_tokens,
        uniform_samples=run.samples, round_samples=config['round_samples'],
        stop_after_correct=config['stop_after_correct'], max_new_tokens=config['max_new_tokens'],
    )
    if not plan.pairs:
      return
    drawer = drawer or _Drawer(run, config, problems)
    drawer.draw(list(plan.pairs), shard, desc=f'round {plan.index}')


def read_complete(config: dict, runs: list[ModelRun], problems, run_dir: pathlib.Path,
                  lines_by_host) -> dict[str, list[dict]]:
  """Every sample of the run by role, read once; stops with one sentence unless this
  host sees all of them.

  `lines_by_host[h][r]` is what host h says it wrote for `runs[r]`. A run
  directory on each host's own disk (not shared) is the usual cause.
  """
  samples, unseen = {}, []
  for r, run in enumerate(runs):
    samples[run.role], lines_seen = rundir.read_samples(run_dir, run.directory)
    unseen += rundir.unseen_shards(run_dir / 'samples' / run.directory, lines_seen, [row[r] for row in lines_by_host])
  if unseen:
    raise rundir.RunError(
        f'Host 0 cannot see every host\'s samples, so it cannot summarise the run: {"; ".join(unseen)}. '
        'Give all hosts one --output_dir they share (a bucket, --output_dir=gs://BUCKET/runs/NAME, '
        f'or an NFS mount), or copy each host\'s {run_dir}/samples/ into one run directory and run '
        'the same command there with one process to summarise.'
    )
  if config['allocation'] != 'uniform':
    return samples
  for run in runs:
    have = {(s['problem_index'], s['sample']) for s in samples[run.role]}
    missing = [(j, i) for j in range(len(problems)) for i in range(run.samples) if (j, i) not in have]
    if missing:
      j, i = missing[0]
      raise rundir.RunError(
          f'{run_dir}/samples/{run.directory} lacks {len(missing)} of the run\'s '
          f'{len(problems) * run.samples} samples (the first: problem {j}, sample {i}); '
          'run the same command again to draw them.'
      )
  return samples


def _prompt_lengths(model: str, dataset: str, problems) -> tuple[int, list[int]]:
  """Tokens of the shared few-shot prefix, and of what each problem adds to it."""
  from wcse_jax.checkpoints import load_tokenizer  # pylint: disable=g-import-not-at-top

  kind, location, _ = resolve(model)
  prompt = few_shot_prompt(dataset)
  prefix_ids, prompts = tokenize_prompts(
      load_tokenizer(location, kind=kind), prompt.prefix, [prompt.format_question(p.question) for p in problems],
      share_prefix=True)
  return len(prefix_ids), [len(p.ids) for p in prompts]


class _Drawer:
  """One model loaded with its sampler; draws given (problem, sample) pairs, grades and appends them."""

  def __init__(self, run: ModelRun, config: dict, problems):
    self.run, self.config, self.problems = run, config, problems
    devices = jax.local_devices()
    model_axis = config['mesh_model'] or parallel.fitting_model_axis(2 * run.params, devices)
    loaded = sampling_layout(load_model(  # the model as the sampler reads it, held once
        run.name, mesh=parallel.make_mesh(model=model_axis, devices=devices),
        dtype=weights_dtype(config),
    ), donate=True)
    self.prompt = few_shot_prompt(config['dataset'])
    self.questions = [self.prompt.format_question(p.question) for p in problems]  # 'Q: ...\nA:'
    self.sampler = Sampler(
        loaded,
        max_len=context_length(
            loaded.tokenizer, loaded.config, self.prompt.prefix, self.questions, config['max_new_tokens']
        ),
        num_slots=config['num_slots'],
        prefill_rows=config['prefill_rows'],
        chunk_steps=config['chunk_steps'],
        kv_layout=config['kv_layout'],
        page_size=config['page_size'],
    )

  def draw(self, pairs: list[tuple[int, int]], shard: pathlib.Path, desc: str = '') -> None:
    run, config, problems = self.run, self.config, self.problems
    wanted = set(pairs)
    num_samples = max(i for _, i in pairs) + 1
    skip = {(j, i) for j in range(len(problems)) for i in range(num_samples) if (j, i) not in wanted}
    left = collections.Counter(j for j, _ in pairs)
    completions = self.sampler.sample(
        self.prompt.prefix, self.questions, num_samples=num_samples,
        params=sampling_params(config, self.prompt.stop), seed=config['seed'], skip=skip,
    )
    start, tokens = time.monotonic(), 0
    problems_todo, problems_done = len(left), 0
    bar = tqdm(total=len(pairs), desc=f'{run.role} {run.name} {desc}'.rstrip(), unit='sample', dynamic_ncols=True)
    with Grader(config['dataset'], workers=config['grader_workers'] or None) as grader, \
         rundir.ShardWriter(shard) as writer, bar:
      pending, last_write = [], time.monotonic()
      for completion in completions:
        pending.append(completion)
        tokens += completion.num_tokens
        left[completion.problem] -= 1
        problems_done += left[completion.problem] == 0
        if len(pending) >= config['flush_every'] or time.monotonic() - last_write > 5:
          writer.write(_graded(pending, problems, run, grader))
          bar.update(len(pending))
          elapsed = time.monotonic() - start
          bar.set_postfix(
              problems=f'{problems_done}/{problems_todo}',
              samples_s=f'{bar.n / elapsed:.2f}', tok_s=f'{tokens / elapsed:.0f}',
          )
          pending, last_write = [], time.monotonic()
      writer.write(_graded(pending, problems, run, grader))
      bar.update(len(pending))


def _graded(completions, problems, run: ModelRun, grader: Grader) -> list[dict]:
  results = grader.grade_many([(problems[c.problem].answer, c.text) for c in completions])
  return [
      {
          'problem_index': c.problem,
          'problem_id': problems[c.problem].id,
          'sample': c.sample,
          'model': run.name,
          'text': c.text,
          'num_tokens': c.num_tokens,
          'prompt_tokens': c.prompt_tokens,
          'finish_reason': c.finish_reason,
          'logprob': round(c.logprob, 4),
          'gold': problems[c.problem].answer,
          'extracted': r.extracted,
          'correct': r.correct,
          'grade_reason': r.reason,
      }
      for c, r in zip(completions, results)
  ]


def summarize(config: dict, plan: budget.Plan, runs: list[ModelRun], problems, run_dir: pathlib.Path,
              all_samples: dict[str, list[dict]] | None = None) -> dict:
  """metrics.json and the SFT sets from the finished samples by role (`read_complete`'s;
  read from the shards when not given)."""
  if all_samples is None:
    all_samples = {run.role: rundir.samples_of(run_dir, run.directory) for run in runs}
  questions = {p.id: p.question for p in problems}
  models = {}
  for run in runs:
    samples = all_samples[run.role]
    adaptive = config.get('allocation') == 'adaptive'
    # Each problem's own prompt length is needed only to replay an adaptive run's rounds.
    prefix_tokens, own_tokens = _prompt_lengths(run.name, config['dataset'], problems if adaptive else [])
    replay = _adaptive_replay(run, config, samples, prefix_tokens, own_tokens) if adaptive and samples else None
    generated = sum(s['num_tokens'] for s in samples)
    models[run.role] = {
        'name': run.name,
        'params': run.params,
        **summary.model_metrics(
            samples, params=run.params, prefix_tokens=prefix_tokens,
            prompt_computed=None if replay is None else replay[0] - generated,
        ),
    }
    models[run.role]['allocation'] = _allocation_summary(run, config, samples, models[run.role], replay)
    records = summary.sft_records(samples, questions, run.name)
    summary.write_sft(run_dir, run.directory, records, {
        'kind': 'all_correct', 'source_model': run.name, 'role': run.role,
        'samples_per_problem': run.samples, 'distinct': 'one per distinct solution per problem',
        'allocation': {k: config[k] for k in ('allocation', 'stop_after_correct', 'round_samples')}
        if config.get('allocation') == 'adaptive' else 'uniform',
    })
    models[run.role]['sft_examples'] = len(records)
  result = {
      'plan': dataclasses.asdict(plan),
      'dataset': config['dataset'],
      'split': config['split'],
      'problems': len(problems),
      'models': models,
  }
  summary.add_analyses(result, all_samples, problems, plan.ratio, seed=config['seed'])
  result['grader_version'] = grader_version
  rundir.write_json_atomic(run_dir / 'metrics.json', result)
  summary.write_card(run_dir)
  return result


def _adaptive_replay(run: ModelRun, config: dict, samples: list[dict], prefix_tokens: int,
                     own_tokens: list[int]) -> tuple[int, float, int]:
  """(tokens spent, the uniform budget in tokens, rounds) of an adaptive run, replayed host by host
  from its samples as it was drawn (the prefix once, each round's problems again)."""
  hosts, spent, budget_tokens, rounds = jax.process_count(), 0, 0.0, 0
  for host in range(hosts):
    mine = list(range(host, len(own_tokens), hosts))
    replay = allocation.next_round(
        [s for s in samples if s['problem_index'] % hosts == host], problems=mine,
        prompt_tokens={j: own_tokens[j] for j in mine}, prefix_tokens=prefix_tokens, uniform_samples=run.samples,
        round_samples=config['round_samples'], stop_after_correct=config['stop_after_correct'],
        max_new_tokens=config['max_new_tokens'])
    spent, budget_tokens, rounds = spent + replay.spent_tokens, budget_tokens + replay.budget_tokens, replay.index
  return spent, budget_tokens, rounds


def _allocation_summary(
    run: ModelRun, config: dict, samples: list[dict], metrics: dict, replay: tuple[int, float, int] | None
) -> dict:
  """How a model's samples were allocated, and what they bought per FLOP: the share of problems
  with a correct sample and the distinct correct solutions per problem, at the FLOPs spent (an
  adaptive run's `replay` adds the uniform budget it was held to, and its rounds)."""
  kind = config.get('allocation', 'uniform')
  if not samples:
    return {'kind': kind}
  per_problem = summary.distinct_correct(samples)
  solved, distinct = sum(n > 0 for n in per_problem.values()), sum(per_problem.values())
  counts = [len(v) for v in summary.by_problem(samples).values()]
  out = {'kind': kind, 'problems': len(counts), 'coverage': solved / len(counts),
         'distinct_correct_per_problem': distinct / len(counts),
         'samples_per_problem': {'min': min(counts), 'mean': sum(counts) / len(counts), 'max': max(counts)}}
  if replay is not None:
    _, budget_tokens, rounds = replay
    out.update(stop_after_correct=config['stop_after_correct'], round_samples=config['round_samples'],
               rounds=rounds, uniform_budget_flops=budget.flops(run.params, budget_tokens))
  out['flops'] = metrics['flops']['generated'] + metrics['flops']['prompt_computed']
  return out


def print_summary(config: dict, result: dict, note: str, run_dir: pathlib.Path, seconds: float) -> None:
  plan = result['plan']
  print(f"\nRan {result['problems']} {config['dataset']} {config['split']} problems "
        f"({plan['match']}-matched, budget {config['budget']}): {note}")
  print(f"{'model':28s} {'samples/pb':>10s} {'cov@1 [95% interval]':>22s} {'cov@max [95% interval]':>24s} "
        f"{'div@max':>8s} {'gen tokens':>11s} {'TFLOPs':>8s}")
  for role, m in result['models'].items():
    if not m.get('samples'):
      continue
    n = m['samples_per_problem']
    tflops = (m['flops']['generated'] + m['flops']['prompt_computed']) / 1e12
    cov = m['intervals']['coverage_at_k']
    print(f"{role + ' ' + m['name']:28s} {n:>10d} {analysis.format_interval(cov['1']):>22s} "
          f"{analysis.format_interval(cov[str(n)]):>24s} {m['diversity_at_k'][n]:>8.3f} "
          f"{m['tokens']['generated']:>11d} {tflops:>8.2f}")
  for row in result.get('matched', []):
    print(f"  matched: WC@{row['wc_k']} coverage {analysis.format_interval(row['wc_coverage_interval'])} vs SE@{row['se_k']} "
          f"{analysis.format_interval(row['se_coverage_interval'])}; WC - SE {analysis.format_interval(row['coverage_difference'])}")
  for level, rows in result.get('matched_by_level', {}).items():
    if rows:
      row = rows[-1]
      print(f"  level {level} ({row['problems']} problems): WC@{row['wc_k']} - SE@{row['se_k']} coverage "
            f"{analysis.format_interval(row['coverage_difference'])}")
  if 'solved_by' in result:
    solved = result['solved_by']
    counts = ', '.join(f"{name.replace('_', ' ')} {count}" for name, count in solved['counts'].items())
    print(f"  solved at WC@{solved['wc_k']} vs SE@{solved['se_k']}: {counts} (of {solved['problems']})")
  print(f'Files in {run_dir} ({seconds / 60:.1f} min). Report: python -m wcse_jax.report {run_dir}')
  if config['name'] == 'local':
    print('This was the small local run. The full experiment samples Gemma2-9B vs Gemma2-27B on '
          'all MATH train problems: python -m wcse_jax.sample '
          '--config=configs/sample.py:paper_math --budget=high (on TPU or GPU; see README).')


def main(argv: list[str]) -> None:
  del argv
  start = time.monotonic()
  config = settings()
  plan, runs, note = plan_runs(config)
  problems = load_problems(config['dataset'], config['split'], source=config['data_source'])
  problems = problems.problems[: config['limit'] or None]
  run_dir = rundir.run_path(config['output_dir'])
  stored = {k: v for k, v in config.items() if k != 'output_dir'}  # a run may be moved
  # Where the numbers are computed changes them: a run resumes on the backend and dtype it began on.
  backend, dtype = jax.default_backend(), jnp.dtype(weights_dtype(config)).name
  rundir.check_or_write_config(
      run_dir, {**stored, 'plan': dataclasses.asdict(plan), 'backend': backend, 'dtype': dtype},
      has_work=rundir.has_samples(run_dir), resumable=rundir.resumable_keys(backend, dtype),
      write=jax.process_index() == 0,
  )
  print(f"{plan.describe()}; {len(problems)} problems -> {run_dir}", file=sys.stderr)
  lines = [sample_model(run, config, problems, run_dir) for run in runs]
  lines_by_host = [lines]
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    # Every host's shard line counts, which also waits for every host to finish.
    lines_by_host = multihost_utils.process_allgather(np.asarray(lines, np.int32)).tolist()
  if jax.process_index() == 0:
    samples = read_complete(config, runs, problems, run_dir, lines_by_host)
    result = summarize(config, plan, runs, problems, run_dir, samples)
    print_summary(config, result, note, run_dir, time.monotonic() - start)


if __name__ == '__main__':
  cli.run(main, multihost=True)
