r"""Grading completions against gold answers, in bulk, safely and with a cache.

    with Grader(dataset='math', timeout_s=5.0) as grader:
      results = grader.grade_many([
          ('\frac{1}{2}', 'So $x = 0.5$.\nFinal Answer: The final answer is $0.5$. I hope it is correct.'),
          ('(0,1]', r'... the interval is $\boxed{[0,1]}$.'),
          ('7', 'I do not know.'),
      ])
    # [GradeResult(correct=True,  extracted='0.5',   reason='equivalent',     extracted_by='final_answer'),
    #  GradeResult(correct=False, extracted='[0,1]', reason='not_equivalent', extracted_by='boxed'),
    #  GradeResult(correct=False, extracted=None,    reason='no_answer',      extracted_by='none')]

    grader.grade_many([('72', '72 clips')], dataset='gsm8k', extract=False)   # answers given already
    grade_answer('18', 'She makes 9 * 2 = 18. The answer is 18.', 'gsm8k')  # one-off, no Grader

Per answer: extract (extraction.py; skipped when extract=False), refuse hostile
input unparsed (equivalence.rejection), then compare. GSM8K compares exact
decimals in this process. MATH normalises both sides (equivalence.normalise_math_answer),
calls identical strings 'exact_match', looks the answer up in the cache, and sends
the rest to equivalence.judge in worker processes (timed_pool.py) under a hard
per-answer wall-clock limit (`timeout_s`) and memory cap; an answer that runs
over is graded False with reason 'timeout'. judge compares with math-verify and
MATH's conventions, and for a completion with neither a final-answer line nor a
box extracts the answer first (math-verify's extraction over the text's end),
so `extracted` and `extracted_by` may come back from the worker. The cache is
keyed by what the worker is given (the normalised gold and answer, with the
boxes when there are several; the text's end when there is no answer yet), so
a high-budget run, where most answers repeat, pays for each distinct answer
once (one that timed out is not retried either).

Reasons: correct ones are 'exact_match', 'equivalent', 'equivalent_as_text',
'equivalent_without_percent', 'relation_as_set' (see equivalence.answers_match);
wrong ones 'not_equivalent', 'no_answer', 'bad_gold' (a GSM8K gold with no
number, an empty MATH gold), the rejections ('too_long', 'too_deep',
'null_byte', 'unbalanced_braces', 'exponent_tower', 'exponent_too_large'), and
'timeout', 'crash', 'error' from the workers. `extracted_by` names the
extraction rule (extraction.py, and 'boxes_as_set', 'answer_latex',
'answer_sentence', 'last_latex', 'last_number', 'choice_letter' from judge).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from wcse_jax.data import equivalence, extraction, prompts
from wcse_jax.data.timed_pool import TimedPool


# The grading rules' version: recorded with every SFT set and metrics.json, and raised
# whenever a change of rules can change a grade.
VERSION = 2


@dataclasses.dataclass(frozen=True)
class GradeResult:
  correct: bool
  extracted: str | None  # the final answer that was graded
  reason: str  # see the module docstring
  extracted_by: str  # extraction.Extraction.method; 'last_number' is GSM8K's fallback


class Grader:
  """Grades (gold, completion) pairs; holds worker processes, so use it as a context manager.

  `dataset` ('math', 'math500' or 'gsm8k') is the default for grade_many's own
  `dataset` argument. `workers` (default: one per CPU core, at most 8) start on
  the first MATH pair that needs them; each may use `memory_limit_mb`.
  """

  def __init__(
      self,
      dataset: str = 'math',
      *,
      timeout_s: float = 5.0,
      workers: int | None = None,
      memory_limit_mb: int = 2048,
      cache_size: int = 1_000_000,
  ):
    self.dataset = prompts.answer_family(dataset)
    self.timeout_s = timeout_s
    self.workers = workers or min(8, os.cpu_count() or 1)
    self.memory_limit_mb = memory_limit_mb
    self.cache_size = cache_size
    self._cache: dict[tuple, tuple[bool, str, str | None, str]] = {}
    self._pool: TimedPool | None = None
    self.cache_hits = 0  # MATH pairs answered by an earlier (or same-batch) identical pair
    self.verified = 0  # distinct MATH pairs sent to math-verify

  def _math_pool(self) -> TimedPool:
    if self._pool is None:
      self._pool = TimedPool(
          equivalence.judge,
          workers=self.workers,
          timeout_s=self.timeout_s,
          memory_limit_mb=self.memory_limit_mb,
          preload=('wcse_jax.data.equivalence', 'math_verify'),
      )
    return self._pool

  def _remember(self, key: tuple, verdict: tuple[bool, str, str | None, str]) -> None:
    if self.cache_size < 1:
      return
    if len(self._cache) >= self.cache_size:
      del self._cache[next(iter(self._cache))]  # the oldest entry
    self._cache[key] = verdict

  def grade_many(
      self, pairs: Iterable[tuple[str, str]], *, dataset: str | None = None, extract: bool = True
  ) -> list[GradeResult]:
    """Grades (gold, completion) pairs, or (gold, answer) pairs with extract=False; in order."""
    family = prompts.answer_family(dataset) if dataset else self.dataset
    results: list[GradeResult | None] = []
    to_verify: dict[tuple, list[int]] = {}  # worker arguments (the cache key) -> indices waiting for them
    for gold, text in pairs:
      found = (
          extraction.extract_answer(text, family) if extract
          else extraction.Extraction(text.strip() or None, 'given')
      )
      answer, method = found.answer, found.method
      if answer is not None:
        refused = equivalence.rejection(answer)
      elif found.region is None:
        refused = 'no_answer'
      else:  # prose: only null bytes are refused here; what is extracted from it is checked in judge
        refused = 'null_byte' if '\x00' in found.region else None
      if refused:
        results.append(GradeResult(False, answer, refused, method))
      elif family == 'gsm8k':
        results.append(self._grade_gsm8k(str(gold), answer, method))
      else:
        verdict = self._math_key(str(gold), found)
        if isinstance(verdict, GradeResult):
          results.append(verdict)
        elif verdict in self._cache:
          self.cache_hits += 1
          correct, reason, answer, rule = self._cache[verdict]
          results.append(GradeResult(correct, answer, reason, rule or method))
        else:
          to_verify.setdefault(verdict, []).append(len(results))
          results.append(GradeResult(False, answer, 'pending', method))
    if to_verify:
      keys = list(to_verify)
      self.verified += len(keys)
      for key, outcome in zip(keys, self._math_pool().map(keys)):
        if outcome.status == 'ok':
          verdict = tuple(outcome.value)
        else:
          verdict = (False, outcome.status, key[1] or None, '')
        self._remember(key, verdict)
        correct, reason, answer, rule = verdict
        for i in to_verify[key]:
          results[i] = dataclasses.replace(
              results[i], correct=correct, reason=reason, extracted=answer, extracted_by=rule or results[i].extracted_by)
      self.cache_hits += sum(len(v) - 1 for v in to_verify.values())
    return results

  @staticmethod
  def _math_key(gold: str, found: extraction.Extraction) -> GradeResult | tuple:
    """The worker's arguments for a MATH answer (the cache key), or its result if none are needed."""
    gold = equivalence.normalise_math_answer(gold)
    if not gold:
      return GradeResult(False, found.answer, 'bad_gold', found.method)
    if found.answer is None:  # math-verify extracts from the region, in a worker
      return (gold, '', (), 0, found.region)
    answer = equivalence.normalise_math_answer(found.answer)
    if not answer:
      return GradeResult(False, found.answer, 'no_answer', found.method)
    boxes = () if len(found.boxes) < 2 else tuple(
        equivalence.normalise_math_answer(b) for b in found.boxes if equivalence.rejection(b) is None)
    together = min(found.stated_together, len(boxes))
    if answer == gold and (together < 2 or len(set(boxes[-together:])) < 2):  # not one of several boxes stated together
      return GradeResult(True, found.answer, 'exact_match', found.method)
    if len(boxes) < 2:
      return (gold, answer, (), 0, '')
    return (gold, answer, boxes, together, '')

  @staticmethod
  def _grade_gsm8k(gold: str, answer: str, method: str) -> GradeResult:
    if equivalence.gsm8k_number(gold) is None:
      return GradeResult(False, answer, 'bad_gold', method)
    if equivalence.gsm8k_answers_match(gold, answer):
      return GradeResult(True, answer, 'equivalent', method)
    return GradeResult(False, answer, 'not_equivalent', method)

  def grade(self, gold: str, text: str, *, dataset: str | None = None, extract: bool = True) -> GradeResult:
    return self.grade_many([(gold, text)], dataset=dataset, extract=extract)[0]

  def close(self) -> None:
    if self._pool is not None:
      self._pool.close()
      self._pool = None

  def __enter__(self) -> Grader:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def grade_answer(
    gold: str, text: str, dataset: str = 'math', *, extract: bool = True, timeout_s: float = 5.0
) -> GradeResult:
  """Grades one completion (or answer, extract=False) in a one-worker Grader of its own."""
  with Grader(dataset, timeout_s=timeout_s, workers=1) as grader:
    return grader.grade(gold, text, extract=extract)
