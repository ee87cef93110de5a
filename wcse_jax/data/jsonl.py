"""Reading JSON Lines whose errors name the file and line, or are counted and skipped.

    reader = JsonlReader('samples.jsonl', on_error='skip')
    for line_number, record in reader:
      if 'gold' not in record:
        reader.reject(line_number, "no 'gold' field")  # raises, or records a skip
        continue
      ...
    reader.skipped   # ['samples.jsonl:7: not valid JSON (Expecting value: ...)', ...]

Blank lines are ignored. Every other line must hold one JSON object.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Literal

OnError = Literal['raise', 'skip']


class DataError(ValueError):
  """A data file is missing or one of its lines is malformed; the message says which and why."""


class JsonlReader:
  """Iterates `(line_number, record)` over a JSONL file; line numbers start at 1."""

  def __init__(self, path: str | os.PathLike, *, on_error: OnError = 'raise'):
    if on_error not in ('raise', 'skip'):
      raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    self.path = os.fspath(path)
    self.on_error = on_error
    self.skipped: list[str] = []

  def reject(self, line_number: int, why: str) -> None:
    """Raises DataError for a bad line, or records it in `skipped` when on_error='skip'."""
    message = f'{self.path}:{line_number}: {why}'
    if self.on_error == 'raise':
      raise DataError(message)
    self.skipped.append(message)

  def __iter__(self) -> Iterator[tuple[int, dict]]:
    try:
      file = open(self.path, encoding='utf-8')
    except OSError as e:
      raise DataError(f'cannot read {self.path}: {e.strerror or e}') from None
    with file:
      line_number = 0
      while True:
        try:
          line = file.readline()
        except UnicodeDecodeError as e:
          raise DataError(f'{self.path}:{line_number + 1}: not UTF-8 text ({e.reason})') from None
        if not line:
          return
        line_number += 1
        if not line.strip():
          continue
        try:
          record = json.loads(line.rstrip('\r\n'))
        except json.JSONDecodeError as e:
          self.reject(line_number, f'not valid JSON ({e.msg} at column {e.colno})')
          continue
        if not isinstance(record, dict):
          self.reject(line_number, f'expected a JSON object, found {type(record).__name__}')
          continue
        yield line_number, record
