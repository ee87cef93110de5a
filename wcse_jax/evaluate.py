r"""python -m wcse_jax.evaluate: greedy pass@1, and maj@k, of a model on MATH-500, MATH or GSM8K.

    python -m wcse_jax.evaluate --model=gemma3-270m --dataset=gsm8k --limit=20
    python -m wcse_jax.evaluate --checkpoint=runs/paper_math-math-high/finetune/wc-wc-high/best \
        --dataset=math500
    python -m wcse_jax.evaluate --model=google/gemma-2-9b --dataset=math500 --maj_k=8 \
        --output=runs/paper/eval/gemma2-9b.json

pass@1 decodes one greedy solution per problem and grades its final answer.
With --maj_k=K it also draws K solutions per problem at --temperature and
grades the answer most of them give (`majority_vote`); MATH answers that are
mathematically equal vote together (`equivalence_classes`).

Prompts (--prompt=auto): base models (presets, GGUF files, transformers
directories, hub ids) get the few-shot prefix of the sampling run (Minerva
4-shot for MATH, 8-shot chain of thought for GSM8K); our own Orbax checkpoints
were finetuned on zero-shot pairs (`data.training_pair`), so they get that
format. --prompt=few_shot or zero_shot forces one.

Writes (default OUTPUT: runs/<run>/eval/<tag>-<dataset>.json for a model finetuned
on a sampling run's data, runs/eval/<model>-<dataset>.json otherwise)

    OUTPUT.json    pass_at_1, maj_at_k, counts, model, dataset, split, prompt, settings
    OUTPUT.jsonl   one line per problem: id, gold, greedy text, extracted answer,
                   correct, and the vote (each sample's answer, the winning one, its
                   count, correct)

The finetuning run validates with `evaluate` on the model it holds (no reload):

    result = evaluate(loaded, problems, prompt=zero_shot_prompt('gsm8k'), max_new_tokens=256)
    result.pass_at_1    # 0.35
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import pathlib
import sys
import time
from collections.abc import Sequence

import jax
from absl import flags
from tqdm import tqdm

from wcse_jax import cli, metrics, parallel, rundir
from wcse_jax.checkpoints import CheckpointError, LoadedModel, config_of, load_model, orbax_io, resolve
from wcse_jax.data import (
    GradeResult, Grader, Problem, PromptFormat, answer_family, few_shot_prompt, load_problems,
    zero_shot_prompt,
)
from wcse_jax.data import equivalence
from wcse_jax.model import count_params
from wcse_jax.sampling import Completion, SamplingParams, Sampler, context_length, sampling_layout

PROMPT_KINDS = ('few_shot', 'zero_shot')
# Enough for nearly every solution: GSM8K ones take about 100 tokens, MATH ones up to a few hundred.
DEFAULT_MAX_NEW_TOKENS = {'gsm8k': 256, 'math': 512}


@dataclasses.dataclass(frozen=True)
class Vote:
  """maj@k for one problem: every sample's extracted answer and the one most of them give."""

  answer: str | None  # as the first sample that gave it wrote it; None if no sample had one
  count: int  # samples that gave it (up to equivalence, see `vote_key`)
  correct: bool
  answers: tuple[str | None, ...]  # in sample order; None where no answer was found


@dataclasses.dataclass(frozen=True)
class ProblemResult:
  """One problem's greedy solution, graded, and its vote (None without maj@k)."""

  index: int
  id: str
  gold: str
  text: str
  num_tokens: int
  finish_reason: str
  extracted: str | None
  extracted_by: str
  correct: bool
  grade_reason: str
  vote: Vote | None
  level: int | None = None  # MATH difficulty, where the problem file gives one
  subject: str | None = None


@dataclasses.dataclass(frozen=True)
class EvalResult:
  """Per-problem results and the scores over them."""

  problems: tuple[ProblemResult, ...]
  maj_k: int  # samples per vote; 0: no vote

  @property
  def pass_at_1(self) -> float:
    return sum(p.correct for p in self.problems) / len(self.problems)

  @property
  def maj_at_k(self) -> float | None:
    if not self.maj_k:
      return None
    return sum(p.vote.correct for p in self.problems) / len(self.problems)

  def metrics(self) -> dict:
    """{'pass_at_1': 0.35, 'maj_at_k': {'8': 0.4}} (maj_at_k keyed like metrics.json's coverage_at_k)."""
    scores = {'pass_at_1': self.pass_at_1}
    if self.maj_k:
      scores['maj_at_k'] = {str(self.maj_k): self.maj_at_k}
    return scores

  def breakdown(self) -> dict:
    """pass@1 (and maj@k) per level and per subject, where the problems have them, each
    [mean, low, high] with a 95% Wilson interval: {'by_level': {'1': {...}}, 'by_subject': {...}}."""
    out = {}
    for key, field in (('by_level', 'level'), ('by_subject', 'subject')):
      groups = collections.defaultdict(list)
      for p in self.problems:
        if getattr(p, field) is not None:
          groups[str(getattr(p, field))].append(p)
      if groups:
        out[key] = {name: _scores(members, self.maj_k) for name, members in sorted(groups.items())}
    return out

  def counts(self) -> dict:
    """Problems, correct ones, and how the greedy solutions ended (and the votes)."""
    problems = self.problems
    counts = {
        'problems': len(problems),
        'correct': sum(p.correct for p in problems),
        'no_answer': sum(p.extracted is None for p in problems),
        # GSM8K answers read as the last number, with no "The answer is": often a restated number.
        'fallback_answers': sum(p.extracted_by == 'last_number' for p in problems),
        'correct_by_fallback': sum(p.correct and p.extracted_by == 'last_number' for p in problems),
        'finish_reasons': dict(sorted(collections.Counter(p.finish_reason for p in problems).items())),
        'generated_tokens': sum(p.num_tokens for p in problems),
    }
    if self.maj_k:
      counts['maj_correct'] = sum(p.vote.correct for p in problems)
      counts['maj_no_answer'] = sum(p.vote.answer is None for p in problems)
    return counts


def _scores(problems: Sequence[ProblemResult], maj_k: int) -> dict:
  n = len(problems)

  def rate(correct: int) -> list[float]:
    low, high = metrics.wilson_interval(correct, n)
    return [round(correct / n, 4), round(low, 4), round(high, 4)]

  scores = {'problems': n, 'pass_at_1': rate(sum(p.correct for p in problems))}
  if maj_k:
    scores['maj_at_k'] = {str(maj_k): rate(sum(p.vote.correct for p in problems))}
  return scores


def evaluate(
    loaded: LoadedModel,
    problems: Sequence[Problem],
    *,
    prompt: PromptFormat,
    max_new_tokens: int,
    maj_k: int = 0,
    temperature: float = 0.7,
    seed: int = 0,
    num_slots: int = 32,
    progress: bool = False,
) -> EvalResult:
  """Greedy pass@1 of `loaded` on `problems` and, with `maj_k` > 0, maj@k at `temperature`.

      result = evaluate(load_model('gemma3-270m'), load_problems('gsm8k').problems[:20],
                        prompt=few_shot_prompt('gsm8k'), max_new_tokens=256, maj_k=4)
      result.pass_at_1, result.maj_at_k     # (0.05, 0.0): 270M is weak at GSM8K
      result.problems[2]                    # ProblemResult(id='gsm8k/test/2', gold='70000',
                                            #   text=' ... = 150,000.  The answer is 150,000.\\n\\n',
                                            #   extracted='150,000', correct=False, ...,
                                            #   vote=Vote(answer='100,000', count=2, correct=False,
                                            #             answers=('40,000', '100,000', '100,000', '20,000')))

  Samples the model as it is (its params may be a trainer's current ones)
  and grades by the problems' answer rules. `num_slots` bounds the decode
  batch (fewer are used when there is less work).
  """
  if not problems:
    raise ValueError('evaluate needs at least one problem.')
  if maj_k < 0 or (maj_k and temperature <= 0):
    raise ValueError(f'maj@k needs maj_k >= 1 and temperature > 0, not {maj_k} and {temperature}.')
  questions = [prompt.format_question(p.question) for p in problems]
  data_axis = loaded.mesh.shape[parallel.DATA]
  work = len(problems) * max(1, maj_k)
  sampler = Sampler(
      loaded,
      max_len=context_length(loaded.tokenizer, loaded.config, prompt.prefix, questions, max_new_tokens),
      num_slots=min(num_slots, -(-work // data_axis) * data_axis),  # a multiple of the data axis
  )
  draw = functools.partial(_draw, sampler, prompt.prefix, questions, seed=seed, progress=progress)
  greedy = draw(
      num_samples=1,
      params=SamplingParams(temperature=0, max_new_tokens=max_new_tokens, stop_strings=prompt.stop),
  )
  voting = None
  if maj_k:
    voting = draw(
        num_samples=maj_k,
        params=SamplingParams(
            temperature=temperature, max_new_tokens=max_new_tokens, stop_strings=prompt.stop
        ),
    )
  with Grader(problems[0].dataset) as grader:
    return score(problems, [g[0] for g in greedy], voting, grader)


def _draw(
    sampler: Sampler, prefix: str, questions: list[str], *, num_samples: int,
    params: SamplingParams, seed: int, progress: bool,
) -> list[list[Completion]]:
  """drawn[j][i]: sample i of problem j (the sampler yields them in any order)."""
  drawn = [[None] * num_samples for _ in questions]
  what = 'greedy' if params.temperature == 0 else f'{num_samples} samples at T={params.temperature}'
  with tqdm(total=len(questions) * num_samples, desc=what, unit='sample', disable=not progress) as bar:
    for c in sampler.sample(prefix, questions, num_samples=num_samples, params=params, seed=seed):
      drawn[c.problem][c.sample] = c
      bar.update()
  return drawn


def score(
    problems: Sequence[Problem],
    greedy: Sequence[Completion],
    voting: Sequence[Sequence[Completion]] | None,
    grader: Grader,
) -> EvalResult:
  """Grades problem j's greedy completion `greedy[j]` and votes over `voting[j]` (None: no maj@k)."""
  graded = grader.grade_many([(p.answer, c.text) for p, c in zip(problems, greedy)])
  votes = [None] * len(problems)
  if voting is not None:
    pairs = [(p.answer, c.text) for p, samples in zip(problems, voting) for c in samples]
    results = iter(grader.grade_many(pairs))
    voting_grades = [[next(results) for _ in samples] for samples in voting]
    classes = equivalence_classes(voting_grades, grader)
    votes = [vote(g, grader.dataset, classes=c) for g, c in zip(voting_grades, classes)]
  return EvalResult(
      problems=tuple(
          ProblemResult(
              index=j, id=p.id, gold=p.answer, text=c.text, num_tokens=c.num_tokens,
              finish_reason=c.finish_reason, extracted=r.extracted, extracted_by=r.extracted_by,
              correct=r.correct, grade_reason=r.reason, vote=votes[j], level=p.level, subject=p.subject,
          )
          for j, (p, c, r) in enumerate(zip(problems, greedy, graded))
      ),
      maj_k=len(voting[0]) if voting else 0,
  )


def vote(grades: Sequence[GradeResult], dataset: str, *, classes: dict | None = None) -> Vote:
  """The majority answer of one problem's graded samples; correct if its first sample is.

  Samples in one group give equivalent answers (`vote_key`, merged by `classes`),
  which grade alike, so the first sample's grade is the group's.
  """
  answers = tuple(g.extracted for g in grades)
  winner = majority_vote(answers, dataset, classes=classes)
  if winner is None:
    return Vote(None, 0, False, answers)
  first, count = winner
  return Vote(answers[first], count, grades[first].correct, answers)


def majority_vote(
    answers: Sequence[str | None], dataset: str, *, classes: dict | None = None
) -> tuple[int, int] | None:
  """(first sample of the most common answer, how many gave it); None if no sample has one.

  Answers count as one when their `vote_key`s are equal or `classes` maps the
  keys to one class. Ties go to the answer given first. For GSM8K:

      answers   '18'   '17'   '18.0'   None   '17'   '$18'
      key       18     17     18       -      17     18
      -> (0, 3): 18, first given by sample 0 (with one '$18' fewer, 18 and 17
         tie 2-2 and 18 still wins: sample 0 came before sample 1)
  """
  classes = classes or {}
  groups: dict[object, list[int]] = {}
  for i, answer in enumerate(answers):
    key = None if answer is None else vote_key(answer, dataset)
    if key is not None:
      groups.setdefault(classes.get(key, key), []).append(i)
  if not groups:
    return None
  members = max(groups.values(), key=lambda m: (len(m), -m[0]))
  return members[0], len(members)


def vote_key(answer: str, dataset: str):
  r"""Answers with equal keys are the same vote: GSM8K, the exact number ('18', '18.0',
  '$18' -> Decimal 18); MATH, the grader's normalised answer (' $5,\!525$. ' -> '5525'),
  which `equivalence_classes` then merges by mathematical equivalence.
  """
  if answer_family(dataset) == 'gsm8k':
    return equivalence.gsm8k_number(answer)  # Decimals: 18 == 18.0, and they hash alike
  return equivalence.normalise_math_answer(answer) or None


# Distinct wrong answers of one problem compared pairwise, most given first:
# 12 -> at most 66 comparisons a problem.
MAX_COMPARED_ANSWERS = 12


def equivalence_classes(voting_grades: Sequence[Sequence[GradeResult]], grader: Grader) -> list[dict]:
  r"""Per problem, a map from MATH vote keys to classes of equivalent answers
  ('\frac{1}{2}' and '0.5' vote together); empty maps for GSM8K, whose keys are exact.

  Answers graded correct all equal the gold, so they form one class without
  further checks. Among the wrong ones, the MAX_COMPARED_ANSWERS most given
  are compared pairwise with the grader (math-verify, under its time limit),
  all problems' pairs in one batch, and merged where equivalent.
  """
  if grader.dataset == 'gsm8k':
    return [{} for _ in voting_grades]
  candidates, pairs = [], []
  for grades in voting_grades:
    right, wrong = set(), collections.Counter()
    for g in grades:
      key = None if g.extracted is None else vote_key(g.extracted, grader.dataset)
      if key is not None and g.correct:
        right.add(key)
      elif key is not None:
        wrong[key] += 1
    compared = [key for key, _ in wrong.most_common(MAX_COMPARED_ANSWERS)]
    candidates.append((right, compared))
    pairs += [(a, b) for i, a in enumerate(compared) for b in compared[i + 1:]]
  same = iter(r.correct for r in grader.grade_many(pairs, extract=False))
  classes = []
  for right, compared in candidates:
    parent = {key: key for key in compared}  # union-find over the compared answers
    for i, a in enumerate(compared):
      for b in compared[i + 1:]:
        if next(same):
          parent[_root(parent, b)] = _root(parent, a)
    wrong_classes = {key: ('wrong', _root(parent, key)) for key in compared}
    classes.append({**wrong_classes, **{key: ('right',) for key in right}})
  return classes


def _root(parent: dict, key):
  while parent[key] != key:
    key = parent[key]
  return key


def auto_prompt_kind(model_format: str) -> str:
  """For a model's format (`checkpoints.resolve`): 'zero_shot' for our own checkpoints
  ('orbax', finetuned on that format), 'few_shot' for base models ('gguf', 'hf', 'kaggle')."""
  return 'zero_shot' if model_format == 'orbax' else 'few_shot'


def prompt_format(kind: str, dataset: str) -> PromptFormat:
  if kind not in PROMPT_KINDS:
    raise ValueError(f'prompt kind must be one of {PROMPT_KINDS}, not {kind!r}.')
  return few_shot_prompt(dataset) if kind == 'few_shot' else zero_shot_prompt(dataset)


def trained_dataset(model: str) -> str:
  """The evaluation set of a checkpoint finetuned by `wcse_jax.finetune`: the dataset of
  its finetuning config (`<out>/config.json` beside `<out>/best`), MATH as MATH-500."""
  path = pathlib.Path(model.rstrip('/'))
  config = path.parent / 'config.json'
  try:
    if not orbax_io.is_our_checkpoint(path):
      raise ValueError('not a finetuned checkpoint')
    dataset = json.loads(config.read_text())['dataset']
  except (OSError, ValueError, KeyError, TypeError):
    raise cli.SettingError(
        f'{model} records no finetuning dataset ({config} has none): pass --dataset=math500, '
        'math or gsm8k.'
    ) from None
  return 'math500' if dataset == 'math' else dataset


def model_tag(model: str) -> str:
  """A model's name in file names: 'gemma3-270m' -> 'gemma3-270m', '/m/x.gguf' -> 'x',
  'google/gemma-2-9b' -> 'gemma-2-9b', 'runs/r/finetune/wc-high/best' -> 'wc-high-best'."""
  path = pathlib.Path(model.rstrip('/'))
  name = path.name.removesuffix('.gguf')
  return f'{path.parent.name}-{name}' if name == 'best' and path.parent.name else name


# --- python -m wcse_jax.evaluate ---


def define_flags() -> None:
  """The command line. Defined only when run as a program: the trainer imports this
  module for `evaluate`, and its own flags (--model, --seed) would clash."""
  flags.DEFINE_string(
      'model', None, 'Preset, GGUF file, transformers directory, one of our checkpoints, or hub id.'
  )
  flags.DEFINE_string(
      'checkpoint', None, 'One of our finetuned checkpoints (runs/RUN/finetune/NAME/best), instead of --model.'
  )
  flags.DEFINE_enum(
      'dataset', None, ['math500', 'gsm8k', 'math'],
      'Problems to evaluate on (default for a finetuned checkpoint: what it was trained on, '
      'MATH-trained ones on math500).',
  )
  flags.DEFINE_string('split', 'test', 'train or test.')
  flags.DEFINE_string('data_source', 'bundled', 'bundled, hf, tfds or a JSONL path.')
  flags.DEFINE_integer('limit', 0, 'Evaluate the first N problems (0: all).', lower_bound=0)
  flags.DEFINE_enum(
      'prompt', 'auto', ['auto', *PROMPT_KINDS],
      'auto: zero-shot for our own checkpoints, few-shot for base models.',
  )
  flags.DEFINE_integer('maj_k', 0, 'Also maj@k, with this many samples per problem (0: off).', lower_bound=0)
  flags.DEFINE_float('temperature', 0.7, 'Temperature of the maj@k samples.', lower_bound=0)
  flags.DEFINE_integer(
      'max_new_tokens', None, 'Most tokens per solution (default: 256 for GSM8K, 512 for MATH).',
      lower_bound=1,
  )
  flags.DEFINE_integer('num_slots', 64, 'Samples decoded together.', lower_bound=1)
  flags.DEFINE_integer('seed', 0, 'Seed of the maj@k samples.')
  flags.DEFINE_string(
      'output', None, 'Metrics JSON (default: runs/RUN/eval/<tag>-<dataset>.json for a model '
      'finetuned in runs/RUN, else runs/eval/<model>-<dataset>.json).'
  )
  flags.mark_flags_as_mutual_exclusive(['model', 'checkpoint'], required=True)
  flags.register_multi_flags_validator(
      ['maj_k', 'temperature'], lambda f: not f['maj_k'] or f['temperature'] > 0,
      'maj@k needs --temperature > 0.',
  )


def main(argv: list[str]) -> None:
  del argv
  args = flags.FLAGS
  start = time.monotonic()
  model = args.model or args.checkpoint
  dataset = args.dataset or trained_dataset(model)
  max_new_tokens = args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[answer_family(dataset)]
  # A problem file of the user's own is named by its file name too: runs/eval/<model>-math-<file>.json.
  label = dataset if args.data_source in ('bundled', 'hf', 'tfds') else f'{dataset}-{pathlib.Path(args.data_source).stem}'
  output = pathlib.Path(args.output or rundir.eval_path(model, model_tag(model), label))

  # Load.
  problems = load_problems(dataset, args.split, source=args.data_source).problems
  problems = problems[: args.limit or None]
  model_format, location, _ = resolve(model)
  if args.checkpoint and model_format != 'orbax':
    raise CheckpointError(f'{model} is not one of our checkpoints; pass it as --model instead.')
  weight_bytes = 2 * count_params(config_of(str(location)))  # bfloat16
  mesh = parallel.make_mesh(model=parallel.fitting_model_axis(weight_bytes, jax.devices()))
  loaded = sampling_layout(load_model(model, mesh=mesh), donate=True)  # as the sampler reads it, held once
  prompt_kind = auto_prompt_kind(model_format) if args.prompt == 'auto' else args.prompt
  print(f'{model}: {len(problems)} {dataset} {args.split} problems, {prompt_kind} prompt',
        file=sys.stderr)

  # Run.
  result = evaluate(
      loaded, problems, prompt=prompt_format(prompt_kind, dataset), max_new_tokens=max_new_tokens,
      maj_k=args.maj_k, temperature=args.temperature, seed=args.seed,
      num_slots=args.num_slots, progress=True,
  )

  # Write.
  seconds = time.monotonic() - start
  records = output.with_suffix('.jsonl')
  rundir.write_lines_atomic(records, [dataclasses.asdict(p) for p in result.problems])
  rundir.write_json_atomic(output, {
      **result.metrics(),
      **result.breakdown(),
      'counts': result.counts(),
      'model': model,
      'source': loaded.source,
      'dataset': dataset,
      'split': args.split,
      'data_source': args.data_source,
      'prompt': prompt_kind,
      'settings': {
          'limit': args.limit, 'max_new_tokens': max_new_tokens, 'maj_k': args.maj_k,
          'temperature': args.temperature if args.maj_k else None, 'seed': args.seed,
          'num_slots': args.num_slots,
      },
      'records': records.name,
      'seconds': round(seconds, 1),
  })
  print_table(result, f'{model} on {dataset} {args.split}, {prompt_kind} prompt')
  print(f'Wrote {output} and {records.name} ({seconds / 60:.1f} min).')


def print_table(result: EvalResult, title: str) -> None:
  counts = result.counts()
  n = counts['problems']
  print(f'{title}: {n} problems')
  print(f"  {'pass@1':10s} {result.pass_at_1:6.3f}  ({counts['correct']}/{n}, greedy)")
  if result.maj_k:
    print(f"  {f'maj@{result.maj_k}':10s} {result.maj_at_k:6.3f}  ({counts['maj_correct']}/{n})")
  for key, groups in result.breakdown().items():
    for name, scores in groups.items():
      mean, low, high = scores['pass_at_1']
      print(f"  {key.removeprefix('by_')} {name}: pass@1 {mean:.3f} [{low:.3f}, {high:.3f}] ({scores['problems']} problems)")
  reasons = ', '.join(f'{k} {v}' for k, v in counts['finish_reasons'].items())
  print(f"  greedy: {counts['no_answer']} without an answer; ended by {reasons}; "
        f"{counts['generated_tokens'] / n:.0f} tokens each")


if __name__ == '__main__':
  define_flags()
  cli.run(main)
