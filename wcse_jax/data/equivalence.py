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


def _verify(gold: tuple, answer: tuple) -> bool:
  return bool(gold) and bool(answer) and bool(
      _math_verify().verify(list(gold), list(answer), timeout_seconds=None))


def math_answers_match(gold: str, answer: str) -> bool:
  r"""math-verify's equivalence of two normalised MATH answers: ('\frac12', '0.5') -> True.

  Slow (milliseconds) and unbounded on hostile input: call it through grader.Grader.
  """
  return _verify(_parse_latex(gold), _parse_latex(answer))


# MATH's conventions that math-verify does not apply by itself.

# A percent sign is optional on either side: '12.5\%' matches '12.5' (math-verify reads it as 0.125).
_PERCENT = re.compile(r'\s*(?:\\%|%|\\text\{\s*\\?%\s*\}|\\text\{\s*percent\s*\}|\\?\s*(?:percent|pct)\.?)\s*$')
_REPEATING = re.compile(r'(-?)(\d*)\.(\d*)\\overline\{(\d{1,12})\}')  # 0.1\overline{6} = 1/6
_SPACED_THOUSANDS = re.compile(r'(?<=\d) (?=\d{3}(?!\d))')  # '1 000' (SI style) = 1000
_TEXT_WORDS = re.compile(r'\\(?:text|mbox|textrm|mathrm|textbf)\s*\{([^{}]*)\}')
# Words in \text{} that may differ between answers that agree (math-verify drops units).
_UNIT_WORDS = frozenset(
    'cm m km mm in inch inches ft foot feet yd yard yards mi mile miles meter meters metre metres centimeter '
    'centimeters unit units sq square cubic degree degrees deg dollar dollars cent cents hour hours hr hrs minute '
    'minutes min mins second seconds sec s day days week weeks month months year years kg g gram grams pound pounds '
    'lb lbs oz ounce ounces mph gallon gallons liter liters litre litres ml people students of and or'.split())


def _repeating_as_fraction(match: re.Match) -> str:
  sign, whole, fixed, repeat = match.groups()
  denominator = (10 ** len(repeat) - 1) * 10 ** len(fixed)
  numerator = int((whole or '0') + fixed + repeat) - int((whole or '0') + fixed)
  return f'{sign}\\frac{{{numerator}}}{{{denominator}}}'


def _conventions(answer: str) -> str:
  r"""MATH's spellings that math-verify misreads: '0.\overline{3}' -> '\frac{3}{9}', '1 000' -> '1000'."""
  return _SPACED_THOUSANDS.sub('', _REPEATING.sub(_repeating_as_fraction, answer))


def _words(answer: str) -> frozenset[str]:
  """The words of an answer's \\text{} parts that are not units: '9\\text{ a.m.}' -> {'am'}."""
  words = ' '.join(_TEXT_WORDS.findall(answer)).lower().replace('.', '')
  return frozenset(w for w in re.findall(r'[a-z]+', words) if w not in _UNIT_WORDS)


def _as_text(answer: str) -> str:
  """An answer without text wrappers and spaces, its words in lower case: '\\text{June } 20' -> 'june20'.

  Single letters keep their case (X is not x), and so do LaTeX commands (\\Sigma is not \\sigma).
  """
  text = _TEXT_WORDS.sub(lambda m: m.group(1).lower(), answer)
  text = re.sub(r'(?<![\\A-Za-z])[A-Za-z]{2,}', lambda m: m.group().lower(), text)  # words, not commands or 'X'
  return re.sub(r'\s+', '', text)


def _without_percent(answer: str) -> str:
  return _PERCENT.sub('', answer)


def _as_sets(parsed: tuple) -> list[tuple]:
  r"""Inequalities in one variable as the sets they describe: '-2 \le x \le 7' -> [-2, 7]; 'x \in S' -> S.

  A MATH gold interval is often answered as a (double) inequality, and the
  reverse; sympy's as_set turns the parsed relation (never the text) into a set.
  A list of inequalities ('$x<2$ or $x>3$', which math-verify reads as a set of
  two) is read both ways, as their union and as their intersection.
  """
  import sympy  # pylint: disable=g-import-not-at-top

  if not parsed or not isinstance(parsed[0], sympy.Basic):
    return []
  expr, rest = parsed[0], parsed[1:]
  if isinstance(expr, sympy.Eq) and isinstance(expr.rhs, sympy.Set) and expr.lhs.is_Symbol:
    return [(expr.rhs, *rest)]
  inequalities = (sympy.Lt, sympy.Le, sympy.Gt, sympy.Ge, sympy.Ne)

  def is_relation(e) -> bool:  # an inequality, or an and/or of them ('1 < x < 2')
    return isinstance(e, inequalities) or (isinstance(e, (sympy.And, sympy.Or)) and all(map(is_relation, e.args)))

  # A range written in f(x) ('0 < f(x) <= 1') is a set of values like one in y.
  functions = expr.atoms(sympy.core.function.AppliedUndef) if isinstance(expr, sympy.Basic) else set()
  if functions:
    expr = expr.xreplace({f: sympy.Symbol(f'_value{i}', real=True) for i, f in enumerate(sorted(functions, key=str))})
  relations = list(expr.args) if isinstance(expr, sympy.FiniteSet) else [expr]
  free = set().union(*(r.free_symbols for r in relations)) if relations else set()
  if not relations or not all(map(is_relation, relations)) or len(free) != 1:
    return []
  try:
    if isinstance(expr, sympy.FiniteSet):
      sets = [r.as_set() for r in relations]
      return [(sympy.Union(*sets), *rest), (sympy.Intersection(*sets), *rest)]
    return [(expr.as_set(), *rest)]
  except Exception:  # pylint: disable=broad-except  # sympy cannot solve it: no set
    return []


def answers_match(gold: str, answer: str) -> str | None:
  """The rule by which `answer` equals `gold` ('exact_match', 'equivalent_as_text', 'equivalent',
  'equivalent_without_percent', 'relation_as_set'), or None if it does not.

  Text that is not a unit must agree where both answers have some: '9\\text{ a.m.}'
  is not '9\\text{ p.m.}', though math-verify drops both words.
  """
  gold_words, words = _words(gold), _words(answer)
  if gold_words and words and gold_words != words:
    return None
  gold, answer = _conventions(gold), _conventions(answer)
  if gold == answer:
    return 'exact_match'
  if _as_text(gold) == _as_text(answer):
    return 'equivalent_as_text'
  gold_parsed, parsed = _parse_latex(gold), _parse_latex(answer)
  if _verify(gold_parsed, parsed):
    return 'equivalent'
  gold_bare, bare = _without_percent(gold), _without_percent(answer)
  if (gold_bare, bare) != (gold, answer) and gold_bare and bare and math_answers_match(gold_bare, bare):
    return 'equivalent_without_percent'
  for gold_set in _as_sets(gold_parsed) or [gold_parsed]:
    for answer_set in _as_sets(parsed) or [parsed]:
      if (gold_set is not gold_parsed or answer_set is not parsed) and _verify(gold_set, answer_set):
        return 'relation_as_set'
  return None


# Multiple-choice letters: a gold '(B)', 'B' or '\text{(B)}' is answered by a letter.
_TEXT_COMMAND = re.compile(r'\\(?:text|textbf|mathrm|mathbf|textrm)\s*\{([^{}]*)\}')
_CHOICE = re.compile(r'\(?\s*([A-E])\s*\)?[.:]?')
_CHOICES = re.compile(r'\(?\s*[A-E]\s*\)?(?:\s*(?:,|and|,\s*and)\s*\(?\s*[A-E]\s*\)?)*[.:]?')
_ANCHORED_CHOICE = re.compile(
    r'(?i:\banswer\b|\boption\b|\bchoice\b)[^A-Za-z0-9\n]{0,20}(?:(?i:is|would be|should be)\s*)?'
    r'[:\s$*{(\\textbf]{0,12}?\(?([A-E])\)?(?![A-Za-z0-9])')
_PARENTHESISED_CHOICE = re.compile(r'\(([A-E])\)')
# A standalone capital letter, but not the article 'A' before a word ('A bag has ...').
_BARE_CHOICE = re.compile(r'(?<![A-Za-z0-9\\{])([A-E])(?![A-Za-z0-9])(?!\s+[a-z])')


def choice_letter(answer: str) -> str | None:
  r"""The letters an answer is, if it is just choice letters: '\text{(B)}' -> 'B', 'D, A' -> 'A,D', '(c)' -> None."""
  bare = _TEXT_COMMAND.sub(r'\1', answer).replace('$', '').strip()
  if not _CHOICES.fullmatch(bare):
    return None
  return ','.join(sorted(set(re.findall('[A-E]', bare))))


def choice_in_text(text: str) -> str | None:
  """The choice a text states: after 'answer'/'option'/'choice', else the last '(X)', else the last bare X."""
  text = _TEXT_COMMAND.sub(r'\1', text)
  for pattern in (_ANCHORED_CHOICE, _PARENTHESISED_CHOICE, _BARE_CHOICE):
    found = pattern.findall(text)
    if found:
      return found[-1]
  return None


# Several boxes that state a gold answer of several elements together.
_ASSIGNMENT = re.compile(r'^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*')  # 'k = 45' states 45


def _element_count(gold: str, gold_parsed: tuple) -> int:
  import sympy  # pylint: disable=g-import-not-at-top

  expr = gold_parsed[0] if gold_parsed else None
  if isinstance(expr, (sympy.FiniteSet, sympy.Tuple)):
    return len(expr.args)
  if isinstance(expr, sympy.Interval):
    return 2
  return gold.count(',') + 1 if ',' in gold else 1


def _joined_boxes(gold: str, boxes: tuple[str, ...], count: int, distinct: bool = True) -> str | None:
  r"""The last `count` (distinct) boxes, written as the gold is: ('45', '2') -> '(45, 2)' for the gold (45, 2)."""
  values = [_ASSIGNMENT.sub('', b) for b in boxes]
  distinct = list(dict.fromkeys(values[::-1]))[::-1] if distinct else values
  if count < 2 or len(distinct) < count:
    return None
  joined = ', '.join(distinct[-count:])
  if gold.startswith('(') and gold.endswith(')'):
    return f'({joined})'  # an ordered pair: order matters
  if gold.startswith('\\{') and gold.endswith('\\}'):
    return f'\\{{{joined}\\}}'
  return joined


# A plain-text answer sentence: math-verify reads such answers with its expression
# config, which calls sympy's parse_expr (eval); we cut the answer out of the sentence
# ourselves and parse it as LaTeX.
_ANSWER_WORD = re.compile(r'(?i)\banswer\b')
_MATH_ENV = re.compile(r'\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|(?<![\\$])\$(?:\\.|[^$\\])+?\$', re.DOTALL)
_VERB = re.compile(r'\b(?:is|are|equals|was|be)\b|:|(?<![<>!\\])=')
_SENTENCE_END = re.compile(r'\.(?:\s|$)|\bI hope\b|\s(?:because|since|as|which|where|so|and so)\b')
_NUMBER_THEN_WORDS = re.compile(r'(-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?)\s+[A-Za-z][A-Za-z\s.]*')
MAX_SENTENCE_ANSWER = 120
# Not a number glued to a letter: '20i' is not 20, '3x' not 3.
_NUMBER_OR_FRACTION = re.compile(
    r'-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?(?![A-Za-z\d])(?:\s*(?:\\?%|percent\b|pct\b))?')
_NUMBER_LIST_AT_END = re.compile(
    r'(%s(?:\s*(?:,\s*and|,\s*or|,|\band\b|\bor\b)\s*%s)+)[\s.$*]*\Z' % ((_NUMBER_OR_FRACTION.pattern,) * 2))


_BOLD_LAST_LINE = re.compile(r'(?:^|\n)[ \t]*\*\*([^*\n]{1,%d})\*\*[ \t.]*\Z' % MAX_SENTENCE_ANSWER)
_ASYMPTOTE = re.compile(r'\[asy\].*?(?:\[/asy\]|\Z)', re.DOTALL)


def _outside_math(text: str) -> str:
  """The text with its math environments blanked out (same length)."""
  return _MATH_ENV.sub(lambda m: ' ' * len(m.group()), text)


def _sentence_answer(region: str) -> str | None:
  """What the last answer sentence states: 'Final Answer: The volume of $V$ is 120.' -> '120'.

  The sentence runs from the last word 'answer' to its end (a full stop, 'I hope',
  'because', ...); the answer is what follows its last verb ('is', ':', '=')
  outside math; a number followed by words ('15 square centimeters') is the number.
  """
  anchors = list(_ANSWER_WORD.finditer(region))
  if not anchors:
    return None
  line = region[anchors[-1].end():]
  plain = _outside_math(line)  # a newline inside display math does not end the sentence
  line, plain = line[:len(plain.split('\n', 1)[0])], plain.split('\n', 1)[0]
  end = _SENTENCE_END.search(plain)
  line, plain = (line[:end.start()], plain[:end.start()]) if end else (line, plain)
  verbs = list(_VERB.finditer(plain))
  stated = line[verbs[-1].end():] if verbs else line
  stated = normalise_math_answer(stated.replace('**', '').strip().rstrip('.,;').strip())
  number = _NUMBER_THEN_WORDS.fullmatch(stated)
  if number:
    stated = number.group(1)
  return stated if 0 < len(stated) <= MAX_SENTENCE_ANSWER else None


def _last_number(text: str) -> tuple[str, int] | None:
  """The last number (or a/b) outside math, or the list of numbers the text ends with, and where it starts.

      '... the remainder is 4.'  ->  ('4', 24)      '... are 12 and 13.'  ->  ('12 and 13', ...)
  """
  plain = _outside_math(text)
  tail = len(plain) - MAX_SENTENCE_ANSWER
  listed = _NUMBER_LIST_AT_END.search(plain, max(0, tail))
  if listed:
    return listed.group(1), listed.start()
  numbers = list(_NUMBER_OR_FRACTION.finditer(plain))
  return (numbers[-1].group().strip(), numbers[-1].start()) if numbers else None


def _region_answer(region: str) -> tuple[tuple | str | None, str]:
  """The answer stated in a region (parsed by math-verify, or a string) and the rule that found it.

  In this order: the answer sentence (ours); math-verify's anchored extraction
  ('answer: $x$'); then, only if the text ends as a finished sentence (a text cut
  off mid-sentence has stated nothing), the later of the last number outside math
  ('last_number') and math-verify's last LaTeX environment ('last_latex').
  """
  mv = _math_verify()
  region = _ASYMPTOTE.sub(' ', region).strip()  # figure code states no answer
  sentence = _sentence_answer(region)
  if sentence is not None:
    return sentence, 'answer_sentence'
  anchored = mv.LatexExtractionConfig(try_extract_without_anchor=False, boxed_match_priority=0)
  found = mv.parse(region, [anchored], fallback_mode='first_match', parsing_timeout=None)
  if len(found) == 2:
    return tuple(found), 'answer_latex'
  bold = _BOLD_LAST_LINE.search(region)
  if bold:  # a chat model's closing '**June 20**'
    return normalise_math_answer(bold.group(1)), 'bold_answer'
  if extraction.ends_mid_sentence(region):
    return None, 'none'
  number = _last_number(region)
  maths = list(_MATH_ENV.finditer(region))
  if number is not None and (not maths or number[1] >= maths[-1].end()):
    return number[0], 'last_number'
  last = maths[-1].group() if maths else ''
  if last.startswith(('$$', '\\[')) and not region[maths[-1].end():].strip(' .\n'):
    # The text ends in display math: that statement alone, not math-verify's join of it
    # with the inline math before it ('$6s=36$ and $$s = 6$$').
    return normalise_math_answer(last[2:-2]), 'last_latex'
  found = mv.parse(region, [mv.LatexExtractionConfig()], fallback_mode='first_match', parsing_timeout=None)
  if len(found) == 2:
    return tuple(found), 'last_latex'
  return (number[0], 'last_number') if number else (None, 'none')


def judge(
    gold: str, answer: str, boxes: tuple[str, ...] = (), together: int = 0, region: str = ''
) -> tuple[bool, str, str | None, str]:
  r"""Grades one normalised MATH answer (or a region to extract one from) against the gold.

  Returns (correct, reason, the answer graded, the rule that extracted it, or '' if
  the caller's extraction stands). `answer` is '' when there is only a `region`.
  Boxes stated together ('$x = \boxed{2}$ or $x = \boxed{-3}$', `together` = 2)
  are one answer, a list; else the last box is the answer, and if the gold has
  several elements, the last boxes as many are tried as one ('boxes_as_set').

      judge('2, -3', '-3', boxes=('2', '-3'), together=2)  ->  (True, 'equivalent', '2, -3', 'boxes_as_set')
      judge('9', '', region=r'so we get \[ 9 \]')  ->  (True, 'equivalent', '9', 'last_latex')
  """
  letter = choice_letter(gold)
  if letter is not None:
    stated = (choice_letter(answer) or choice_in_text(answer)) if answer else choice_in_text(region)
    return (stated == letter, 'equivalent' if stated == letter else 'not_equivalent' if stated else 'no_answer',
            stated, 'choice_letter')
  method = ''
  if not answer:
    found, method = _region_answer(region)
    if found is None:
      return False, 'no_answer', None, method
    if isinstance(found, tuple):  # parsed by math-verify already
      if _verify(_parse_latex(gold), found):
        return True, 'equivalent', found[1], method
      answer = normalise_math_answer(found[1])
    else:
      answer = found
    reason = rejection(answer)
    if reason:
      return False, reason, answer, method
  stated = boxes[-together:] if together > 1 else ()
  count = _element_count(gold, _parse_latex(gold))
  if len(set(stated)) > 1 or (stated and count > 1):  # one answer in several boxes
    joined = (_joined_boxes(gold, stated, len(set(stated))) if len(set(stated)) > 1
              else _joined_boxes(gold, stated, len(stated), distinct=False))  # 'a = 1, b = 1' is (1, 1)
    rule = answers_match(gold, joined) if joined is not None and rejection(joined) is None else None
    return bool(rule), rule or 'not_equivalent', joined, 'boxes_as_set'
  rule = answers_match(gold, answer)
  if rule:
    return True, rule, answer, method
  joined = _joined_boxes(gold, boxes, count) if len(boxes) > 1 else None
  if joined is not None and joined != answer and rejection(joined) is None:
    rule = answers_match(gold, joined)
    if rule:
      return True, rule, joined, 'boxes_as_set'
  return False, 'not_equivalent', answer, method
