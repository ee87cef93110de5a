r"""How good is a pile of samples: coverage@k, diversity@k and the false-positive rate.

    correct = [[True, False, False, True], [False, False, False, False]]   # 2 problems, n = 4
    coverage_at_k(correct, k=1)   # 0.25  = mean(2/4, 0/4)
    coverage_at_k(correct, k=2)   # 0.4167 = mean(1 - C(2,2)/C(4,2), 0) = mean(5/6, 0)

    solutions = [['So x is 2.', 'x is 3', 'x is 4', 'so  x is 2.0'], ['a', 'b', 'c', 'd']]
    diversity_at_k(solutions, correct, k=4)   # 0.5: problem 1's two correct solutions are the same
                                              # up to case, spaces and number format; problem 2 has none

coverage@k is the share of problems solved by at least one of k samples, from
n >= k samples per problem with the unbiased estimator of Chen et al. (2021):
pass@k = 1 - C(n-c, k) / C(n, k) for c correct of n, averaged over problems.

diversity@k is the number of distinct correct solutions per problem among k
samples, averaged over all problems (unsolved ones count 0). Bansal et al.
count the first k samples; this takes the exact expectation over all size-k
subsets of the n samples instead, which uses every sample and is what the
first-k count estimates: a distinct solution written m times among n is in a
random k-subset with probability 1 - C(n-m, k) / C(n, k), i.e. pass_at_k(n, m, k),
and E[#distinct] is the sum of these. "Distinct" is after `solution_key`.

The false-positive rate is the share of solutions with a correct final answer
whose reasoning is wrong. Two ways to measure it:
  * an LLM judge: `judge_false_positive_rate(candidates, generate)` shows the
    judge each problem, its gold solution and the candidate, and reads a strict
    "Verdict: valid" / "Verdict: invalid" line (`generate(prompts) -> completions`
    is any sampler; the project's own plugs in);
  * people: `export_for_labelling` writes a seeded random sample to CSV,
    someone fills in the `label` column, `false_positive_rate_from_labels` reads it.
Both report a Wilson score interval.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import math
import os
import pathlib
import random
import re
import statistics
from collections.abc import Callable, Sequence

import numpy as np

from wcse_jax.data.jsonl import DataError


def pass_at_k(n: int, c: int, k: int) -> float:
  """P(at least one of k samples drawn from n is among the c correct) = 1 - C(n-c,k)/C(n,k).

  Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the huge binomials:
  pass_at_k(4, 2, 2) = 1 - (1 - 2/3)(1 - 2/4) = 5/6.
  """
  if not 0 <= c <= n or k < 1:
    raise ValueError(f'need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}')
  if k > n:
    raise ValueError(f'k={k} is more than the n={n} samples')
  if n - c < k:
    return 1.0
  return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _check_k(sample_counts: Sequence[int], k: int) -> None:
  if k < 1:
    raise ValueError(f'k must be >= 1, got {k}')
  if not sample_counts:
    raise ValueError('no problems given')
  short = [i for i, n in enumerate(sample_counts) if n < k]
  if short:
    raise ValueError(
        f'{len(short)} problem(s) have fewer than k={k} samples (first: problem {short[0]} '
        f'with {sample_counts[short[0]]}); coverage@k and diversity@k need n >= k per problem'
    )


def coverage_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
  """Mean over problems of pass_at_k(n, c, k); `correct[p]` holds problem p's n >= k grades."""
  _check_k([len(grades) for grades in correct], k)
  return statistics.fmean(pass_at_k(len(grades), sum(map(bool, grades)), k) for grades in correct)


_LATEX_SPACE = re.compile(r'\\[,;:! ]')
_THOUSANDS = re.compile(r'(?<=\d)(?:,|\{,\}|,\\!)(?=\d{3}(?!\d))')
_TRAILING_ZEROS = re.compile(r'(\d)\.(\d*?)0+(?!\d)')
_BARE_POINT = re.compile(r'(\d)\.(?!\d)')
_WHITESPACE = re.compile(r'\s+')


def solution_key(solution: str) -> str:
  r"""What two solutions share when they count as the same for diversity@k.

  Lowercased; thousands separators removed (1,000 = 1{,}000 = 1,\!000 = 1000); trailing
  zeros after a decimal point dropped, and a bare point after a number (2.50 = 2.5,
  3.0 = 3. = 3); LaTeX spacing commands (\, \; \: \! \ ) read as spaces; runs of
  whitespace collapsed to one space and the ends stripped:
      solution_key('So  X = 2.50,\nTotal: 1,000.') == solution_key('so x = 2.5, total: 1000')
  """
  text = _THOUSANDS.sub('', solution.lower())
  text = _TRAILING_ZEROS.sub(r'\1.\2', text)
  text = _BARE_POINT.sub(r'\1', text)
  text = _LATEX_SPACE.sub(' ', text)
  return _WHITESPACE.sub(' ', text).strip()


def diversity_at_k(solutions: Sequence[Sequence[str]], correct: Sequence[Sequence[bool]], k: int) -> float:
  """Expected number of distinct correct solutions among k of each problem's n samples, averaged.

  `solutions[p][i]` is sample i of problem p and `correct[p][i]` its grade.
  """
  if len(solutions) != len(correct) or any(len(s) != len(g) for s, g in zip(solutions, correct)):
    raise ValueError('solutions and correct must have the same shape')
  _check_k([len(s) for s in solutions], k)
  per_problem = []
  for texts, grades in zip(solutions, correct):
    copies = collections.Counter(solution_key(t) for t, ok in zip(texts, grades) if ok)
    per_problem.append(sum(pass_at_k(len(texts), m, k) for m in copies.values()))
  return statistics.fmean(per_problem)


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
  """Wilson score interval for a binomial proportion: wilson_interval(5, 50) -> (0.0435, 0.2136)."""
  if total < 1 or not 0 <= successes <= total:
    raise ValueError(f'need 0 <= successes <= total and total >= 1, got {successes}/{total}')
  z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
  p = successes / total
  scale = 1 + z * z / total
  center = (p + z * z / (2 * total)) / scale
  half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / scale
  low = 0.0 if successes == 0 else center - half  # exact ends; the formula gives them up to rounding
  high = 1.0 if successes == total else center + half
  return low, high


@dataclasses.dataclass(frozen=True)
class FalsePositiveRate:
  """`invalid` of `judged` correct-answer solutions have wrong reasoning; [low, high] is the CI."""

  rate: float
  low: float
  high: float
  invalid: int
  judged: int
  confidence: float
  unparsed: int = 0  # judge replies without a clean verdict, left out of `judged`


def false_positive_rate(invalid: int, judged: int, confidence: float = 0.95, unparsed: int = 0) -> FalsePositiveRate:
  if judged < 1:
    raise ValueError('no judged solutions: the false-positive rate is undefined')
  low, high = wilson_interval(invalid, judged, confidence)
  return FalsePositiveRate(invalid / judged, low, high, invalid, judged, confidence, unparsed)


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A sampled solution whose final answer graded correct, to be checked for valid reasoning."""

  problem_id: str
  question: str
  gold_solution: str
  solution: str


def judge_template(path: str | os.PathLike | None = None) -> str:
  """The judge's prompt: a text file with {question}, {gold_solution} and {solution} in it
  (default: the bundled data/bundled/prompts/false_positive_judge.txt, which a user may copy
  and change). It must ask for a last line "Verdict: valid" or "Verdict: invalid"."""
  import importlib.resources  # pylint: disable=g-import-not-at-top

  if path is None:
    path = importlib.resources.files('wcse_jax.data') / 'bundled' / 'prompts' / 'false_positive_judge.txt'
  try:
    text = pathlib.Path(path).read_text(encoding='utf-8') if isinstance(path, (str, os.PathLike)) else path.read_text()
  except OSError as e:
    raise DataError(f'cannot read the judge prompt {path}: {e.strerror or e}') from None
  missing = [f for f in ('{question}', '{gold_solution}', '{solution}') if f not in text]
  if missing:
    raise DataError(f'the judge prompt {path} lacks {", ".join(missing)}: the judge would not see the solution.')
  return text



_VERDICT = re.compile(r'^[ \t*]*Verdict:[ \t*]*(valid|invalid)[ \t*.]*$', re.IGNORECASE | re.MULTILINE)


_PLACEHOLDER = re.compile(r'\{(question|gold_solution|solution)\}')


def judge_prompt(candidate: Candidate, template: str | None = None) -> str:
  """The judge's prompt for one candidate, from `template` (default: judge_template()).

  Only the three placeholders are filled, so a template may hold other braces (LaTeX).
  """
  template = judge_template() if template is None else template
  values = {
      'question': candidate.question.strip(),
      'gold_solution': candidate.gold_solution.strip(),
      'solution': candidate.solution.strip(),
  }
  return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def parse_verdict(reply: str) -> bool | None:
  """True for 'Verdict: valid', False for 'Verdict: invalid', on a line of its own.

  None when there is no such line or lines disagree: 'Verdict: valid or invalid',
  'verdict - valid' and 'The verdict: valid.' in prose do not count.
  """
  verdicts = {m.group(1).lower() for m in _VERDICT.finditer(reply)}
  return verdicts.pop() == 'valid' if len(verdicts) == 1 else None


@dataclasses.dataclass(frozen=True)
class JudgeReport:
  estimate: FalsePositiveRate
  verdicts: tuple[bool | None, ...]  # per candidate: reasoning valid, invalid, or no clean verdict
  replies: tuple[str, ...]


def judge_false_positive_rate(
    candidates: Sequence[Candidate],
    generate: Callable[[list[str]], list[str]],
    *,
    confidence: float = 0.95,
    template: str | None = None,
) -> JudgeReport:
  """Asks the judge `generate` about every candidate (prompted with `template`, see
  judge_template); rate = invalid / clean verdicts."""
  template = judge_template() if template is None else template
  replies = generate([judge_prompt(c, template) for c in candidates])
  if len(replies) != len(candidates):
    raise ValueError(f'generate returned {len(replies)} replies for {len(candidates)} prompts')
  verdicts = tuple(parse_verdict(r) for r in replies)
  judged = [v for v in verdicts if v is not None]
  estimate = false_positive_rate(
      judged.count(False), len(judged), confidence, unparsed=len(verdicts) - len(judged)
  )
  return JudgeReport(estimate, verdicts, tuple(replies))


LABEL_COLUMNS = ('problem_id', 'question', 'gold_solution', 'solution', 'label')
LABELS = {'valid': True, 'invalid': False}


def seeded_sample(candidates: Sequence[Candidate], size: int, seed: int) -> list[Candidate]:
  """`size` candidates (all if fewer) drawn by `seed`: the judge and the labelling
  export draw the same ones, so their rates describe the same solutions."""
  chosen = random.Random(seed).sample(range(len(candidates)), min(size, len(candidates)))
  return [candidates[i] for i in chosen]


def export_for_labelling(
    candidates: Sequence[Candidate], path: str | os.PathLike, *, sample_size: int, seed: int = 0
) -> list[Candidate]:
  """Writes a seeded random sample of `sample_size` candidates to a CSV with an empty `label`
  column, for people to fill with 'valid' or 'invalid'; returns the sample in file order."""
  sample = seeded_sample(candidates, sample_size, seed)
  with open(path, 'w', encoding='utf-8', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(LABEL_COLUMNS)
    for c in sample:
      writer.writerow([c.problem_id, c.question, c.gold_solution, c.solution, ''])
  return sample


def read_labels(path: str | os.PathLike) -> list[tuple[Candidate, bool]]:
  """The labelled CSV back: (candidate, reasoning valid?) per row; DataError on any bad row."""
  path = os.fspath(path)
  try:
    f = open(path, encoding='utf-8', newline='')
  except OSError as e:
    raise DataError(f'cannot read {path}: {e.strerror or e}') from None
  with f:
    reader = csv.DictReader(f)
    missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
      raise DataError(f'{path}: missing column(s) {missing}; expected {list(LABEL_COLUMNS)}')
    labelled = []
    for row_number, row in enumerate(reader, start=1):
      label = (row['label'] or '').strip().lower()
      if label not in LABELS:
        raise DataError(
            f"{path}: row {row_number} (line {reader.line_num}): label {row['label']!r} is not "
            "'valid' or 'invalid'"
        )
      labelled.append((Candidate(*(row[c] for c in LABEL_COLUMNS[:-1])), LABELS[label]))
  return labelled


def false_positive_rate_from_labels(path: str | os.PathLike, confidence: float = 0.95) -> FalsePositiveRate:
  valid = [ok for _, ok in read_labels(path)]
  return false_positive_rate(valid.count(False), len(valid), confidence)
