r"""Final answers out of model completions (and out of gold solutions, by the same rules).

The completion is first cut at the earliest stop string (a model that runs on
into a made-up next "Problem:" must be graded on its own answer). Then:

MATH, in this order
    "final_answer"  the Minerva sentence, the last one in the text:
                    "Final Answer: The final answer is $\frac{1}{2}$. I hope it is correct."  ->  \frac{1}{2}
    "boxed"         the last \boxed{...} or \fbox{...}, braces matched:
                    "so $x = \boxed{\frac{1}{2}}$."  ->  \frac{1}{2}

GSM8K, whichever anchor comes last, then the fallback
    "answer_is"     "... so 5 + 4 = 9. The answer is $1,000."  ->  1,000
    "####"          "... #### 72"  ->  72
    "last_number"   FALLBACK, no anchor found: the last number in the text. Reported
                    as `method='last_number'` (`is_fallback`) so callers can count
                    or refuse answers found this way.

Every rule costs time linear in the completion's length, whatever it holds
(no regex rescans a line once per anchor), so hostile 100k-character
completions cost milliseconds.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Sequence

from wcse_jax.data import prompts


@dataclasses.dataclass(frozen=True)
class Extraction:
  """The final answer found in a completion (None if none) and the rule that found it."""

  answer: str | None
  method: str  # 'final_answer', 'boxed', 'answer_is', '####', 'last_number', 'given' or 'none'

  @property
  def is_fallback(self) -> bool:
    return self.method == 'last_number'


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
  """The text before the earliest stop string: ('a\\nProblem: b', ['Problem:']) -> 'a\\n'."""
  cut = len(text)
  for s in stop:
    if s:
      position = text.find(s, 0, cut)
      if position != -1:
        cut = position
  return text[:cut]


_MINERVA_LINE = 'Final Answer: The final answer is'
_HOPE = 'I hope it is correct'
UNESCAPED_DOLLAR = re.compile(r'(?<!\\)\$')


def _stated_final_answer(text: str) -> str | None:
  """What the last Minerva answer line states (raw), or None if there is none.

  "Final Answer: " may be missing if "I hope it is correct" follows; without
  both, "final answer is" is just prose ("our final answer is $\\boxed{5}$").
  """
  for line in reversed(text.split('\n')):
    at = line.rfind(_MINERVA_LINE)
    if at != -1:
      stated = line[at + len(_MINERVA_LINE):]
    else:
      at = max(line.rfind('The final answer is'), line.rfind('the final answer is'))
      if at == -1 or _HOPE not in line[at:]:
        continue
      stated = line[at + len('the final answer is'):]
    return stated.split(_HOPE, 1)[0]
  return None


def _strip_math_delimiters(answer: str) -> str:
  r"""'$\frac{1}{2}$.' -> '\frac{1}{2}'; also \( \) and \[ \] around the whole answer."""
  answer = answer.strip().rstrip('.').strip()
  for left, right in (('\\(', '\\)'), ('\\[', '\\]')):
    if answer.startswith(left) and answer.endswith(right):
      answer = answer[len(left):-len(right)]
  return UNESCAPED_DOLLAR.sub('', answer).strip().rstrip('.').strip()


_BRACE_OR_ESCAPE = re.compile(r'\\.|[{}]', re.DOTALL)  # \{ and \} are escaped, not groups


def last_boxed(text: str) -> str | None:
  r"""Contents of the last \boxed{...} or \fbox{...}, braces matched; None if absent or unclosed.

      last_boxed(r'$\boxed{1}$ then $\boxed{\frac{1}{2}}$')  ->  r'\frac{1}{2}'
      last_boxed(r'\boxed 5$')                                 ->  '5'   (Hendrycks' \boxed<space>)

  Escaped braces \{ \} are literal set braces, not groups: \boxed{\{1,2\}} -> \{1,2\}.
  """
  start = max(text.rfind('\\boxed'), text.rfind('\\fbox'))
  if start == -1:
    return None
  i = start + len('\\boxed' if text.startswith('\\boxed', start) else '\\fbox')
  rest = text[i:].lstrip()
  if not rest.startswith('{'):
    token = rest.split('$', 1)[0].split(maxsplit=1) if text[i:i + 1] == ' ' else []
    return token[0] if token else None
  open_at = len(text) - len(rest)
  depth = 0
  for token in _BRACE_OR_ESCAPE.finditer(text, open_at):
    if token.group() == '{':
      depth += 1
    elif token.group() == '}':
      depth -= 1
      if depth == 0:
        return text[open_at + 1:token.start()]
  return None


def extract_math_answer(completion: str, stop: Sequence[str] = prompts.MATH_STOP) -> Extraction:
  r"""MATH: the Minerva final-answer sentence, else the last \boxed{}; see the module docstring."""
  text = truncate_at_stop(completion, stop)
  stated = _stated_final_answer(text)
  if stated is not None:
    boxed = last_boxed(stated)
    answer = boxed if boxed is not None else _strip_math_delimiters(stated)
    if answer:
      return Extraction(answer.strip(), 'final_answer')
  boxed = last_boxed(text)
  if boxed is not None and boxed.strip():
    return Extraction(boxed.strip(), 'boxed')
  return Extraction(None, 'none')


# A number as people write it: -3, 1,000, $18.50, .5 (no exponents: 1e999 is not an answer).
_NUMBER = re.compile(r'-?\$?\s?-?(?:\d(?:[\d,]*\d)?(?:\.\d+)?|\.\d+)')
_GSM8K_ANCHOR = re.compile(r'(?i:the (?:final )?answer is)|####')


def _as_written(number: re.Match) -> str:
  return re.sub(r'[\s$]', '', number.group())


def first_number(text: str) -> str | None:
  """'costs $1,080.50 in all' -> '1,080.50' (no '$', no spaces)."""
  match = _NUMBER.search(text)
  return None if match is None else _as_written(match)


def extract_gsm8k_answer(completion: str, stop: Sequence[str] = prompts.GSM8K_STOP) -> Extraction:
  """GSM8K: the number after the last "The answer is" or "####" (on its line), else the last number."""
  text = truncate_at_stop(completion, stop)
  numbers = list(_NUMBER.finditer(text))
  if not numbers:
    return Extraction(None, 'none')
  starts = [n.start() for n in numbers]
  newlines = [m.start() for m in re.finditer('\n', text)]
  for anchor in reversed(list(_GSM8K_ANCHOR.finditer(text))):
    k = bisect.bisect_left(starts, anchor.end())  # the first number after the anchor
    line = bisect.bisect_left(newlines, anchor.end())
    line_end = newlines[line] if line < len(newlines) else len(text)
    if k < len(numbers) and starts[k] < line_end:
      return Extraction(_as_written(numbers[k]), '####' if anchor.group() == '####' else 'answer_is')
  return Extraction(_as_written(numbers[-1]), 'last_number')


def extract_answer(completion: str, dataset: str, stop: Sequence[str] | None = None) -> Extraction:
  """The final answer by `dataset`'s rules ('math', 'math500' or 'gsm8k'), cut at its stop strings."""
  family = prompts.answer_family(dataset)
  stop = prompts.stop_strings(family) if stop is None else stop
  if family == 'gsm8k':
    return extract_gsm8k_answer(completion, stop)
  return extract_math_answer(completion, stop)
