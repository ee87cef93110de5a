"""python -m wcse_jax.grade: grading JSONL made anywhere by the same rules."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

LINES = [
    {'id': 'a', 'gold': '\\frac{1}{2}', 'completion': 'x = 0.5.\nFinal Answer: The final answer is $0.5$. I hope it is correct.'},
    {'id': 'b', 'gold': '(0,1]', 'answer': '[0,1]'},
    {'id': 'c', 'gold': 18, 'completion': 'She makes 9 * 2 = 18 dollars. The answer is $18.', 'dataset': 'gsm8k'},
    {'id': 'd', 'gold': '1080', 'answer': '1,080.00', 'dataset': 'gsm8k', 'model': 'vllm'},
    {'id': 'e', 'gold': '5', 'completion': 'First 7, then 5', 'dataset': 'gsm8k'},
    {'id': 'f', 'gold': '7', 'completion': 'no idea'},
]


def _grade(tmp_path: pathlib.Path, lines: list[str], *flags: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
  in_path, out_path = tmp_path / 'in.jsonl', tmp_path / 'out.jsonl'
  in_path.write_text(''.join(line + '\n' for line in lines), encoding='utf-8')
  result = subprocess.run(
      [sys.executable, '-m', 'wcse_jax.grade', str(in_path), str(out_path), '--workers=1', *flags],
      cwd=REPO, capture_output=True, text=True, timeout=300,
  )
  graded = [json.loads(line) for line in out_path.read_text().splitlines()] if out_path.exists() else []
  return result, graded


def test_grades_every_line_and_keeps_every_field(tmp_path):
  result, graded = _grade(tmp_path, [json.dumps(line) for line in LINES])
  assert result.returncode == 0, result.stderr
  assert [g['id'] for g in graded] == list('abcdef')
  for original, out in zip(LINES, graded):
    assert {k: out[k] for k in original} == original
  summary = [(g['extracted'], g['correct'], g['grade_reason'], g['extracted_by']) for g in graded]
  assert summary == [
      ('0.5', True, 'equivalent', 'final_answer'),
      ('[0,1]', False, 'not_equivalent', 'given'),
      ('18', True, 'equivalent', 'answer_is'),
      ('1,080.00', True, 'equivalent', 'given'),
      ('5', True, 'equivalent', 'last_number'),
      (None, False, 'no_answer', 'none'),
  ]
  assert 'graded 6 lines: 4 correct (66.7%), 0 skipped, 1 by the GSM8K last-number fallback' in result.stdout


def test_dataset_flag_sets_the_rules_for_lines_without_their_own(tmp_path):
  lines = [json.dumps({'gold': '72', 'completion': 'so 48 + 24 = 72 clips.\n#### 72'})]
  result, graded = _grade(tmp_path, lines, '--dataset=gsm8k')
  assert result.returncode == 0 and graded[0]['correct'] and graded[0]['extracted_by'] == '####'


def test_a_malformed_line_stops_with_file_and_line(tmp_path):
  lines = [json.dumps(LINES[2]), '{"gold": "1", "answer": ', json.dumps(LINES[3])]
  result, graded = _grade(tmp_path, lines)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'in.jsonl'}:2: not valid JSON (Expecting value at column 25)"
  assert 'Traceback' not in result.stderr


def test_skip_bad_lines_counts_and_skips(tmp_path):
  lines = [
      json.dumps(LINES[2]),
      'not json',
      json.dumps({'gold': '1'}),
      json.dumps({'gold': '1', 'answer': '1', 'dataset': 'aime'}),
      json.dumps({'gold': ['1'], 'answer': '1'}),
      json.dumps(LINES[3]),
  ]
  result, graded = _grade(tmp_path, lines, '--skip_bad_lines')
  assert result.returncode == 0, result.stderr
  assert [g['id'] for g in graded] == ['c', 'd']
  assert '4 skipped' in result.stdout
  assert f"skipped {tmp_path / 'in.jsonl'}:3: needs a 'completion' (or 'text') or an 'answer' field" in result.stderr
  assert "unknown dataset 'aime'" in result.stderr and "'gold' must be a string or a number" in result.stderr
