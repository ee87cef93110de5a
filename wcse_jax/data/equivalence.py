r"""Is a final answer the gold one? GSM8K: as exact decimals. MATH: with math-verify.

    gsm8k_answers_match('1080', '$1,080.00')          -> True     (Decimal('1080') == Decimal('1080.00'))
    math_answers_match(r'\frac{1}{2}', '0.5')         -> True
    math_answers_match('(0,1]', '[0,1]')              -> False
    rejection('9^{9^{9^{9}}}')                        -> 'exponent_tower'

Model output is untrusted, and nothing here runs it as code. GSM8K answers are
read by a regex into decimal.Decimal. MATH answers go only to math-verify's LaTeX
path (LatexExtractionConfig: latex2sympy2's ANTLR parser builds sympy objects);
its plain-expression path (ExprExtractionConfig) is not used because it calls
sympy's parse_expr, which is eval. Answers are wrapped as \boxed{answer} so the
parser takes them whole.

`rejection` refuses, before any parsing, answers that are too long, nested too
deep, hold null bytes or unbalanced braces (which could close the \boxed{} they
are wrapped in), or stack numeric exponents (9^9^9^9, 9^{9^{9^{9}}}: too big to
compute; symbolic towers like e^{-x^2} pass). Sympy can still be made to work
hard in other ways ((10^{100})!), so `math_answers_match` runs in the grader's
worker processes under a wall-clock limit and a memory cap.
"""

from __future__ import annotations

import decimal
import functools
import re

from wcse_jax.data import extraction

MAX_ANSWER_CHARS = 1000  # the longest gold answer in MATH is 159 characters
MAX_NESTING = 16  # of {}, (), []; gold answers reach 3
MAX_EXPONENT_DIGITS = 5  # 10^{99999} is fine, 10^{100000} is refused

_BRACKET_OR_CARET = re.compile(r'\\\\|\\[{}]|[{}()[\]^]')  # '\\' (a line break) is neither
_LETTER = re.compile('[A-Za-z]')
_NUMERIC_COMMAND = re.compile(r'\\(?:left|right|cdot|times|[dt]?frac)(?![A-Za-z])')  # no symbols in these
# A '^' right after a numeric exponent: 9^9^9, 9^{99}^{99}.
_CHAINED_POWER = re.compile(r'\^\s*(?:\{[^{}A-Za-z]*\}|\d)\s*\^')
_LONG_EXPONENT = re.compile(r'\^\s*\{?\s*[-+]?\s*\d{%d,}' % (MAX_EXPONENT_DIGITS + 1))


def _bracket_rejection(answer: str) -> str | None:
  """'too_deep', 'unbalanced_braces', or 'exponent_tower' for a numeric braced exponent with a '^'.

  Symbolic towers pass (e^{-x^2}); numeric ones do not, even small ones (9^{9^{9^{9}}},
  2^{2^{3}}): no MATH gold answer is one.
  """
  depth = 0
  groups: list[tuple[bool, int]] = []  # open (unescaped) { groups: (is an exponent, start)
  caret_end = None  # where the last '^' ended
  for token in _BRACKET_OR_CARET.finditer(answer):
    t = token.group()
    if t == '\\\\':
      continue
    if t == '^':
      caret_end = token.end()
    elif t == '{':
      groups.append((caret_end is not None and not answer[caret_end:token.start()].strip(), token.end()))
    elif t == '}':
      if not groups:
        return 'unbalanced_braces'
      is_exponent, start = groups.pop()
      inside = answer[start:token.start()]
      if is_exponent and '^' in inside and not _LETTER.search(_NUMERIC_COMMAND.sub('', inside)):
        return 'exponent_tower'
    depth += 1 if t in ('{', '(', '[', '\\{') else -1 if t in ('}', ')', ']', '\\}') else 0
    if depth > MAX_NESTING:
      return 'too_deep'
  return 'unbalanced_braces' if groups else None


def rejection(answer: str) -> str | None:
  """Why an answer is refused unparsed (graded False), or None if it may be parsed."""
  if '\x00' in answer:
    return 'null_byte'
  if len(answer) > MAX_ANSWER_CHARS:
    return 'too_long'
  reason = _bracket_rejection(answer)
  if reason:
    return reason
  if _CHAINED_POWER.search(answer):
    return 'exponent_tower'
  if _LONG_EXPONENT.search(answer):
    return 'exponent_too_large'
  return None


_WHITESPACE = re.compile(r'\s+')
_LATEX_THOUSANDS = re.compile(r'(?<=\d),\\!(?=\d{3})')  # MATH writes 5,\!525 for 5525


def normalise_math_answer(answer: str) -> str:
  r"""What math-verify is given, and the cache key: ' $5,\!525$. ' -> '5525'."""
  answer = extraction.UNESCAPED_DOLLAR.sub('', answer)
  answer = _LATEX_THOUSANDS.sub('', answer)
  return _WHITESPACE.sub(' ', answer).strip().rstrip('.').rstrip()


def gsm8k_number(text: str) -> decimal.Decimal | None:
  """The first number in `text` as an exact Decimal: '$1,080.50 dollars' -> Decimal('1080.50')."""
  number = extraction.first_number(text)
  if number is None:
    return None
  try:
    return decimal.Decimal(number.replace(',', ''))
  except decimal.InvalidOperation:
    return None


def gsm8k_answers_match(gold: str, answer: str) -> bool:
  """Exact numeric equality: '18' == '18.00' == '$18'; '0.333' != '1/3'."""
  gold_number, number = gsm8k_number(gold), gsm8k_number(answer)
  return gold_number is not None and number is not None and gold_number == number


@functools.lru_cache(maxsize=None)
def _math_verify():
  """math-verify, imported on first use (only worker processes need sympy)."""
  import logging  # pylint: disable=g-import-not-at-top

  import math_verify  # pylint: disable=g-import-not-at-top

  # Our worker's hard wall-clock limit replaces math-verify's SIGALRM timeouts;
  # silence its warning that they are off.
  logging.getLogger('math_verify').setLevel(logging.ERROR)
  return math_verify


@functools.lru_cache(maxsize=8192)  # gold answers repeat once per sample
def _parse_latex(answer: str) -> tuple:
  mv = _math_verify()
  return tuple(mv.parse('\\boxed{' + answer + '}', [mv.LatexExtractionConfig()], parsing_timeout=None))


def math_answers_match(gold: str, answer: str) -> bool:
  r"""math-verify's equivalence of two normalised MATH answers: ('\frac12', '0.5') -> True.

  Slow (milliseconds) and unbounded on hostile input: call it through grader.Grader.
  """
  mv = _math_verify()
  return bool(mv.verify(list(_parse_latex(gold)), list(_parse_latex(answer)), timeout_seconds=None))
