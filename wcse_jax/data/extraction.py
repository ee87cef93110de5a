r"""Final answers out of model completions (and out of gold solutions, by the same rules).

The completion is first cut at the earliest stop string (a model that runs on
into a made-up next "Problem:" must be graded on its own answer) and at the
first end-of-turn token of a chat template (<end_of_turn>, <|im_end|>, ...).
Then:

MATH, in this order (the first two here, in the calling process; they are what
our prompts and nearly every model produce, and their answers repeat across a
problem's samples, so the grader's cache catches them)
    "final_answer"  the Minerva sentence, the last one in the text:
                    "Final Answer: The final answer is $\frac{1}{2}$. I hope it is correct."  ->  \frac{1}{2}
    "boxed"         the last \boxed{...} or \fbox{...}, braces matched:
                    "so $x = \boxed{\frac{1}{2}}$."  ->  \frac{1}{2}
                    All the boxes are kept too (`boxes`): "x = \boxed{2} or x = \boxed{-3}"
                    can state the gold "2, -3" together ("boxes_as_set", decided in
                    equivalence.judge, which knows how many elements the gold has).
    "region"        neither: the end of the text (`region`, at most REGION_CHARS) goes
                    to math-verify's own extraction in a grader worker (equivalence.judge):
                    an anchored LaTeX answer ("the answer is $\frac23$", "Final Answer:
                    ... is \( 9 \)"), a plain-text answer sentence ("Final Answer: The
                    volume is 120."), the last LaTeX environment ("\[ 9 \]"), and at last
                    the last number.

GSM8K, whichever anchor comes last, then the box, then the fallback
    "answer_is"     "... so 5 + 4 = 9. The answer is $1,000."  ->  1,000
                    (also "Final Answer: 18", "Answer: 18")
    "####"          "... #### 72"  ->  72
    "boxed"         the number in the last \boxed{}: "she earns $\boxed{18}$ a day"  ->  18
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
import functools
import re
from collections.abc import Sequence

from wcse_jax.data import prompts


@dataclasses.dataclass(frozen=True)
class Extraction:
  """The final answer found in a completion (None if none) and the rule that found it."""

  answer: str | None
  method: str  # 'final_answer', 'boxed', 'region', 'answer_is', '####', 'last_number', 'given' or 'none'
  boxes: tuple[str, ...] = ()  # MATH: every box's contents, in order (at most MAX_BOXES, the last ones)
  stated_together: int = 0  # MATH: how many of the last boxes are joined by 'and', 'or', ',' only
  region: str | None = None  # MATH, method 'region': the text's end, for math-verify's extraction

  @property
  def is_fallback(self) -> bool:
    return self.method == 'last_number'


# The end of a chat turn, or a made-up next question in another few-shot format
# ("Question: ... Answer: ..."): what follows is not the model's answer.
CHAT_END_TOKENS = ('Question:', '<end_of_turn>', '<start_of_turn>', '<|im_end|>', '<|im_start|>', '<|eot_id|>', '<|endoftext|>', '<|end|>', '<eos>', '</s>')
REGION_CHARS = 3000  # a region's length: the longest MATH gold solution's final paragraph is far shorter
MAX_BOXES = 8


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
  """The text before the earliest stop string or chat end token: ('a\\nProblem: b', ['Problem:']) -> 'a\\n'."""
  found = _stops_pattern(tuple(stop)).search(text)
  return text if found is None else text[:found.start()]


@functools.lru_cache(maxsize=64)
def _stops_pattern(stop: tuple[str, ...]) -> re.Pattern:
  """One pass over the text for every stop string and chat end token: the earliest wins."""
  return re.compile('|'.join(re.escape(s) for s in (*stop, *CHAT_END_TOKENS) if s))


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
_BOX = re.compile(r'\\(?:boxed|fbox)(?![A-Za-z])')


def _box_span(text: str, start: int) -> tuple[int, int] | None:
  r"""Where the contents of the box whose command starts at `start` begin and end; None if unclosed."""
  i = start + 1
  i += len('boxed') if text.startswith('boxed', i) else len('fbox')
  rest = text[i:].lstrip()
  if not rest.startswith('{'):
    if text[i:i + 1] != ' ':
      return None
    token = rest.split('$', 1)[0].split(maxsplit=1)
    at = len(text) - len(rest)
    return (at, at + len(token[0])) if token else None
  open_at = len(text) - len(rest)
  depth = 0
  for token in _BRACE_OR_ESCAPE.finditer(text, open_at):
    if token.group() == '{':
      depth += 1
    elif token.group() == '}':
      depth -= 1
      if depth == 0:
        return open_at + 1, token.start()
  return None


def last_boxed(text: str) -> str | None:
  r"""Contents of the last \boxed{...} or \fbox{...}, braces matched; None if absent or unclosed.

      last_boxed(r'$\boxed{1}$ then $\boxed{\frac{1}{2}}$')  ->  r'\frac{1}{2}'
      last_boxed(r'\boxed 5$')                                 ->  '5'   (Hendrycks' \boxed<space>)

  Escaped braces \{ \} are literal set braces, not groups: \boxed{\{1,2\}} -> \{1,2\}.
  """
  start = max(text.rfind('\\boxed'), text.rfind('\\fbox'))
  span = None if start == -1 else _box_span(text, start)
  return None if span is None else text[span[0]:span[1]]


def all_boxed(text: str, limit: int = MAX_BOXES) -> tuple[tuple[str, ...], int]:
  r"""The contents of the last `limit` closed, outermost boxes, in order, and how many of the last are stated
  together (only 'and', 'or', commas or 'x =' between them): 'x=\boxed{2}, \boxed{-3}' -> (('2', '-3'), 2).

  Only the last `limit` box commands are read, so nested or repeated boxes cost
  at most `limit` scans of the text.
  """
  starts = [m.start() for m in _BOX.finditer(text)][-limit:]
  found: list[tuple[int, int, str]] = []  # (start, end of contents, contents)
  for start in starts:
    span = _box_span(text, start)
    if span is not None and text[span[0]:span[1]].strip():
      found.append((start, span[1], text[span[0]:span[1]].strip()))
  # Keep the outermost: \boxed{\boxed{5}} is one answer, 5.
  outer = [f for f in found if not any(o[0] < f[0] < o[1] for o in found if o is not f)]
  together = 1 if outer else 0
  while together < len(outer) and _JOINER.fullmatch(text, outer[-together - 1][1] + 1, outer[-together][0]):
    together += 1
  return tuple(_unwrap_boxes(contents) for _, _, contents in outer), together


# What may stand between boxes that state one answer together: "x = \boxed{2}$ or $x = \boxed{-3}".
_JOINER = re.compile(
    r'[\s$,;.]*(?:(?:and|or|,|;|\\quad|\\qquad|\\text\{\s*(?:and|or)\s*\})[\s$,]*)?'
    r'(?:[A-Za-z](?:_\{?\w+\}?)?\s*=\s*)?')


def _unwrap_boxes(contents: str) -> str:
  r"""'\boxed{\boxed{5}}' holds 5: unwraps up to MAX_BOXES boxes that fill the whole contents."""
  for _ in range(MAX_BOXES):
    span = _box_span(contents, 0) if _BOX.match(contents) else None
    if span is None or span[1] != len(contents) - 1 or not contents.endswith('}'):
      return contents
    contents = contents[span[0]:span[1]].strip()
  return contents


def _region(text: str) -> str:
  """The last REGION_CHARS characters, starting at a line (or word) boundary where there is one."""
  if len(text) <= REGION_CHARS:
    return text
  tail = text[-REGION_CHARS:]
  for sep in ('\n', ' '):
    at = tail.find(sep)
    if 0 <= at < REGION_CHARS // 2:
      return tail[at + 1:]
  return tail


def extract_math_answer(completion: str, stop: Sequence[str] = prompts.MATH_STOP) -> Extraction:
  r"""MATH: the Minerva final-answer sentence, else the last \boxed{}; see the module docstring."""
  text = truncate_at_stop(completion, stop)
  stated = _stated_final_answer(text)
  if stated is not None:
    boxed = last_boxed(stated)
    answer = boxed if boxed is not None else _strip_math_delimiters(stated)
    if answer:
      return Extraction(answer.strip(), 'final_answer')
  boxes, together = all_boxed(text)
  if boxes:
    return Extraction(boxes[-1], 'boxed', boxes=boxes, stated_together=together)
  region = _region(text).strip()
  return Extraction(None, 'region', region=region) if region else Extraction(None, 'none')


def ends_mid_sentence(text: str) -> bool:
  """Whether a text stops on a word (cut off at its token limit): it has stated no answer there."""
  return text.rstrip(' *_')[-1:].isalpha()


# A number as people write it: -3, 1,000, $18.50, .5 (no exponents: 1e999 is not an answer).
_NUMBER = re.compile(r'-?\$?\s?-?(?:\d(?:[\d,]*\d)?(?:\.\d+)?|\.\d+)')
_GSM8K_ANCHOR = re.compile(r'(?i:the (?:final )?answer is|(?:final )?answer:)|####')


def _as_written(number: re.Match) -> str:
  return re.sub(r'[\s$]', '', number.group())


def first_number(text: str) -> str | None:
  """'costs $1,080.50 in all' -> '1,080.50' (no '$', no spaces)."""
  match = _NUMBER.search(text)
  return None if match is None else _as_written(match)


def extract_gsm8k_answer(completion: str, stop: Sequence[str] = prompts.GSM8K_STOP) -> Extraction:
  """GSM8K: the number after the last "The answer is" or "####" (on its line) or in the last
  \\boxed{}, whichever comes last; else the last number, if the text ends a sentence."""
  text = truncate_at_stop(completion, stop)
  numbers = list(_NUMBER.finditer(text))
  if not numbers:
    return Extraction(None, 'none')
  starts = [n.start() for n in numbers]
  newlines = [m.start() for m in re.finditer('\n', text)]
  anchored = None  # (where, answer, method)
  for anchor in reversed(list(_GSM8K_ANCHOR.finditer(text))):
    k = bisect.bisect_left(starts, anchor.end())  # the first number after the anchor
    line = bisect.bisect_left(newlines, anchor.end())
    line_end = newlines[line] if line < len(newlines) else len(text)
    if k < len(numbers) and starts[k] < line_end:
      anchored = (starts[k], _as_written(numbers[k]), '####' if anchor.group() == '####' else 'answer_is')
      break
  box_at = max(text.rfind('\\boxed'), text.rfind('\\fbox'))
  span = None if box_at == -1 else _box_span(text, box_at)
  number = None if span is None else _NUMBER.search(text, *span)
  if number is not None and (anchored is None or box_at > anchored[0]):
    return Extraction(_as_written(number), 'boxed')  # a final box after a retracted "The answer is"
  if anchored is not None:
    return Extraction(anchored[1], anchored[2])
  if ends_mid_sentence(text):
    return Extraction(None, 'none')  # a number in passing is no answer
  return Extraction(_as_written(numbers[-1]), 'last_number')


def extract_answer(completion: str, dataset: str, stop: Sequence[str] | None = None) -> Extraction:
  """The final answer by `dataset`'s rules ('math', 'math500' or 'gsm8k'), cut at its stop strings."""
  family = prompts.answer_family(dataset)
  stop = prompts.stop_strings(family) if stop is None else stop
  if family == 'gsm8k':
    return extract_gsm8k_answer(completion, stop)
  return extract_math_answer(completion, stop)
