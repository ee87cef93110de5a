"""What every `python -m wcse_jax.<verb>` shares: one-line errors instead of tracebacks."""

from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags, logging

from wcse_jax import parallel
from wcse_jax.checkpoints import CheckpointError
from wcse_jax.data import DataError
from wcse_jax.model import UnknownModelError
from wcse_jax.rundir import RunError
from wcse_jax.sampling import PromptTooLongError


class SettingError(ValueError):
  """A flag or config value that cannot work, found before any work starts."""


# Errors that mean "the input was wrong": reported in one sentence, exit code 1.
USER_ERRORS: tuple[type[Exception], ...] = (
    CheckpointError, DataError, FileNotFoundError, parallel.MultihostError, PromptTooLongError,
    RunError, SettingError, UnknownModelError,
)

# A job of N processes started by hand (JAX detects TPU slices, SLURM and Open MPI by itself).
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None,
    f'host:port of process 0 of a multi-process job (or {parallel.COORDINATOR_ENV}).')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', None, f'Processes in the job (or {parallel.NUM_PROCESSES_ENV}).')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', None, f'This process, 0 to num_processes - 1 (or {parallel.PROCESS_ID_ENV}).')


def initialize_multihost() -> None:
  """Joins a multi-process job from the flags above, the environment, or the cluster."""
  parallel.initialize_multihost(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)


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
