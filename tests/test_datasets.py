"""Dataset loaders and prompt formats."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from wcse_jax.data import extraction, problems, prompts
from wcse_jax.data.jsonl import DataError

BUNDLED = pathlib.Path(problems.__file__).parent / 'bundled'


@pytest.mark.parametrize('name,split,count', [
    ('gsm8k', 'train', 7473), ('gsm8k', 'test', 1319),
    ('math', 'train', 7500), ('math', 'test', 5000), ('math500', 'test', 500),
])
def test_bundled_counts_and_unique_ids(name, split, count):
  loaded = problems.load_problems(name, split)
  assert len(loaded) == count and loaded.skipped == ()
  assert len({p.id for p in loaded}) == count


def test_bundled_files_match_sources_md():
  table = re.findall(r'^\| (\S+)(?: \(derived\))? \| \d+ \| ([0-9a-f]{64}) \|$',
                     (BUNDLED / 'SOURCES.md').read_text(), re.MULTILINE)
  assert len(table) == 8
  for path, sha256 in table:
    assert hashlib.sha256((BUNDLED / path).read_bytes()).hexdigest() == sha256, path


def test_math_problem_fields():
  first = problems.load_problems('math', 'test')[0]
  assert first.id == 'test/algebra/1.json' and first.dataset == 'math'
  assert first.answer == '2' and first.level == 3 and first.subject == 'Algebra'
  assert first.question.startswith('How many vertical asymptotes')
  assert r'\boxed{2}' in first.solution


def test_math500_is_a_subset_of_math_test_with_the_same_answers():
  full = {p.id: p for p in problems.load_problems('math', 'test')}
  for p in problems.load_problems('math500', 'test'):
    assert full[p.id].answer == p.answer and full[p.id].question == p.question
    assert p.level in (1, 2, 3, 4, 5)


def test_gsm8k_problem_fields():
  train = problems.load_problems('gsm8k', 'train')
  assert train[0].id == 'gsm8k/train/0' and train[0].answer == '72' and train[0].dataset == 'gsm8k'
  assert train[0].solution.endswith('#### 72') and '<<' not in train[0].solution
  with_commas = [p for p in train if '#### 1,080' in p.solution]
  assert with_commas and all(p.answer == '1080' for p in with_commas)


def _write(path: pathlib.Path, lines: list[str]) -> str:
  path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
  return str(path)


def test_local_jsonl_errors_name_file_and_line(tmp_path):
  path = _write(tmp_path / 'g.jsonl', [
      json.dumps({'question': 'Q1', 'answer': 'so\n#### 1,000'}),
      '',
      '{"question": "Q2", "answer": ',  # truncated JSON
      json.dumps({'question': 'Q3', 'answer': 'no marker'}),
      json.dumps(['a list']),
      json.dumps({'answer': '#### 4'}),
  ])
  with pytest.raises(DataError, match=re.escape(f'{path}:3: not valid JSON')):
    problems.load_problems('gsm8k', 'test', source=path)
  loaded = problems.load_problems('gsm8k', 'test', source=path, on_error='skip')
  assert [(p.id, p.answer) for p in loaded] == [('gsm8k/test/0', '1000')]
  assert len(loaded.skipped) == 4
  assert loaded.skipped[1] == f"{path}:4: the 'answer' field has no '#### <number>' line"
  assert loaded.skipped[2].startswith(f'{path}:5: expected a JSON object')
  assert loaded.skipped[3] == f"{path}:6: missing field 'question'"


def test_local_math_jsonl_answer_from_field_or_boxed(tmp_path):
  path = _write(tmp_path / 'm.jsonl', [
      json.dumps({'problem': 'P1', 'solution': r'so $\boxed{\frac{1}{2}}$', 'level': 'Level 2', 'type': 'Algebra'}),
      json.dumps({'unique_id': 'mine/7', 'problem': 'P2', 'solution': 's', 'answer': '7'}),
      json.dumps({'problem': 'P3', 'solution': 'no box here'}),
  ])
  with pytest.raises(DataError, match=re.escape(f'{path}:3: no gold answer')):
    problems.load_problems('math', 'train', source=path)
  loaded = problems.load_problems('math', 'train', source=path, on_error='skip')
  assert [(p.id, p.answer, p.level, p.subject) for p in loaded] == [
      ('math/train/0', r'\frac{1}{2}', 2, 'Algebra'), ('mine/7', '7', None, None)]
  assert len(loaded.skipped) == 1


def test_unknown_names_and_missing_files():
  with pytest.raises(DataError, match='unknown dataset'):
    problems.load_problems('aime', 'test')
  with pytest.raises(DataError, match="no split 'train'"):
    problems.load_problems('math500', 'train')
  with pytest.raises(DataError, match='cannot read /no/such.jsonl'):
    problems.load_problems('math', 'test', source='/no/such.jsonl')


def test_unreachable_hub_fails_fast_with_one_clear_line(monkeypatch):
  monkeypatch.setenv('HF_ENDPOINT', 'http://127.0.0.1:9')  # nothing listens on the discard port
  monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
  monkeypatch.delenv('HF_DATASETS_OFFLINE', raising=False)
  with pytest.raises(DataError) as error:
    problems.load_problems('math500', 'test', source='hf')
  message = str(error.value)
  assert '\n' not in message and 'unreachable' in message and "source='bundled'" in message


def test_offline_mode_is_respected(tmp_path):
  code = (
      'from wcse_jax.data import load_problems\n'
      'try:\n  load_problems("gsm8k", "test", source="hf")\n'
      'except Exception as e:\n  print(type(e).__name__, e)\n'
  )
  env = dict(os.environ, HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', HF_HOME=str(tmp_path))
  out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120).stdout
  assert out.startswith('DataError cannot load openai/gsm8k (test) from the Hugging Face hub')
  assert "use source='bundled'" in out


def test_hub_rows_become_problems(monkeypatch):
  """The hub path, with load_dataset faked: hendrycks_math rows (no answer, no id) from 7 configs."""
  datasets = pytest.importorskip('datasets')
  asked = []

  def fake_load_dataset(repo, config, split):
    asked.append((repo, config, split))
    return [{'problem': f'{config} problem', 'solution': r'$\boxed{3}$', 'level': 'Level 4', 'type': 'Geometry'}]

  monkeypatch.setattr(problems, '_check_hub_reachable', lambda repo, split: None)
  monkeypatch.setattr(datasets, 'load_dataset', fake_load_dataset)
  loaded = problems.load_problems('math', 'test', source='hf')
  assert len(asked) == 7 and asked[0] == ('EleutherAI/hendrycks_math', 'algebra', 'test')
  assert loaded[1] == problems.Problem(
      'math/test/1', 'math', 'counting_and_probability problem', '3', r'$\boxed{3}$', 4, 'Geometry')


def test_tfds_source_without_tfds_is_a_clear_error():
  if importlib.util.find_spec('tensorflow_datasets'):  # the optional 'tfds' extra
    pytest.skip('tensorflow-datasets is installed')
  with pytest.raises(DataError, match=re.escape("pip install 'wcse_jax[tfds]'")):
    problems.load_problems('gsm8k', 'test', source='tfds')


def test_tfds_names_follow_its_huggingface_namespace():
  assert problems._tfds_name('openai/gsm8k', 'main') == 'huggingface:openai__gsm8k/main'
  assert problems._tfds_name('HuggingFaceH4/MATH-500', None) == 'huggingface:huggingfaceh4__math_500'


# Prompts.


@pytest.mark.parametrize('dataset', ['math', 'math500', 'gsm8k'])
def test_prefix_plus_question_is_the_whole_prompt(dataset):
  prompt = prompts.few_shot_prompt(dataset)
  for p in problems.load_problems('gsm8k' if dataset == 'gsm8k' else 'math', 'test').problems[:20]:
    assert prompt.render(p.question) == prompt.prefix + prompt.format_question(p.question)


def test_minerva_prompt_matches_the_harness_format():
  prompt = prompts.few_shot_prompt('math')
  shots = prompts.load_shots('math_4shot')
  expected_prefix = '\n\n'.join(f"Problem:\n{s['question']}\n\nSolution: {s['solution']}" for s in shots) + '\n\n'
  assert prompt.prefix == expected_prefix
  assert prompt.format_question('What is $1+1$?') == 'Problem:\nWhat is $1+1$?\n\nSolution:'
  assert prompt.prefix.count('Problem:\n') == 4 and prompt.stop == ('Problem:',)
  assert prompt.prefix.startswith('Problem:\nFind the domain of the expression')
  assert prompt.prefix.endswith('I hope it is correct.\n\n')
  fixed = prompts.few_shot_prompt('math', latex_fixed=True)
  assert fixed.prefix.count('\\\\\n') == prompt.prefix.count('\\\\\n') + 2


def test_gsm8k_prompt_matches_the_harness_format():
  prompt = prompts.few_shot_prompt('gsm8k')
  assert prompt.prefix.startswith('Q: There are 15 trees in the grove.')
  assert prompt.prefix.count('\nA: ') == 8 and prompt.prefix.endswith('The answer is 8.\n\n')
  assert prompt.format_question('How many?') == 'Q: How many?\nA:'
  assert prompt.stop == ('Q:', '\n\n\n')


def test_shots_answers_are_what_the_extractor_reads():
  for dataset, shots in (('math', 'math_4shot'), ('gsm8k', 'gsm8k_8shot')):
    for shot in prompts.load_shots(shots):
      assert extraction.extract_answer(shot['solution'], dataset).answer == shot['answer']


def test_zero_shot_format_and_training_pairs():
  assert prompts.zero_shot_prompt('math').prefix == ''
  assert prompts.zero_shot_prompt('math').render('P?') == 'Problem:\nP?\n\nSolution:'
  pair = prompts.training_pair('What is 1+1?', ' 1+1=2. The answer is 2. ', 'gsm8k')
  assert pair == prompts.TrainingPair('Q: What is 1+1?\nA:', ' 1+1=2. The answer is 2.')


def test_gold_solutions_rewritten_with_the_final_answer_sentence():
  for name in ('math', 'gsm8k'):
    for p in problems.load_problems(name, 'test').problems[:50]:
      rewritten = prompts.solution_with_final_answer(p.solution, p.answer, p.dataset)
      found = extraction.extract_answer(rewritten, p.dataset)
      assert found.answer == p.answer
      assert found.method == ('final_answer' if name == 'math' else 'answer_is')
      assert '####' not in rewritten
