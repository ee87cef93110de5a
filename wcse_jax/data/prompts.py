r"""Prompt formats: the few-shot prefix shared by every problem, kept apart from each problem's part.

    prompt = few_shot_prompt('math')            # Minerva 4-shot (Lewkowycz et al. 2022)
    prompt.prefix                               # the 4 worked shots, identical for every problem:
        'Problem:\nFind the domain of ...\n\nSolution: The expressions ... I hope it is correct.\n\n'
        ...  'Problem:\nIf the system ...\n\nSolution: If we multiply ... I hope it is correct.\n\n'
    prompt.format_question('What is $1+1$?')    # 'Problem:\nWhat is $1+1$?\n\nSolution:'
    prompt.render(q) == prompt.prefix + prompt.format_question(q)
    prompt.stop                                 # ('Problem:',)

    few_shot_prompt('gsm8k')                    # Wei et al. 2022 8-shot chain of thought
        shot: 'Q: {question}\nA: {solution}'    test part: 'Q: {question}\nA:'    stop: ('Q:', '\n\n\n')

A sampler prefills `prefix` once and each `format_question(q)` once per problem.
The split falls after the "\n\n" that separates shots, and Gemma's tokenizer has
no token spanning "\n\n" and the word after it, so tokenizing the two parts
apart gives the tokens of the whole prompt (checked with the Gemma 3 tokenizer on
the first 300 MATH and GSM8K test questions, both Minerva variants).

Shots and formats are exactly the lm-evaluation-harness ones (minerva_math,
gsm8k-cot): see bundled/SOURCES.md. Finetuned models are trained and evaluated
zero-shot in the same format (`zero_shot_prompt`, `training_pair`), with the
final-answer sentence at the end of every solution so the same extractor reads
their answers.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json

# Not '\n\n\n' for MATH: 54 gold MATH solutions (train and test) have it before their answer.
MATH_STOP = ('Problem:',)
GSM8K_STOP = ('Q:', '\n\n\n')

_FAMILIES = {'math': 'math', 'math500': 'math', 'gsm8k': 'gsm8k'}


def answer_family(dataset: str) -> str:
  """'math' or 'gsm8k': whose prompt, answer and grading rules apply ('math500' -> 'math')."""
  try:
    return _FAMILIES[dataset]
  except KeyError:
    raise ValueError(f'unknown dataset {dataset!r}; expected one of {sorted(_FAMILIES)}') from None


def stop_strings(dataset: str) -> tuple[str, ...]:
  return MATH_STOP if answer_family(dataset) == 'math' else GSM8K_STOP


@dataclasses.dataclass(frozen=True)
class PromptFormat:
  """A prompt = `prefix` (shared worked shots, '' for zero-shot) + `format_question(question)`."""

  prefix: str
  question_prefix: str  # 'Problem:\n' or 'Q: '
  answer_prefix: str  # '\n\nSolution:' or '\nA:'; the model writes from here
  stop: tuple[str, ...]

  def format_question(self, question: str) -> str:
    return self.question_prefix + question + self.answer_prefix

  def render(self, question: str) -> str:
    return self.prefix + self.format_question(question)


@dataclasses.dataclass(frozen=True)
class TrainingPair:
  """One SFT example: the model sees `prompt` and is trained to write `completion`."""

  prompt: str
  completion: str


def _format(dataset: str, shots: list[dict] | None = None) -> PromptFormat:
  if answer_family(dataset) == 'math':
    question_prefix, answer_prefix, stop = 'Problem:\n', '\n\nSolution:', MATH_STOP
  else:
    question_prefix, answer_prefix, stop = 'Q: ', '\nA:', GSM8K_STOP
  blank = PromptFormat('', question_prefix, answer_prefix, stop)
  if not shots:
    return blank
  worked = [f"{blank.format_question(s['question'])} {s['solution']}" for s in shots]
  return dataclasses.replace(blank, prefix='\n\n'.join(worked) + '\n\n')


def load_shots(name: str) -> list[dict]:
  """The bundled shots: 'math_4shot', 'math_4shot_latexfixed' or 'gsm8k_8shot'."""
  path = importlib.resources.files('wcse_jax.data') / 'bundled' / 'prompts' / f'{name}.json'
  return json.loads(path.read_text(encoding='utf-8'))


def few_shot_prompt(dataset: str, *, latex_fixed: bool = False) -> PromptFormat:
  r"""Minerva 4-shot for MATH (and MATH-500), Wei et al. 8-shot for GSM8K.

  `latex_fixed=True` uses the Minerva shots with their two align-row separators
  restored from the harness's single "\" to "\\" (nothing else differs).
  """
  if answer_family(dataset) == 'gsm8k':
    return _format('gsm8k', load_shots('gsm8k_8shot'))
  return _format('math', load_shots('math_4shot_latexfixed' if latex_fixed else 'math_4shot'))


def zero_shot_prompt(dataset: str) -> PromptFormat:
  """The few-shot format without shots: how finetuned models are trained and evaluated."""
  return _format(dataset)


def training_pair(question: str, solution: str, dataset: str) -> TrainingPair:
  """('What is 1+1?', 'So 2. The answer is 2.', 'gsm8k') -> ('Q: What is 1+1?\\nA:', ' So 2. The answer is 2.')."""
  return TrainingPair(zero_shot_prompt(dataset).format_question(question), ' ' + solution.strip())


def solution_with_final_answer(solution: str, answer: str, dataset: str) -> str:
  r"""A gold solution ending in the sentence the prompts teach, so it can be trained on.

      MATH:  '... = \boxed{24}.'  ->  '... = \boxed{24}.\nFinal Answer: The final answer is $24$. I hope it is correct.'
      GSM8K: '... = 72 clips.\n#### 72'  ->  '... = 72 clips.\nThe answer is 72.'
  """
  solution = solution.strip()
  if answer_family(dataset) == 'math':
    return f'{solution}\nFinal Answer: The final answer is ${answer}$. I hope it is correct.'
  reasoning = solution.rsplit('####', 1)[0].rstrip()
  return f'{reasoning}\nThe answer is {answer}.' if reasoning else f'The answer is {answer}.'
