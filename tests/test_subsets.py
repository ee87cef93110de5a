"""SFT sets in the ecosystem's format, their card, and the ablation subsets, on a small synthetic run."""

from __future__ import annotations

import json

import datasets
import pytest

from wcse_jax import rundir, sample, subsets, summary
from wcse_jax.data import DataError
from wcse_jax.data.problems import Problem
from wcse_jax.sampling import budget
from wcse_jax.train import data as sft_data

NUM_PROBLEMS = 12


def _write_run(run_dir, monkeypatch):
  """WC: 6 samples a problem, right on problems 0-8 (from sample 2 on for odd ones); SE: 2, right on 0-3."""
  problems = [Problem(id=f'gsm8k/{i}', dataset='gsm8k', question=f'What is {i} + 1?', answer=str(i + 1), solution='')
              for i in range(NUM_PROBLEMS)]
  plan = budget.plan(budget=2, match='compute', wc_params=1e9, se_params=3e9)
  assert (plan.wc_samples, plan.se_samples) == (6, 2)
  runs = [sample.ModelRun('wc', 'small', plan.wc_samples, 10**9), sample.ModelRun('se', 'big', plan.se_samples, 3 * 10**9)]
  for run, solved in ((runs[0], range(9)), (runs[1], range(4))):
    with rundir.ShardWriter(rundir.shard_path(run_dir, run.directory)) as writer:
      writer.write([
          {'problem_index': p, 'problem_id': problems[p].id, 'sample': i, 'model': run.name,
           'text': f'{p} + 1 = {p + 1}. Way {i % 3}. The answer is {p + 1}.', 'num_tokens': 10, 'prompt_tokens': 5,
           'finish_reason': 'eos', 'logprob': -1.0, 'gold': problems[p].answer, 'extracted': str(p + 1),
           'correct': p in solved and (p % 2 == 0 or i >= 2 or run.role == 'se'), 'grade_reason': 'equivalent'}
          for p in range(NUM_PROBLEMS) for i in range(run.samples)
      ])
  config = {'budget': 2, 'seed': 0, 'dataset': 'gsm8k', 'split': 'test', 'temperature': 0.7, 'top_k': 40,
            'max_new_tokens': 32}
  rundir.check_or_write_config(run_dir, config)
  monkeypatch.setattr(sample, '_prompt_lengths', lambda model, dataset, problems: (0, [0] * len(problems)))
  return sample.summarize(config, plan, runs, problems, run_dir)


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
  _write_run(tmp_path, monkeypatch)
  return tmp_path


def test_sft_sets_load_with_datasets_and_round_trip_through_the_finetune_loader(run_dir, tmp_path_factory):
  card = (run_dir / 'sft' / 'README.md').read_text()
  assert 'config_name: wc-small' in card and 'grader' in card and 'FLOPs' in card
  loaded = datasets.load_dataset(str(run_dir / 'sft'), 'wc-small', split='train')
  records = rundir.read_lines(run_dir / 'sft' / 'wc-small.jsonl')
  assert len(loaded) == len(records) == 9 * 3  # 3 distinct ways on each of the 9 solved problems
  first = loaded[0]['messages']
  assert [m['role'] for m in first] == ['user', 'assistant'] and first[0]['content'] == records[0]['question']
  recipe = json.loads((run_dir / 'sft' / 'wc-small.recipe.json').read_text())
  assert recipe['kind'] == 'all_correct' and recipe['examples'] == 27 and recipe['problems'] == 9
  # Only the chat column: the finetune loader reads the same training pairs.
  chat_only = tmp_path_factory.mktemp('chat') / 'chat.jsonl'
  chat_only.write_text(''.join(json.dumps({'messages': m}) + '\n' for m in loaded['messages']))
  from_chat, _ = sft_data.read_pairs(chat_only, 'gsm8k')
  from_fields, _ = sft_data.read_pairs(run_dir / 'sft' / 'wc-small.jsonl', 'gsm8k')
  assert from_chat == from_fields


def test_each_subset_has_the_property_it_claims(run_dir):
  made = subsets.make_subsets(run_dir, fractions=[0.5], coverage=['same_as_se', '0.25'], seed=0)
  read = lambda name: rundir.read_lines(run_dir / 'sft' / f'{name}.jsonl')  # noqa: E731
  problems_of = lambda rows: {r['problem_id'] for r in rows}  # noqa: E731
  full = read('wc-small')

  number = read('wc-small-number_matched')  # the first 2 of 6 samples: odd problems need sample >= 2
  assert {r['sample'] for r in number} <= {0, 1}
  assert problems_of(number) == {f'gsm8k/{p}' for p in range(0, 9, 2)}

  half = read('wc-small-problems_0.5')
  recipe = json.loads((run_dir / 'sft' / 'wc-small-problems_0.5.recipe.json').read_text())
  assert recipe['fraction'] == 0.5 and recipe['seed'] == 0
  assert half == [r for r in full if r['problem_id'] in problems_of(half)]  # whole problems, in order
  assert len(problems_of(half)) <= NUM_PROBLEMS // 2

  one = read('wc-small-one_per_problem')
  assert len(one) == len(problems_of(one)) == 9 and problems_of(one) == problems_of(full)

  same = read('wc-small-coverage_same_as_se')
  assert len(problems_of(same)) == len(problems_of(read('se-big'))) == 4
  assert same == [r for r in full if r['problem_id'] in problems_of(same)]  # all of their solutions
  assert len(problems_of(read('wc-small-coverage_0.25'))) == 3  # 0.25 * 12
  assert 'se-big-coverage_same_as_se' not in made
  # Reproducible, and listed in the card.
  again = subsets.make_subsets(run_dir, fractions=[0.5], coverage=['same_as_se', '0.25'], seed=0)
  assert again == made and read('wc-small-problems_0.5') == half
  assert 'wc-small-coverage_0.25' in (run_dir / 'sft' / 'README.md').read_text()
  loaded = datasets.load_dataset(str(run_dir / 'sft'), 'wc-small-one_per_problem', split='train')
  assert len(loaded) == 9


def test_bad_subset_requests_and_an_offline_push_end_in_one_sentence(run_dir, tmp_path):
  with pytest.raises(DataError, match='se-big covers only 4 of 12 problems'):
    subsets.make_subsets(run_dir, fractions=[], coverage=['0.9'], seed=0)
  with pytest.raises(DataError, match='finished sampling run'):
    subsets.make_subsets(tmp_path / 'nothing', fractions=[], coverage=[], seed=0)
  with pytest.raises(DataError, match='could not push .* to the hub as org/name') as raised:
    subsets.push_to_hub(run_dir, 'org/name')
  assert '\n' not in str(raised.value)


def test_metrics_record_the_grader_version(run_dir):
  from wcse_jax.data import grader  # pylint: disable=g-import-not-at-top

  assert json.loads((run_dir / 'metrics.json').read_text())['grader_version'] == grader.VERSION
  assert summary.sft_sets(run_dir)['se-big']['grader_version'] == grader.VERSION
