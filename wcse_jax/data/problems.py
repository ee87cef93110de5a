r"""GSM8K, MATH and MATH-500 problems, from the copies bundled here (the offline default),
a local JSONL file, or the Hugging Face hub / TFDS when asked for and reachable.

    problems = load_problems('math', 'test')                  # 5,000, bundled
    problems[0]   # Problem(id='test/algebra/1.json', dataset='math', question='How many vertical
                  #   asymptotes does ...', answer='2', solution='The denominator ... $\boxed{2}$ ...',
                  #   level=3, subject='Algebra')
    load_problems('gsm8k', 'train')                           # 7,473: ids 'gsm8k/train/0', ...
    load_problems('math500', 'test', source='hf')             # HuggingFaceH4/MATH-500
    load_problems('math', 'test', source='my/math.jsonl', on_error='skip').skipped

  name      splits        bundled file               hub (source='hf'; source='tfds' goes through
                                                           TFDS's 'huggingface:' namespace)
  gsm8k     train, test   gsm8k/{split}.jsonl        openai/gsm8k, config main
  math      train, test   math/math_{split}.jsonl    EleutherAI/hendrycks_math, its 7 subject configs
  math500   test          math/math500_test.jsonl    HuggingFaceH4/MATH-500

Gold answers: GSM8K, the number after "####" with thousands commas removed
("#### 1,080" -> "1080"); MATH, the `answer` field when present, else the
last \boxed{} of the solution (the hub's hendrycks_math has no `answer`).
Two MATH train problems, train/number_theory/7115.json and 7117.json ("the
answer is $\boxed{}$"), have an empty gold answer, as in the original; they are
kept so the split has its official 7,500, and no answer grades correct against them.
Ids: MATH's `unique_id` ("test/algebra/1.json") when the record has one,
otherwise "{name}/{split}/{index}" with the record's 0-based line (or row)
index ("gsm8k/test/0"); ids of hub rows therefore differ from bundled ids for MATH.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

from wcse_jax.data import extraction, prompts
from wcse_jax.data.jsonl import DataError, JsonlReader, OnError


@dataclasses.dataclass(frozen=True)
class Problem:
  """One problem with its gold answer; `dataset` ('math' or 'gsm8k') names the answer rules."""

  id: str
  dataset: str
  question: str
  answer: str
  solution: str  # the reference solution; GSM8K calculator notes <<48/2=24>> removed
  level: int | None = None  # MATH difficulty 1-5 (None for GSM8K and MATH's two 'Level ?')
  subject: str | None = None  # MATH subject, e.g. 'Counting & Probability'


@dataclasses.dataclass(frozen=True)
class ProblemSet:
  """The problems of one split, in file order, and the lines skipped on the way (with why)."""

  name: str
  split: str
  source: str
  problems: tuple[Problem, ...]
  skipped: tuple[str, ...] = ()

  def __len__(self) -> int:
    return len(self.problems)

  def __iter__(self) -> Iterator[Problem]:
    return iter(self.problems)

  def __getitem__(self, index: int) -> Problem:
    return self.problems[index]


@dataclasses.dataclass(frozen=True)
class _Spec:
  bundled: dict[str, str]  # split -> path under bundled/
  hub_repo: str
  hub_configs: tuple[str | None, ...]


_SPECS = {
    'gsm8k': _Spec({'train': 'gsm8k/train.jsonl', 'test': 'gsm8k/test.jsonl'}, 'openai/gsm8k', ('main',)),
    'math': _Spec(
        {'train': 'math/math_train.jsonl', 'test': 'math/math_test.jsonl'},
        'EleutherAI/hendrycks_math',
        ('algebra', 'counting_and_probability', 'geometry', 'intermediate_algebra', 'number_theory',
         'prealgebra', 'precalculus'),
    ),
    'math500': _Spec({'test': 'math/math500_test.jsonl'}, 'HuggingFaceH4/MATH-500', (None,)),
}

_CALCULATOR_NOTE = re.compile(r'<<[^<>]*>>')


def _gsm8k_problem(record: dict, split: str, index: int) -> Problem:
  question, solution = record['question'], record['answer']
  if not isinstance(question, str) or not isinstance(solution, str):
    raise ValueError("'question' and 'answer' must be strings")
  if '####' not in solution:
    raise ValueError("the 'answer' field has no '#### <number>' line")
  answer = solution.rsplit('####', 1)[1].strip().replace(',', '')
  if not answer:
    raise ValueError("nothing after '####' in the 'answer' field")
  problem_id = str(record.get('id', f'gsm8k/{split}/{index}'))
  return Problem(problem_id, 'gsm8k', question, answer, _CALCULATOR_NOTE.sub('', solution))


def _level(value) -> int | None:
  """'Level 3' -> 3, 3 -> 3, 'Level ?' -> None."""
  match = re.fullmatch(r'(?:Level )?([1-5])', str(value).strip())
  return int(match.group(1)) if match else None


def _math_problem(record: dict, name: str, split: str, index: int) -> Problem:
  # A user's own MATH-format file may give just the answer; MATH's own gives the solution.
  question, solution = record['problem'], record.get('solution', '')
  if not isinstance(question, str) or not isinstance(solution, str):
    raise ValueError("'problem' and 'solution' must be strings")
  answer = record.get('answer')
  if answer is None:
    answer = extraction.last_boxed(solution)
  if answer is None:
    raise ValueError(r"no gold answer: no 'answer' field and no \boxed{} in a 'solution' field")
  if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
    raise ValueError("'answer' must be a string or a number")
  return Problem(
      id=str(record.get('unique_id', f'{name}/{split}/{index}')),
      dataset='math',
      question=question,
      answer=str(answer).strip(),
      solution=solution,
      level=_level(record.get('level')),
      subject=record.get('subject') or record.get('type'),
  )


def problem_from_record(record: dict, name: str, split: str, index: int) -> Problem:
  """A Problem from one GSM8K-style (question, answer) or MATH-style (problem, solution) record.

  Raises ValueError saying which field is missing or wrong.
  """
  try:
    if prompts.answer_family(name) == 'gsm8k':
      return _gsm8k_problem(record, split, index)
    return _math_problem(record, name, split, index)
  except KeyError as e:
    raise ValueError(f'missing field {e}') from None


def _spec(name: str, split: str) -> _Spec:
  if name not in _SPECS:
    raise DataError(f'unknown dataset {name!r}; expected one of {sorted(_SPECS)}')
  if split not in _SPECS[name].bundled:
    raise DataError(f'{name} has no split {split!r}; expected one of {sorted(_SPECS[name].bundled)}')
  return _SPECS[name]


def bundled_path(name: str, split: str) -> str:
  """Path of the bundled JSONL copy of `name`/`split`."""
  files = importlib.resources.files('wcse_jax.data') / 'bundled' / _spec(name, split).bundled[split]
  return os.fspath(files)


def _read_jsonl(path: str, name: str, split: str, on_error: OnError) -> tuple[list[Problem], list[str]]:
  reader = JsonlReader(path, on_error=on_error)
  problems = []
  for line_number, record in reader:
    try:
      problems.append(problem_from_record(record, name, split, line_number - 1))
    except ValueError as e:
      reader.reject(line_number, str(e))
  return problems, reader.skipped


_TRUE = ('1', 'on', 'yes', 'true')


def _hub_offline() -> bool:
  return any(os.environ.get(v, '').strip().lower() in _TRUE for v in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE'))


def _hub_unreachable_error(repo: str, split: str, why: str) -> DataError:
  return DataError(
      f"cannot load {repo} ({split}) from the Hugging Face hub: {why}; use source='bundled' "
      "(the copy shipped with wcse_jax) or a local JSONL path"
  )


def _check_hub_reachable(repo: str, split: str) -> None:
  """Fails in seconds, not after the hub client's retries, when the hub cannot be reached."""
  if _hub_offline():
    return  # offline mode: the datasets library reads its local cache or fails at once
  endpoint = os.environ.get('HF_ENDPOINT', 'https://huggingface.co')
  try:
    urllib.request.urlopen(urllib.request.Request(endpoint, method='HEAD'), timeout=5).close()
  except urllib.error.HTTPError:
    return  # the server answered
  except (OSError, ValueError) as e:
    raise _hub_unreachable_error(repo, split, f'{endpoint} is unreachable ({getattr(e, "reason", e)})') from None


def _hub_rows(spec: _Spec, split: str) -> Iterator[dict]:
  _check_hub_reachable(spec.hub_repo, split)
  import datasets  # pylint: disable=g-import-not-at-top

  for config in spec.hub_configs:
    try:
      rows = datasets.load_dataset(spec.hub_repo, config, split=split)
    except Exception as e:  # the hub client raises many types; all mean "not loaded"
      why = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
      raise _hub_unreachable_error(spec.hub_repo, split, why) from None
    yield from rows


def _tfds_name(repo: str, config: str | None) -> str:
  """TFDS's name for a hub dataset: 'openai/gsm8k', 'main' -> 'huggingface:openai__gsm8k/main'."""
  name = 'huggingface:' + re.sub(r'[^a-z0-9_]', '_', repo.lower().replace('/', '__'))
  return f'{name}/{config}' if config else name


def _tfds_rows(spec: _Spec, split: str) -> Iterator[dict]:
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError("source='tfds' needs tensorflow-datasets: pip install 'wcse_jax[tfds]'") from None
  _check_hub_reachable(spec.hub_repo, split)
  for config in spec.hub_configs:
    try:
      rows = tfds.as_numpy(tfds.load(_tfds_name(spec.hub_repo, config), split=split))
    except Exception as e:  # pylint: disable=broad-except
      raise _hub_unreachable_error(spec.hub_repo, split, f'TFDS: {type(e).__name__}') from None
    for row in rows:
      yield {k: v.decode('utf-8') if isinstance(v, bytes) else v for k, v in row.items()}


def load_problems(
    name: str, split: str = 'test', *, source: str = 'bundled', on_error: OnError = 'raise'
) -> ProblemSet:
  """Loads `name` ('gsm8k', 'math', 'math500') `split` from `source`.

  `source`: 'bundled' (default, offline), 'hf', 'tfds', or a path to a JSONL file
  in the dataset's own format. A bad record raises DataError naming file and line,
  or with on_error='skip' is left out and listed in `.skipped`.
  """
  spec = _spec(name, split)
  if on_error not in ('raise', 'skip'):
    raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
  if source in ('hf', 'tfds'):
    rows = _hub_rows(spec, split) if source == 'hf' else _tfds_rows(spec, split)
    problems, skipped = [], []
    for index, row in enumerate(rows):
      try:
        problems.append(problem_from_record(dict(row), name, split, index))
      except ValueError as e:
        if on_error == 'raise':
          raise DataError(f'{spec.hub_repo} {split} row {index}: {e}') from None
        skipped.append(f'{spec.hub_repo} {split} row {index}: {e}')
    return ProblemSet(name, split, source, tuple(problems), tuple(skipped))
  path = bundled_path(name, split) if source == 'bundled' else source
  problems, skipped = _read_jsonl(path, name, split, on_error)
  return ProblemSet(name, split, source, tuple(problems), tuple(skipped))
