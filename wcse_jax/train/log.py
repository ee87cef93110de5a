"""A finetuning run's log: metrics.jsonl (and TensorBoard for local runs).

On resume, lines logged after the restored step (work about to be redone) are
dropped, so the file reads as one run. Lines are appended as a sample shard's
are (`wcse_jax.rundir`): flushed to a local file, or as part objects on an
object store. In a multi-process job process 0 writes; the others write nothing.
"""

from __future__ import annotations

import pathlib

import jax

from wcse_jax import rundir
from wcse_jax.train.checkpoints import BEST_METRIC


class MetricsLog:
  """metrics.jsonl of a run directory `out`, resumed after `resume_step`."""

  def __init__(self, out: pathlib.Path, *, resume_step: int):
    self.path = out / 'metrics.jsonl'
    self.writes = jax.process_index() == 0
    self.tensorboard = rundir.is_local(out)
    self._lines = self._writer = None
    if not self.writes:
      return
    kept = [r for r in rundir.read_lines(self.path, repair=True) if r['step'] <= resume_step]
    rundir.write_lines_atomic(self.path, kept)
    self._lines = rundir.ShardWriter(self.path)
    if self.tensorboard:
      import tensorboardX  # pylint: disable=g-import-not-at-top

      self._writer = tensorboardX.SummaryWriter(str(out / 'tensorboard'), purge_step=resume_step + 1)

  def write(self, record: dict) -> None:
    if not self.writes:
      return
    self._lines.write([record])
    if self._writer is not None:
      for key, value in record.items():
        if key != 'step':
          self._writer.add_scalar(key, value, record['step'])
      self._writer.flush()

  def validations(self) -> list[dict]:
    return [r for r in rundir.read_lines(self.path) if BEST_METRIC in r] if self.writes else []

  def close(self) -> None:
    if self._lines is not None:
      self._lines.close()
