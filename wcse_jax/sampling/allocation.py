r"""Adaptive allocation: the uniform run's FLOPs, spent in rounds where they still buy coverage.

A uniform run draws S samples of every problem, however early a problem is
solved. Adaptive allocation (`sample --allocation=adaptive`) draws in rounds:
round 0 draws the first `round_samples` samples of every problem (what the
uniform run draws first); after each round a problem stops drawing once it has
`stop_after_correct` correct samples, and the next round gives each problem
still drawing its next `round_samples` samples, fewest-correct first, as long as
the round's worst-case cost fits in what is left of the budget; the first
problem whose whole share does not fit gets the samples that do, and the
round ends there:

    budget  = the uniform run's cost, estimated from the samples drawn so far:
              prefix + sum_j prompt_j + S * sum_j (mean generated tokens of problem j)
    spent   = the prefix once (the sampler keeps its KV cache from round to
              round) + per round, sum over its problems of prompt_j (each round
              prefills them again) + every generated token
    a sample fits if spent + the round's cost with every sample at
              max_new_tokens <= budget

Costs are in tokens; FLOPs are 2 x params x tokens for one model, so the same
comparison holds in FLOPs. Sample i of problem j depends only on (seed, j, i),
and each round's plan only on the grades and token counts of the rounds
before it, so `next_round` replays the rounds from the samples written so far:
a run killed mid-round resumes with the rest of that round and ends with the
files of an uninterrupted run.

    plan = next_round(samples, problems=range(40), prompt_tokens=..., prefix_tokens=700,
                      uniform_samples=37, round_samples=4, stop_after_correct=4, max_new_tokens=192)
    plan.pairs     # [(3, 8), (3, 9), ...]: the (problem, sample) pairs to draw now; [] when done
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class Round:
  pairs: tuple[tuple[int, int], ...]  # (problem, sample) to draw; empty when the run is done
  index: int  # which round (0: the uniform start)
  spent_tokens: int  # by the finished rounds
  budget_tokens: float  # the uniform run's estimated cost


def next_round(
    samples: Iterable[Mapping],
    *,
    problems: Sequence[int],
    prompt_tokens: Mapping[int, int],
    prefix_tokens: int,
    uniform_samples: int,
    round_samples: int,
    stop_after_correct: int,
    max_new_tokens: int,
) -> Round:
  """The pairs still to draw: the rest of an unfinished round, or the next round's, or none.

  `samples` are the graded samples written so far ('problem_index', 'sample',
  'correct', 'num_tokens'); `prompt_tokens[j]` is problem j's own prompt length
  (without the shared prefix). See the module docstring.
  """
  if uniform_samples < 1 or round_samples < 1 or stop_after_correct < 1:
    raise ValueError('uniform_samples, round_samples and stop_after_correct must be >= 1')
  have = {(s['problem_index'], s['sample']): s for s in samples}
  drawn = {j: 0 for j in problems}
  correct = {j: 0 for j in problems}
  generated = {j: 0 for j in problems}
  plan = [(j, i) for j in problems for i in range(min(round_samples, uniform_samples))]
  spent, budget, index = 0, float('inf'), 0
  while plan:
    missing = tuple(p for p in plan if p not in have)
    if missing:
      return Round(missing, index, spent, budget)
    spent += (prefix_tokens if index == 0 else 0) + sum(prompt_tokens[j] for j in {j for j, _ in plan})
    for j, i in plan:
      s = have[(j, i)]
      drawn[j] += 1
      correct[j] += bool(s['correct'])
      generated[j] += s['num_tokens']
      spent += s['num_tokens']
    budget = prefix_tokens + sum(prompt_tokens[j] for j in problems) + uniform_samples * sum(
        generated[j] / drawn[j] for j in problems)
    active = sorted((j for j in problems if correct[j] < stop_after_correct), key=lambda j: (correct[j], drawn[j], j))
    chosen, left = {}, budget - spent
    for j in active:
      n = min(round_samples, int((left - prompt_tokens[j]) // max_new_tokens))
      if n > 0:
        chosen[j] = n
        left -= prompt_tokens[j] + n * max_new_tokens
      if n < round_samples:
        break
    plan = [(j, drawn[j] + t) for j in sorted(chosen) for t in range(chosen[j])]
    index += 1
  return Round((), index, spent, budget)
