"""`wcse_jax.evaluate`: scoring and voting on known answers, greedy determinism and the
CLI's files on the tiny model, and one short few-shot run of the bundled Gemma 3 270M."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import REPO
from wcse_jax import cli, rundir
from wcse_jax.checkpoints import load_model
from wcse_jax.data import Grader, Problem, few_shot_prompt, load_problems
from wcse_jax.evaluate import (
    auto_prompt_kind, evaluate, majority_vote, model_tag, score, trained_dataset, vote_key,
)
from wcse_jax.sampling import Completion


def _completion(problem: int, sample: int, text: str) -> Completion:
  return Completion(
      problem=problem, sample=sample, text=text, token_ids=(), num_tokens=len(text.split()),
      finish_reason='stop', logprob=0.0, prompt_tokens=10, prompt_tokens_computed=10,
  )


def _problem(index: int, gold: str) -> Problem:
  return Problem(f'p{index}', 'gsm8k', f'question {index}', gold, 'solution')


def test_majority_vote_counts_equal_numbers_as_one_answer():
  assert vote_key('18', 'gsm8k') == vote_key('18.0', 'gsm8k') == vote_key('$18', 'gsm8k')
  assert majority_vote(['18', '18.0', '17'], 'gsm8k') == (0, 2)
  assert majority_vote(['17', '1,000', None, '1000.00'], 'gsm8k') == (1, 2)
  assert majority_vote([r'$5,\!525$.', '5525', r'\frac{1}{2}'], 'math') == (0, 2)


def test_majority_vote_ties_go_to_the_answer_given_first():
  assert majority_vote(['17', '18', '18.0', '17'], 'gsm8k') == (0, 2)
  assert majority_vote(['18', '17', '17', '18'], 'gsm8k') == (0, 2)
  assert majority_vote([None, '5', '6'], 'gsm8k') == (1, 1)
  assert majority_vote([None, None], 'gsm8k') is None


def test_math_votes_count_equivalent_answers_together():
  def boxed(problem, sample, answer):
    return _completion(problem, sample, f'So it is $\\boxed{{{answer}}}$.')

  problems = [Problem(f'm{j}', 'math', 'q', r'\frac{1}{2}', 's') for j in range(3)]
  greedy = [boxed(j, 0, '0.5') for j in range(3)]
  voting = [
      # Right answers written two ways outvote a wrong one given twice.
      [boxed(0, i, a) for i, a in enumerate(['7', '0.5', '7', r'\frac{1}{2}', r'\dfrac{1}{2}'])],
      # Wrong answers written three ways outvote the right one given twice.
      [boxed(1, i, a) for i, a in enumerate(['0.5', '3', r'\frac{6}{2}', '0.5', '3.0'])],
      # Distinct wrong answers stay apart: the tie goes to the first.
      [boxed(2, i, a) for i, a in enumerate(['2', '5', '0.5'])],
  ]
  with Grader('math') as grader:
    votes = [p.vote for p in score(problems, greedy, voting, grader).problems]
  assert [(v.answer, v.count, v.correct) for v in votes] == [
      ('0.5', 3, True), ('3', 3, False), ('2', 1, False),
  ]


def test_score_of_known_completions():
  problems = [_problem(0, '18'), _problem(1, '1080'), _problem(2, '7'), _problem(3, '42')]
  greedy = [
      _completion(0, 0, 'She sells 9 * 2 = 18 eggs. The answer is 18.'),
      _completion(1, 0, 'It costs $1,080.00 in all.'),
      _completion(2, 0, 'The answer is 8.'),
      _completion(3, 0, 'I do not know.'),
  ]
  voting = [
      [_completion(0, i, f'The answer is {a}.') for i, a in enumerate(['18', '18.0', '17'])],
      [_completion(1, i, f'The answer is {a}.') for i, a in enumerate(['17', '1080', '17'])],
      [_completion(2, i, t) for i, t in enumerate(['The answer is 7.', 'No idea.', 'The answer is 6.'])],
      [_completion(3, i, 'Hmm.') for i in range(3)],
  ]
  with Grader('gsm8k') as grader:
    result = score(problems, greedy, voting, grader)
  assert result.pass_at_1 == 0.5
  assert [p.correct for p in result.problems] == [True, True, False, False]
  assert [p.extracted for p in result.problems] == ['18', '1,080.00', '8', None]
  assert [p.extracted_by for p in result.problems] == ['answer_is', 'last_number', 'answer_is', 'none']
  votes = [p.vote for p in result.problems]
  assert [(v.answer, v.count, v.correct) for v in votes] == [
      ('18', 2, True), ('17', 2, False), ('7', 1, True), (None, 0, False),
  ]
  assert votes[2].answers == ('7', None, '6')
  assert result.maj_k == 3 and result.maj_at_k == 0.5
  assert result.metrics() == {'pass_at_1': 0.5, 'maj_at_k': {'3': 0.5}}
  counts = result.counts()
  assert (counts['problems'], counts['correct'], counts['no_answer'], counts['maj_correct']) == (4, 2, 1, 2)
  assert (counts['fallback_answers'], counts['correct_by_fallback']) == (1, 1)
  assert counts['finish_reasons'] == {'stop': 4}

  with Grader('gsm8k') as grader:
    greedy_only = score(problems, greedy, None, grader)
  assert greedy_only.maj_at_k is None and greedy_only.metrics() == {'pass_at_1': 0.5}
  assert greedy_only.problems[0].vote is None


def test_prompt_kind_and_model_tag():
  assert auto_prompt_kind('orbax') == 'zero_shot'
  assert [auto_prompt_kind(f) for f in ('gguf', 'hf', 'kaggle')] == ['few_shot'] * 3
  assert model_tag('gemma3-270m') == 'gemma3-270m'
  assert model_tag('/models/gemma-2b.gguf') == 'gemma-2b'
  assert model_tag('google/gemma-2-9b') == 'gemma-2-9b'
  assert model_tag('runs/finetune/wc-high/best/') == 'wc-high-best'


def test_finetuning_and_evaluation_write_inside_the_sampling_run():
  P = pathlib.Path
  assert rundir.finetune_dir('runs/r1/sft/wc-gemma2-9b.jsonl', 'wc-wc-high') == P('runs/r1/finetune/wc-wc-high')
  assert rundir.finetune_dir('/data/pairs.jsonl', 'local') == P('runs/finetune/local')
  assert rundir.eval_path('runs/r1/finetune/local/best/', 'local-best', 'gsm8k') == P('runs/r1/eval/local-best-gsm8k.json')
  assert rundir.eval_path('/abs/r/finetune/x/best', 'x-best', 'math') == P('/abs/r/eval/x-best-math.json')
  assert rundir.eval_path('gemma3-270m', 'gemma3-270m', 'math500') == P('runs/eval/gemma3-270m-math500.json')


def _run_cli(*args, cwd=REPO):
  env = dict(os.environ, HF_HUB_OFFLINE='1', TQDM_DISABLE='1')
  return subprocess.run(
      [sys.executable, '-m', 'wcse_jax.evaluate', *args], cwd=cwd, env=env,
      capture_output=True, text=True, timeout=600,
  )


@pytest.fixture(scope='module')
def cli_run(tiny_model_dir, tmp_path_factory):
  """The tiny model on 3 GSM8K problems with maj@2: (stdout, metrics, per-problem records)."""
  cwd = tmp_path_factory.mktemp('eval')
  result = _run_cli(
      f'--model={tiny_model_dir}', '--dataset=gsm8k', '--limit=3', '--max_new_tokens=12',
      '--maj_k=2', '--num_slots=2', cwd=cwd,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  output = cwd / 'runs' / 'eval' / f'{tiny_model_dir.name}-gsm8k.json'  # the default
  records = [json.loads(line) for line in output.with_suffix('.jsonl').read_text().splitlines()]
  return result.stdout, json.loads(output.read_text()), records


def test_cli_writes_metrics_and_one_line_per_problem(cli_run):
  stdout, metrics, records = cli_run
  assert 'pass@1' in stdout and 'maj@2' in stdout
  assert metrics['counts']['problems'] == 3
  assert (metrics['dataset'], metrics['split'], metrics['prompt']) == ('gsm8k', 'test', 'few_shot')
  assert metrics['settings']['max_new_tokens'] == 12 and metrics['settings']['maj_k'] == 2
  assert set(metrics['maj_at_k']) == {'2'}
  assert [r['id'] for r in records] == ['gsm8k/test/0', 'gsm8k/test/1', 'gsm8k/test/2']
  assert all(len(r['vote']['answers']) == 2 for r in records)
  assert metrics['pass_at_1'] == sum(r['correct'] for r in records) / 3
  assert metrics['maj_at_k']['2'] == sum(r['vote']['correct'] for r in records) / 3
  assert metrics['counts']['generated_tokens'] == sum(r['num_tokens'] for r in records)


def test_greedy_is_deterministic(cli_run, tiny_model_dir):
  """The CLI's greedy texts again, from `evaluate` in this process (same slots and prompt)."""
  _, _, records = cli_run
  loaded = load_model(str(tiny_model_dir))
  problems = load_problems('gsm8k', 'test').problems[:3]
  result = evaluate(
      loaded, problems, prompt=few_shot_prompt('gsm8k'), max_new_tokens=12, num_slots=2
  )
  assert [p.text for p in result.problems] == [r['text'] for r in records]
  assert [p.id for p in result.problems] == [p.id for p in problems]


def test_cli_refuses_a_checkpoint_that_is_not_ours(tiny_model_dir):
  result = _run_cli(f'--checkpoint={tiny_model_dir}', '--dataset=gsm8k')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith('error: ')
  assert 'not one of our checkpoints' in result.stderr


def test_dataset_defaults_to_what_a_finetuned_checkpoint_was_trained_on(tmp_path):
  for trained, evaluated in (('math', 'math500'), ('gsm8k', 'gsm8k')):
    (tmp_path / trained / 'best').mkdir(parents=True)
    (tmp_path / trained / 'best' / 'wcse_config.json').write_text('{}')  # one of our checkpoints
    (tmp_path / trained / 'config.json').write_text(json.dumps({'dataset': trained}))
    assert trained_dataset(str(tmp_path / trained / 'best')) == evaluated
  # A model that is not one of our checkpoints takes nothing from a config.json beside it.
  (tmp_path / 'gsm8k' / 'other').mkdir()
  with pytest.raises(cli.SettingError, match='pass --dataset'):
    trained_dataset(str(tmp_path / 'gsm8k' / 'other'))


def test_cli_without_dataset_says_which_to_pass(tiny_model_dir):
  result = _run_cli(f'--model={tiny_model_dir}')
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and '--dataset=math500, math or gsm8k' in last
  assert 'Traceback' not in result.stderr


@pytest.mark.slow  # 30-40 s on 2 CPU cores (15 s of it loading the GGUF): with it, this file passes 60 s
def test_bundled_gemma3_270m_few_shot_on_two_gsm8k_problems():
  loaded = load_model('gemma3-270m')
  problems = load_problems('gsm8k', 'test').problems[:2]
  result = evaluate(loaded, problems, prompt=few_shot_prompt('gsm8k'), max_new_tokens=64, num_slots=2)
  assert len(result.problems) == 2
  for p in result.problems:
    assert p.finish_reason in ('stop', 'eos', 'length') and 0 < p.num_tokens <= 64
  # A real model continues the chain-of-thought format: it writes numbers, not noise.
  assert all(p.extracted is not None for p in result.problems)


def test_cli_evaluates_any_math_format_file_per_level_and_subject(tiny_model_dir, tmp_path):
  """A user's own MATH-format file (problem, answer or a boxed solution, optional level and type)."""
  problems = tmp_path / 'my_set.jsonl'
  problems.write_text(''.join(json.dumps(r) + '\n' for r in [
      {'problem': 'What is $1+1$?', 'answer': '2', 'level': 'Level 1', 'type': 'Algebra'},
      {'problem': 'What is $2+2$?', 'solution': 'It is $\\boxed{4}$.', 'level': 'Level 2', 'type': 'Algebra'},
      {'problem': 'What is $3+3$?', 'answer': '6', 'level': 'Level 2', 'type': 'Prealgebra'},
  ]))
  result = _run_cli(
      f'--model={tiny_model_dir}', '--dataset=math', f'--data_source={problems}', '--max_new_tokens=8',
      '--num_slots=3', cwd=tmp_path,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  output = tmp_path / 'runs' / 'eval' / f'{tiny_model_dir.name}-math-my_set.json'
  metrics = json.loads(output.read_text())
  assert metrics['counts']['problems'] == 3
  assert {k: v['problems'] for k, v in metrics['by_level'].items()} == {'1': 1, '2': 2}
  assert {k: v['problems'] for k, v in metrics['by_subject'].items()} == {'Algebra': 2, 'Prealgebra': 1}
  for scores in metrics['by_level'].values():
    mean, low, high = scores['pass_at_1']
    assert 0 <= low <= mean <= high <= 1 and high > 0  # a Wilson interval, never [0, 0]
  assert 'level 2: pass@1' in result.stdout
