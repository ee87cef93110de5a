"""Prompt tokens: a shared prefix, each problem's own text, and the chunks they are fed in.

Problem j's prompt is `prefix + questions[j]`. The prefix (BOS first) is
tokenized once and its cache computed once; each question is tokenized on its
own and continues from there. That is only right where the prefix ends on a
token boundary: a few-shot prefix ending in "\\n\\n" before "Q: ..." does (all
1319 GSM8K test prompts with the 8-shot prefix split exactly). Each problem is
checked, and one whose tokens differ from those of its whole prompt is
tokenized whole and prefilled from an empty row instead:

    [BOS] Q: 1+1?\\nA: 2.\\n\\n | Q: 2+2?\\nA:      prefix ids + question ids == whole ids
"""

from __future__ import annotations

import dataclasses


class PromptTooLongError(ValueError):
  """A prompt and its new tokens do not fit in the sampler's context."""


@dataclasses.dataclass(frozen=True)
class Prompt:
  """The tokens prefilled for one problem, after the prefix or on their own."""

  ids: tuple[int, ...]
  after_prefix: bool

  def start(self, prefix_ids: tuple[int, ...]) -> int:
    """The position of this prompt's first token."""
    return len(prefix_ids) if self.after_prefix else 0


def encode(tokenizer, text: str) -> tuple[int, ...]:
  return tuple(tokenizer.encode(text, add_special_tokens=False))


def tokenize_prompts(
    tokenizer, prefix: str, questions: list[str], *, share_prefix: bool
) -> tuple[tuple[int, ...], list[Prompt]]:
  """The prefix's ids (BOS first) and, per question, what follows them.

  With `share_prefix=False` the prefix ids are empty and every prompt is whole.
  """
  bos = () if tokenizer.bos_token_id is None else (tokenizer.bos_token_id,)
  prefix_ids = bos + encode(tokenizer, prefix)
  prompts = []
  for question in questions:
    whole = bos + encode(tokenizer, prefix + question)
    own = encode(tokenizer, question) if share_prefix else ()
    if own and prefix_ids + own == whole:
      prompts.append(Prompt(own, after_prefix=True))
    else:
      prompts.append(Prompt(whole, after_prefix=False))
  return (prefix_ids if share_prefix else ()), prompts


def context_length(tokenizer, config, prefix: str, questions: list[str], max_new_tokens: int) -> int:
  """Positions for the longest prompt plus `max_new_tokens`, rounded up to a multiple
  of 128 (few shapes to compile) within the model's; PromptTooLongError if it has too few."""
  prefix_ids, prompts = tokenize_prompts(tokenizer, prefix, questions, share_prefix=True)
  longest = max(p.start(prefix_ids) + len(p.ids) for p in prompts)
  needed, supported = longest + max_new_tokens, config.max_seq_len
  if needed > supported:
    raise PromptTooLongError(
        f'{config.name} supports {supported} positions, but the longest prompt '
        f'({longest} tokens) plus max_new_tokens={max_new_tokens} needs {needed}.'
    )
  return min(-(-needed // 128) * 128, supported)


def chunk_lengths(length: int, max_chunk: int) -> list[int]:
  """Padded lengths of the chunks that feed `length` tokens.

  Full chunks of `max_chunk`, then the rest padded to a power of two (at least
  16), so that only a few shapes are ever compiled:

  >>> chunk_lengths(1100, 512)
  [512, 512, 128]
  """
  full, rest = divmod(length, max_chunk)
  lengths = [max_chunk] * full
  if rest:
    lengths.append(min(max_chunk, max(16, 1 << (rest - 1).bit_length())))
  return lengths
