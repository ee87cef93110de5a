"""Grading throughput, with and without the cache, on a high-budget-like mix. Prints JSON.

    python benchmarks/grading.py                          # ~1 minute on 2 CPU cores
    python benchmarks/grading.py --problems=5000 --samples_per_problem=30

The mix: for each of `problems` MATH test problems, `samples_per_problem`
completions, each one of `distinct_per_problem` candidates: the problem's own
gold solution (right) or the gold solution of another problem (wrong answer),
drawn at random. As in a high-budget run (30 samples per problem), answers
repeat: a problem's samples share a handful of distinct final answers.

    uncached  every distinct (gold, answer) pair once, so every answer goes to
              math-verify in the worker processes: the cost of a new answer
    cached    the whole mix through a fresh Grader: each distinct pair is verified
              once, repeats come from the cache
    warm      the same mix again: extraction and cache look-ups only
GSM8K answers are compared in-process (exact decimals) and reported apart.
"""

from __future__ import annotations

import json
import os
import random
import time

from absl import app, flags

from wcse_jax.data import Grader, load_problems

_PROBLEMS = flags.DEFINE_integer('problems', 1000, 'MATH test problems in the mix.')
_SAMPLES = flags.DEFINE_integer('samples_per_problem', 30, 'Completions per problem.')
_DISTINCT = flags.DEFINE_integer('distinct_per_problem', 4, 'Distinct completions per problem.')
_WORKERS = flags.DEFINE_integer('workers', 0, 'Grading worker processes (0: one per CPU core).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the mix.')


def _mix(name: str, rng: random.Random) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
  """(all samples, the distinct ones) as (gold answer, completion) pairs."""
  pool = load_problems(name, 'test').problems
  chosen = pool[: _PROBLEMS.value] if name == 'math' else pool
  samples, distinct = [], []
  for problem in chosen:
    others = rng.sample(pool, _DISTINCT.value - 1)
    candidates = [(problem.answer, s.solution) for s in [problem, *others]]
    distinct.extend(candidates)
    samples.extend(rng.choice(candidates) for _ in range(_SAMPLES.value))
  return samples, distinct


def _rate(grader: Grader, pairs: list[tuple[str, str]], dataset: str) -> float:
  start = time.perf_counter()
  for i in range(0, len(pairs), 4096):  # chunks, as a sampler hands them over
    grader.grade_many(pairs[i:i + 4096], dataset=dataset)
  return len(pairs) / (time.perf_counter() - start)


def main(argv: list[str]) -> None:
  del argv
  rng = random.Random(_SEED.value)
  samples, distinct = _mix('math', rng)
  workers = _WORKERS.value or os.cpu_count()

  start = time.perf_counter()
  with Grader('math', workers=workers) as grader:
    grader.grade('1', '2', extract=False)  # start the workers
    start_s = time.perf_counter() - start
    uncached = _rate(grader, distinct, 'math')
    verified = grader.verified - 1
  with Grader('math', workers=workers) as grader:
    grader.grade('1', '2', extract=False)
    cached = _rate(grader, samples, 'math')
    warm = _rate(grader, samples, 'math')
    correct = sum(r.correct for r in grader.grade_many(samples))
  gsm8k_samples, _ = _mix('gsm8k', rng)
  with Grader('gsm8k') as grader:
    gsm8k = _rate(grader, gsm8k_samples, 'gsm8k')

  print(json.dumps({
      'cpus': os.cpu_count(),
      'workers': workers,
      'worker_start_s': round(start_s, 2),
      'math': {
          'problems': len(samples) // _SAMPLES.value,
          'samples': len(samples),
          'distinct_pairs': len(set(distinct)),
          'math_verify_calls': verified,  # the rest are exact string matches
          'correct_share': round(correct / len(samples), 3),
          'uncached_answers_per_s': round(uncached, 1),
          'cached_answers_per_s': round(cached, 1),
          'warm_cache_answers_per_s': round(warm, 1),
          'cached_over_uncached': round(cached / uncached, 1),
      },
      'gsm8k': {'samples': len(gsm8k_samples), 'answers_per_s': round(gsm8k, 1)},
  }, indent=2))


if __name__ == '__main__':
  app.run(main)
