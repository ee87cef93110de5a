"""Datasets, prompts, answer extraction and grading for GSM8K and MATH."""

from wcse_jax.data.extraction import Extraction, extract_answer, extract_gsm8k_answer, extract_math_answer
from wcse_jax.data.grader import GradeResult, Grader, grade_answer
from wcse_jax.data.jsonl import DataError, JsonlReader
from wcse_jax.data.problems import Problem, ProblemSet, load_problems
from wcse_jax.data.prompts import (
    PromptFormat,
    TrainingPair,
    answer_family,
    few_shot_prompt,
    solution_with_final_answer,
    stop_strings,
    training_pair,
    zero_shot_prompt,
)
