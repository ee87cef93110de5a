"""What every `python -m wcse_jax.<verb>` shares: one-line errors instead of tracebacks."""

from __future__ import annotations

import os
import sys
from typing import Callable

import jax
from absl import app, flags, logging

from wcse_jax import parallel
from wcse_jax.checkpoints import CheckpointError
from wcse_jax.checkpoints.load import cache_dir
from wcse_jax.data import DataError
from wcse_jax.model import UnknownModelError
from wcse_jax.rundir import RunError
from wcse_jax.sampling import PagesExhaustedError, PromptTooLongError


class SettingError(ValueError):
  """A flag or config value that cannot work, found before any work starts."""


# Errors that mean "the input was wrong": reported in one sentence, exit code 1.
USER_ERRORS: tuple[type[Exception], ...] = (
    CheckpointError, DataError, FileNotFoundError, parallel.MultihostError, PagesExhaustedError,
    PromptTooLongError, RunError, SettingError, UnknownModelError,
)

# A job of N processes started by hand (JAX detects TPU slices, SLURM and Open MPI by itself).
_MULTIHOST_FLAGS = (
    ('coordinator_address', flags.DEFINE_string,
     f'host:port of process 0 of a multi-process job (or {parallel.COORDINATOR_ENV}).'),
    ('num_processes', flags.DEFINE_integer, f'Processes in the job (or {parallel.NUM_PROCESSES_ENV}).'),
    ('process_id', flags.DEFINE_integer,
     f'This process, 0 to num_processes - 1 (or {parallel.PROCESS_ID_ENV}).'),
)
for _name, _define, _help in _MULTIHOST_FLAGS:
  _define(_name, None, _help)


def _join_job(argv: list[str]) -> None:
  """Joins a multi-process job from the flags above, the environment, or the cluster.

  Runs before the other flags are parsed: parsing loads the config file, and
  a config that looks at the backend (`configs/sample.py:auto`) would
  otherwise start it before `jax.distributed` may.
  """
  early = flags.FlagValues()
  for name, define, help_text in _MULTIHOST_FLAGS:
    define(name, None, help_text, flag_values=early)
  early(argv, known_only=True)
  parallel.initialize_multihost(early.coordinator_address, early.num_processes, early.process_id)


COMPILATION_CACHE_ENV = 'WCSE_JAX_COMPILATION_CACHE'


def use_compilation_cache() -> None:
  """Keeps compiled XLA programs (those that took a second or more) under the cache
  directory's `xla/`, so that a later run of the same shapes loads them instead of
  compiling again: on the 2-core CPU the default sampling run compiles for 30-45 s.

  `WCSE_JAX_COMPILATION_CACHE=0` turns it off; a directory already set in JAX's
  config (`JAX_COMPILATION_CACHE_DIR`) is kept.
  """
  if os.environ.get(COMPILATION_CACHE_ENV, '1') == '0' or jax.config.jax_compilation_cache_dir:
    return
  jax.config.update('jax_compilation_cache_dir', str(cache_dir() / 'xla'))


def run(main: Callable[[list[str]], None], *, multihost: bool = False) -> None:
  """`absl.app.run(main)`, with user errors printed as one line.

  `multihost`: the command is one process of a multi-process job when flags,
  environment or cluster say so, and joins it first.
  """

  def parse(argv):
    if multihost:
      try:
        _join_job(argv)
      except parallel.MultihostError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)
    return app.parse_flags_with_usage(argv)

  def guarded(argv):
    if not flags.FLAGS['verbosity'].present:  # library INFO logs (Orbax's) drown the progress bars
      logging.set_verbosity(logging.WARNING)
    use_compilation_cache()
    try:
      main(argv)
    except USER_ERRORS as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(1)

  app.run(guarded, flags_parser=parse)
