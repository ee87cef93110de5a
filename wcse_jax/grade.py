r"""Grade any JSONL of samples by this project's rules: python -m wcse_jax.grade IN.jsonl OUT.jsonl

    python -m wcse_jax.grade vllm_samples.jsonl graded.jsonl --dataset=math
    # graded 15000 lines: 6231 correct (41.5%), 0 skipped, 13 by the GSM8K last-number fallback

Each input line is a JSON object with
    gold         the gold final answer: "2", "\\frac{1}{2}", 1080
    completion   a whole model output, whose final answer is extracted first (extraction.py);
                 `text` (as in our own sample shards) is read the same way; or
    answer       an already-extracted final answer (used when `completion` is absent or null)
    dataset      optional, 'math', 'math500' or 'gsm8k': overrides --dataset for this line
Every input field is kept, and four are added: `extracted` (the graded answer),
`correct`, `grade_reason` and `extracted_by` (see data/grader.py). Output lines
are written whole, in input order, and flushed every chunk. A malformed line
stops the run with one line naming file:line, or with --skip_bad_lines is
counted, reported and left out.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags
from tqdm import tqdm

from wcse_jax.data import prompts
from wcse_jax.data.grader import Grader
from wcse_jax.data.jsonl import DataError, JsonlReader


_CHUNK = 2048  # lines graded together: bigger chunks keep the workers busier


def _grading_input(record: dict, default_dataset: str) -> tuple[str, str, bool, str]:
  """(gold, text, text is a completion, answer family) of one line; ValueError if malformed."""
  if 'gold' not in record:
    raise ValueError("no 'gold' field")
  gold = record['gold']
  if isinstance(gold, bool) or not isinstance(gold, (str, int, float)):
    raise ValueError(f"'gold' must be a string or a number, not {type(gold).__name__}")
  field = next((f for f in ('completion', 'text') if record.get(f) is not None), None)
  if field is not None:
    text, extract = record[field], True
    if not isinstance(text, str):
      raise ValueError(f"{field!r} must be a string, not {type(text).__name__}")
  elif record.get('answer') is not None:
    text, extract = record['answer'], False
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
      raise ValueError(f"'answer' must be a string or a number, not {type(text).__name__}")
  else:
    raise ValueError("needs a 'completion' (or 'text') or an 'answer' field")
  return str(gold), str(text), extract, prompts.answer_family(str(record.get('dataset', default_dataset)))


def _grade_chunk(grader: Grader, chunk: list[tuple[dict, tuple[str, str, bool, str]]]) -> list[dict]:
  """The chunk's records with grades added, grading each (family, extract) group in one call."""
  groups: dict[tuple[str, bool], list[int]] = {}
  for i, (_, (_, _, extract, family)) in enumerate(chunk):
    groups.setdefault((family, extract), []).append(i)
  graded = [dict(record) for record, _ in chunk]
  for (family, extract), indices in groups.items():
    pairs = [chunk[i][1][:2] for i in indices]
    for i, result in zip(indices, grader.grade_many(pairs, dataset=family, extract=extract)):
      graded[i].update(
          extracted=result.extracted, correct=result.correct,
          grade_reason=result.reason, extracted_by=result.extracted_by,
      )
  return graded


def grade_file(in_path: str, out_path: str, *, dataset: str, skip_bad_lines: bool, grader: Grader) -> dict:
  """Grades IN into OUT; returns counts {'graded', 'correct', 'skipped', 'fallback'}."""
  if os.path.abspath(in_path) == os.path.abspath(out_path):
    raise DataError(f'OUT must differ from IN ({in_path}): grading rewrites OUT from the start')
  reader = JsonlReader(in_path, on_error='skip' if skip_bad_lines else 'raise')
  try:
    with open(in_path, 'rb') as f:
      total = sum(1 for _ in f)
  except OSError as e:
    raise DataError(f'cannot read {in_path}: {e.strerror or e}') from None
  counts = dict(graded=0, correct=0, skipped=0, fallback=0)
  with open(out_path, 'w', encoding='utf-8') as out, tqdm(total=total, unit='line', file=sys.stderr) as bar:

    def flush(chunk, lines_read):
      for record in _grade_chunk(grader, chunk):
        out.write(json.dumps(record, ensure_ascii=False) + '\n')
        counts['graded'] += 1
        counts['correct'] += record['correct']
        counts['fallback'] += record['extracted_by'] == 'last_number'
      out.flush()
      bar.update(lines_read - bar.n)

    chunk = []
    for line_number, record in reader:
      try:
        chunk.append((record, _grading_input(record, dataset)))
      except ValueError as e:
        reader.reject(line_number, str(e))
      if len(chunk) == _CHUNK:
        flush(chunk, line_number)
        chunk = []
    flush(chunk, total)
  counts['skipped'] = len(reader.skipped)
  for message in reader.skipped[:10]:
    print(f'skipped {message}', file=sys.stderr)
  if len(reader.skipped) > 10:
    print(f'... and {len(reader.skipped) - 10} more skipped lines', file=sys.stderr)
  return counts


def main(argv: list[str]) -> None:
  if len(argv) != 3:
    raise app.UsageError('usage: python -m wcse_jax.grade IN.jsonl OUT.jsonl [--dataset=math|gsm8k]')
  _, in_path, out_path = argv
  try:
    with Grader(flags.FLAGS.dataset, timeout_s=flags.FLAGS.timeout_s, workers=flags.FLAGS.workers or None) as grader:
      counts = grade_file(
          in_path, out_path, dataset=flags.FLAGS.dataset, skip_bad_lines=flags.FLAGS.skip_bad_lines, grader=grader
      )
  except DataError as e:
    sys.exit(f'error: {e}')
  share = counts['correct'] / counts['graded'] if counts['graded'] else 0.0
  print(
      f"graded {counts['graded']} lines: {counts['correct']} correct ({share:.1%}), "
      f"{counts['skipped']} skipped, {counts['fallback']} by the GSM8K last-number fallback"
  )


def define_flags() -> None:
  """The command line. Defined only when run as a program, so that importing this module
  beside others (`sample` has --dataset too) defines no flag twice."""
  flags.DEFINE_enum('dataset', 'math', ['math', 'math500', 'gsm8k'], 'Answer rules for lines without a `dataset` field.')
  flags.DEFINE_bool('skip_bad_lines', False, 'Count and skip malformed lines instead of stopping.')
  flags.DEFINE_float('timeout_s', 5.0, 'Wall-clock limit per MATH answer; slower answers grade False.')
  flags.DEFINE_integer('workers', 0, 'Grading worker processes (0: one per CPU core).')


if __name__ == '__main__':
  define_flags()
  app.run(main)
