"""coverage@k, diversity@k and the false-positive rate."""

from __future__ import annotations

import csv
import itertools
import math
import random

import pytest

from wcse_jax import metrics
from wcse_jax.data.jsonl import DataError


@pytest.mark.parametrize('n,c,k', [(10, 0, 1), (10, 3, 1), (10, 3, 5), (10, 8, 3), (30, 1, 10), (5, 5, 5), (200, 7, 150)])
def test_pass_at_k_is_one_minus_a_ratio_of_binomials(n, c, k):
  assert metrics.pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_rejects_impossible_counts():
  with pytest.raises(ValueError, match='k=4 is more than the n=3'):
    metrics.pass_at_k(3, 1, 4)
  with pytest.raises(ValueError):
    metrics.pass_at_k(3, 4, 1)


def test_coverage_at_k():
  correct = [[True, False, False, True], [False] * 4, [True] * 4]
  assert metrics.coverage_at_k(correct, 1) == pytest.approx((0.5 + 0 + 1) / 3)
  assert metrics.coverage_at_k(correct, 2) == pytest.approx((5 / 6 + 0 + 1) / 3)
  assert metrics.coverage_at_k(correct, 4) == pytest.approx(2 / 3)


def test_coverage_at_k_needs_k_samples_per_problem():
  with pytest.raises(ValueError, match='fewer than k=3 samples .*problem 1 with 2'):
    metrics.coverage_at_k([[True] * 3, [False, True]], 3)


def test_solution_key_ignores_case_spacing_and_number_format():
  same = ['So x = 2.50, total 1,000.', 'so  X = 2.5,\ntotal 1000', 'SO x = 2.500, total 1{,}000.', 'so x = 2.5, total 1,\\!000']
  assert len({metrics.solution_key(s) for s in same}) == 1
  assert metrics.solution_key('x = 3.0') == metrics.solution_key('x = 3') != metrics.solution_key('x = 30')
  assert metrics.solution_key('1,2,3') != metrics.solution_key('123')  # not thousands groups
  assert metrics.solution_key('a\\,b') == metrics.solution_key('a b')


def _diversity_by_enumeration(texts, grades, k):
  """Mean over all k-subsets of the number of distinct correct solutions in the subset."""
  counts = [
      len({metrics.solution_key(texts[i]) for i in subset if grades[i]})
      for subset in itertools.combinations(range(len(texts)), k)
  ]
  return sum(counts) / len(counts)


def test_diversity_at_k_is_the_exact_expectation_over_subsets():
  rng = random.Random(0)
  solutions, correct = [], []
  for _ in range(6):
    texts = [rng.choice(['a = 1', 'A =  1', 'b = 2', 'c = 3', 'd = 4.0', 'd = 4']) for _ in range(8)]
    solutions.append(texts)
    correct.append([rng.random() < 0.6 for _ in texts])
  for k in (1, 3, 8):
    expected = sum(_diversity_by_enumeration(t, g, k) for t, g in zip(solutions, correct)) / len(solutions)
    assert metrics.diversity_at_k(solutions, correct, k) == pytest.approx(expected)


def test_diversity_at_k_docstring_example():
  correct = [[True, False, False, True], [False] * 4]
  solutions = [['So x is 2.', 'x is 3', 'x is 4', 'so  x is 2.0'], ['a', 'b', 'c', 'd']]
  assert metrics.diversity_at_k(solutions, correct, 4) == 0.5
  with pytest.raises(ValueError, match='same shape'):
    metrics.diversity_at_k(solutions, correct[:1], 4)


def test_wilson_interval():
  low, high = metrics.wilson_interval(5, 50)
  assert (low, high) == (pytest.approx(0.04348, abs=1e-5), pytest.approx(0.21360, abs=1e-5))
  assert metrics.wilson_interval(0, 10)[0] == 0.0 and metrics.wilson_interval(10, 10)[1] == 1.0
  assert metrics.wilson_interval(5, 50, 0.99)[0] < low


@pytest.mark.parametrize('reply,verdict', [
    ('Step 2 divides by zero.\nVerdict: invalid', False),
    ('All steps check out.\nVerdict: Valid.', True),
    ('**Verdict: valid**', True),
    ('Verdict: valid\n...\nVerdict: valid', True),
    ('Verdict: valid\nVerdict: invalid', None),
    ('Verdict: valid or invalid', None),
    ('The verdict: valid.', None),
    ('I think it is valid.', None),
    ('', None),
])
def test_parse_verdict_is_strict(reply, verdict):
  assert metrics.parse_verdict(reply) is verdict


def _candidates(count: int) -> list[metrics.Candidate]:
  return [metrics.Candidate(f'test/{i}.json', f'Q{i}, with "quotes",\nand lines', f'gold {i}', f'sol {i}') for i in range(count)]


def test_judge_false_positive_rate_through_a_generate_callable():
  candidates = _candidates(10)
  seen = []

  def judge(prompts: list[str]) -> list[str]:
    seen.extend(prompts)
    return ['Verdict: invalid'] * 2 + ['Verdict: valid'] * 7 + ['no idea']

  report = metrics.judge_false_positive_rate(candidates, judge)
  assert len(seen) == 10 and 'Student solution:\nsol 3' in seen[3] and 'Reference solution:\ngold 3' in seen[3]
  assert (report.estimate.invalid, report.estimate.judged, report.estimate.unparsed) == (2, 9, 1)
  assert report.estimate.rate == pytest.approx(2 / 9)
  assert (report.estimate.low, report.estimate.high) == metrics.wilson_interval(2, 9)
  assert report.verdicts[:3] == (False, False, True) and report.verdicts[-1] is None


def test_labelling_csv_round_trip(tmp_path):
  path = tmp_path / 'labels.csv'
  candidates = _candidates(40)
  sample = metrics.export_for_labelling(candidates, path, sample_size=12, seed=3)
  assert sample == metrics.export_for_labelling(candidates, tmp_path / 'again.csv', sample_size=12, seed=3)
  assert sample != metrics.export_for_labelling(candidates, tmp_path / 'other.csv', sample_size=12, seed=4)
  with open(path, encoding='utf-8', newline='') as f:
    rows = list(csv.DictReader(f))
  assert [r['problem_id'] for r in rows] == [c.problem_id for c in sample] and rows[0]['label'] == ''
  with pytest.raises(DataError, match=r"row 1 \(line 3\): label '' is not 'valid' or 'invalid'"):
    metrics.read_labels(path)
  for i, row in enumerate(rows):
    row['label'] = ' Invalid ' if i < 3 else 'valid'
  with open(path, 'w', encoding='utf-8', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=metrics.LABEL_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  labelled = metrics.read_labels(path)
  assert [c for c, _ in labelled] == sample
  estimate = metrics.false_positive_rate_from_labels(path)
  assert (estimate.invalid, estimate.judged, estimate.rate) == (3, 12, 0.25)
  assert estimate.low < 0.25 < estimate.high


def test_labels_csv_errors(tmp_path):
  path = tmp_path / 'bad.csv'
  path.write_text('problem_id,question,label\nx,y,valid\n', encoding='utf-8')
  with pytest.raises(DataError, match=r"missing column\(s\) \['gold_solution', 'solution'\]"):
    metrics.read_labels(path)
  path.write_text('problem_id,question,gold_solution,solution,label\na,b,c,d,valid\ne,f,g,h,maybe\n')
  with pytest.raises(DataError, match=r"row 2 \(line 3\): label 'maybe'"):
    metrics.read_labels(path)
  with pytest.raises(DataError, match='cannot read'):
    metrics.read_labels(tmp_path / 'missing.csv')
