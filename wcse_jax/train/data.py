r"""SFT data: tokenise question/solution pairs, mask the loss to the solution, pack.

An example is `[BOS] prompt solution [EOS]` in the zero-shot training format
(`wcse_jax.data.training_pair`); only the solution and EOS carry loss. Examples
are packed first-fit into rows of `seq_len` tokens; each keeps its own segment
id and positions from 0, and the model's segment mask stops attention across
examples. Two examples in a row of 12 (`.` is padding, segment 0):

    tokens        B  Q  : ␣1 A  :  ␣2 E  B  Q  :  ␣3 E  .
    segment_ids   1  1  1  1  1  1  1  1  2  2  2  2  2  0
    positions     0  1  2  3  4  5  6  7  0  1  2  3  4  0
    loss_mask     0  0  0  0  0  0  1  1  0  0  0  1  1  0

`loss_mask[t]` says whether token t is a target: the loss at position t-1
predicts token t. Every epoch shuffles the examples with (seed, epoch) and
packs them again, so the data order depends only on the seed, and an
iterator's position is two integers (epoch, batch) that a checkpoint stores.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Iterator, Sequence

import numpy as np

from wcse_jax.data import DataError, JsonlReader, TrainingPair, training_pair


def read_pairs(
    path: str | os.PathLike, dataset: str, *, exclude_ids: Collection[str] = ()
) -> tuple[list[TrainingPair], int]:
  """Training pairs from JSONL lines with question + solution (an `sft/*.jsonl` of a
  sampling run), prompt + completion (already formatted) or chat `messages` (a user
  turn holding the question, an assistant turn the solution), and how many lines were
  left out because their `problem_id` is in `exclude_ids` (held-out problems)."""
  reader = JsonlReader(path)
  pairs, excluded = [], 0
  for line_number, record in reader:
    if record.get('problem_id') in exclude_ids:
      excluded += 1
    elif isinstance(record.get('question'), str) and isinstance(record.get('solution'), str):
      pairs.append(training_pair(record['question'], record['solution'], record.get('dataset', dataset)))
    elif isinstance(record.get('prompt'), str) and isinstance(record.get('completion'), str):
      pairs.append(TrainingPair(record['prompt'], record['completion']))
    elif _chat_pair(record) is not None:
      question, solution = _chat_pair(record)
      pairs.append(training_pair(question, solution, record.get('dataset', dataset)))
    else:
      reader.reject(
          line_number, 'needs string fields question and solution, prompt and completion, or messages '
          '(a user turn, then an assistant turn)')
  if not pairs:
    raise DataError(f'{path}: no training examples.')
  return pairs, excluded


def _chat_pair(record: dict) -> tuple[str, str] | None:
  """(question, solution) of a `messages` record: [{'role': 'user', ...}, {'role': 'assistant', ...}]."""
  messages = record.get('messages')
  if not isinstance(messages, list) or len(messages) != 2 or not all(isinstance(m, dict) for m in messages):
    return None
  (user, assistant) = messages
  if (user.get('role'), assistant.get('role')) != ('user', 'assistant'):
    return None
  if not isinstance(user.get('content'), str) or not isinstance(assistant.get('content'), str):
    return None
  return user['content'], assistant['content']


@dataclasses.dataclass(frozen=True)
class Example:
  tokens: np.ndarray  # int32 [n]
  loss_mask: np.ndarray  # bool [n]: which tokens are targets


def tokenize(pairs: Sequence[TrainingPair], tokenizer, *, seq_len: int) -> tuple[list[Example], int]:
  """Examples of at most `seq_len` tokens, and how many longer ones were left out."""
  bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
  examples, too_long = [], 0
  for pair in pairs:
    prompt = bos + tokenizer.encode(pair.prompt, add_special_tokens=False)
    completion = tokenizer.encode(pair.completion, add_special_tokens=False) + [tokenizer.eos_token_id]
    if len(prompt) + len(completion) > seq_len:
      too_long += 1
      continue
    tokens = np.asarray(prompt + completion, np.int32)
    examples.append(Example(tokens, np.arange(len(tokens)) >= len(prompt)))
  return examples, too_long


@dataclasses.dataclass(frozen=True)
class Batch:
  """`[rows, seq_len]` arrays; see the module docstring."""

  tokens: np.ndarray
  segment_ids: np.ndarray
  positions: np.ndarray
  loss_mask: np.ndarray


def pack(examples: Sequence[Example], seq_len: int) -> Batch:
  """First-fit packing of examples, in order, into as few rows as it takes."""
  rows: list[list[Example]] = []
  room: list[int] = []
  # Rows that can still take the shortest example, in row order: a full row is never
  # searched again, so packing stays linear in practice while picking the same rows.
  shortest = min((len(e.tokens) for e in examples), default=0)
  open_rows: list[int] = []
  for example in examples:
    n = len(example.tokens)
    at = next((k for k, i in enumerate(open_rows) if room[i] >= n), None)
    if at is None:
      rows.append([])
      room.append(seq_len)
      open_rows.append(len(rows) - 1)
      at = len(open_rows) - 1
    slot = open_rows[at]
    rows[slot].append(example)
    room[slot] -= n
    if room[slot] < shortest:
      del open_rows[at]
  shape = (len(rows), seq_len)
  batch = Batch(
      np.zeros(shape, np.int32), np.zeros(shape, np.int32), np.zeros(shape, np.int32),
      np.zeros(shape, bool),
  )
  for r, row in enumerate(rows):
    start = 0
    for segment, example in enumerate(row, start=1):
      span = slice(start, start + len(example.tokens))
      batch.tokens[r, span] = example.tokens
      batch.segment_ids[r, span] = segment
      batch.positions[r, span] = np.arange(len(example.tokens))
      batch.loss_mask[r, span] = example.loss_mask
      start = span.stop
  return batch


class PackedBatches:
  """Batches of `batch_rows` packed rows, epoch after epoch, resumable by position.

  >>> examples = [Example(tokens=np.arange(n), loss_mask=np.ones(n, bool)) for n in (5, 3, 7, 4)]
  >>> batches = PackedBatches(examples, seq_len=8, batch_rows=2, seed=0)
  >>> first = next(batches); batches.position
  {'epoch': 0, 'batch': 1}
  >>> again = PackedBatches(examples, seq_len=8, batch_rows=2, seed=0, position=batches.position)
  >>> np.array_equal(next(again).tokens, next(batches).tokens)   # continues identically
  True
  """

  def __init__(
      self, examples: Sequence[Example], *, seq_len: int, batch_rows: int, seed: int,
      position: dict | None = None,
  ):
    self.examples = list(examples)
    self.seq_len = seq_len
    self.batch_rows = batch_rows
    self.seed = seed
    self.position = dict(position or {'epoch': 0, 'batch': 0})
    self._epoch_rows: tuple[int, Batch] | None = None

  def rows_of_epoch(self, epoch: int) -> Batch:
    if self._epoch_rows is None or self._epoch_rows[0] != epoch:
      order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
      self._epoch_rows = (epoch, pack([self.examples[i] for i in order], self.seq_len))
    return self._epoch_rows[1]

  def batches_per_epoch(self, epoch: int = 0) -> int:
    """Whole batches in an epoch (the last partial batch is dropped)."""
    return len(self.rows_of_epoch(epoch).tokens) // self.batch_rows

  def __iter__(self) -> Iterator[Batch]:
    return self

  def __next__(self) -> Batch:
    epoch, index = self.position['epoch'], self.position['batch']
    if index >= self.batches_per_epoch(epoch):
      epoch, index = epoch + 1, 0
      if self.batches_per_epoch(epoch) == 0:
        raise DataError(
            f'{len(self.examples)} examples pack into fewer than batch_rows={self.batch_rows} '
            f'rows of {self.seq_len} tokens: lower the batch size or add data.'
        )
    rows = self.rows_of_epoch(epoch)
    span = slice(index * self.batch_rows, (index + 1) * self.batch_rows)
    self.position = {'epoch': epoch, 'batch': index + 1}
    return Batch(*(getattr(rows, f.name)[span] for f in dataclasses.fields(Batch)))
