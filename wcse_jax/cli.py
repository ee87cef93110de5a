"""What every `python -m wcse_jax.<verb>` shares: one-line errors instead of tracebacks."""

from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags, logging

from wcse_jax.checkpoints import CheckpointError
from wcse_jax.data import DataError
from wcse_jax.model import UnknownModelError
from wcse_jax.rundir import RunError
from wcse_jax.sampling import PromptTooLongError


class SettingError(ValueError):
  """A flag or config value that cannot work, found before any work starts."""


# Errors that mean "the input was wrong": reported in one sentence, exit code 1.
USER_ERRORS: tuple[type[Exception], ...] = (
    CheckpointError, DataError, FileNotFoundError, PromptTooLongError, RunError,
    SettingError, UnknownModelError,
)



def run(main: Callable[[list[str]], None]) -> None:
  """`absl.app.run(main)`, with user errors printed as one line."""

  def guarded(argv):
    if not flags.FLAGS['verbosity'].present:  # library INFO logs (Orbax's) drown the progress bars
      logging.set_verbosity(logging.WARNING)
    try:
      main(argv)
    except USER_ERRORS as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(1)

  app.run(guarded)
