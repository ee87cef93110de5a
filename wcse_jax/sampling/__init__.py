"""Sampling: a sharded, batched KV-cache sampler built for many samples per problem."""

from wcse_jax.sampling.pages import PagesExhaustedError
from wcse_jax.sampling.prompts import PromptTooLongError, context_length, tokenize_prompts
from wcse_jax.sampling.rules import SamplingParams, TokenRules, sample_next, token_keys
from wcse_jax.sampling.sampler import Completion, RunStats, Sampler, sampling_layout
