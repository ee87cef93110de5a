"""Agreement of the grader with a labelled set, per class, through `python -m wcse_jax.grade`. Prints JSON.

    python benchmarks/grading_agreement.py                      # tests/data/grading/labelled.jsonl
    python benchmarks/grading_agreement.py --labelled=mine.jsonl --show_misses

Each line of the labelled file has `gold`, a `completion` or an `answer`,
`dataset`, `label` (is the candidate right?) and `class`. The file is graded by
the command line tool, as a user would grade another sampler's output; a miss is
a line whose grade differs from its label: a false positive (graded right,
labelled wrong) or a false negative.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile

from absl import app, flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LABELLED = flags.DEFINE_string(
    'labelled', os.path.join(_REPO, 'tests', 'data', 'grading', 'labelled.jsonl'), 'Labelled cases (JSONL).')
_SHOW_MISSES = flags.DEFINE_bool('show_misses', False, 'Print every miss to stderr.')


def agreement(labelled_path: str, show_misses: bool = False) -> dict:
  """Grades `labelled_path` with `python -m wcse_jax.grade`; agreement overall and per class."""
  with tempfile.TemporaryDirectory() as tmp:
    graded_path = os.path.join(tmp, 'graded.jsonl')
    subprocess.run(
        [sys.executable, '-m', 'wcse_jax.grade', labelled_path, graded_path, '--dataset=math'],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    with open(graded_path, encoding='utf-8') as f:
      graded = [json.loads(line) for line in f]
  per_class: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for g in graded:
    counts = per_class[g.get('class', 'all')]
    counts['cases'] += 1
    counts['agree'] += g['correct'] == g['label']
    counts['false_positives'] += g['correct'] and not g['label']
    counts['false_negatives'] += g['label'] and not g['correct']
    if show_misses and g['correct'] != g['label']:
      shown = {k: (v[-300:] if isinstance(v, str) else v) for k, v in g.items()}
      print(json.dumps(shown, ensure_ascii=False), file=sys.stderr)
  total = sum(per_class.values(), collections.Counter())

  def row(c):
    return dict(c, agreement=round(c['agree'] / c['cases'], 4))

  return {
      'labelled': os.path.relpath(labelled_path, _REPO),
      'all': row(total),
      'per_class': {name: row(c) for name, c in sorted(per_class.items())},
  }


def main(argv: list[str]) -> None:
  del argv
  path = _LABELLED.value
  if not os.path.exists(path) and os.path.exists(os.path.join(_REPO, 'tests', 'data', 'grading', path)):
    path = os.path.join(_REPO, 'tests', 'data', 'grading', path)  # --labelled=labelled_second.jsonl
  print(json.dumps(agreement(path, _SHOW_MISSES.value), indent=1))


if __name__ == '__main__':
  app.run(main)
