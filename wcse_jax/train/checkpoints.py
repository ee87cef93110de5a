"""Training checkpoints: Orbax, asynchronous, the last K and the best kept.

Each step directory holds the train state (parameters, optimizer state, step)
and the data iterator's position, so a run restarted with the same command
continues with the same batches and the same loss curve. Validation pass@1 is
stored as the checkpoint's metric; the best one is kept whatever its age.

    checkpoints = TrainCheckpoints(run_dir / 'checkpoints', keep_last=2)
    checkpoints.save(step, state, position, metrics={'val_pass_at_1': 0.31})
    state, position = checkpoints.restore(checkpoints.latest_step(), abstract_state)
"""

from __future__ import annotations

import logging
import pathlib

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from wcse_jax import rundir

BEST_METRIC = 'val_pass_at_1'


class _UnscoredSaveNotice(logging.Filter):
  """Drops Orbax's warning at every save without metrics: it tracks the best
  checkpoint, and most saves are periodic ones that are not validated, by design."""

  def filter(self, record: logging.LogRecord) -> bool:
    return 'did not provide metrics' not in record.getMessage()


logging.getLogger('absl').addFilter(_UnscoredSaveNotice())


class TrainCheckpoints:
  """Saves and restores (train state, data position) pairs by step."""

  def __init__(self, directory: pathlib.Path, *, keep_last: int = 2):
    policy = preservation_policy.AnyPreservationPolicy([
        preservation_policy.LatestN(n=keep_last),
        preservation_policy.BestN(
            get_metric_fn=lambda metrics: metrics[BEST_METRIC], n=1,
            keep_checkpoints_without_metrics=False,
        ),
    ])
    self.manager = ocp.CheckpointManager(
        rundir.orbax_path(directory),
        options=ocp.CheckpointManagerOptions(
            preservation_policy=policy,
            # Orbax records a step's metrics only when it tracks a best checkpoint.
            best_fn=lambda metrics: metrics[BEST_METRIC],
            best_mode='max',
            keep_checkpoints_without_metrics=True,
            enable_async_checkpointing=True,
        ),
        item_names=('state', 'data'),
    )

  def save(self, step: int, state, position: dict, *, metrics: dict | None = None) -> None:
    self.manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(position)),
        metrics=metrics,
        force=True,
    )

  def restore(self, step: int, abstract_state):
    """The state (sharded like `abstract_state`'s arrays) and data position at `step`."""
    target = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), abstract_state
    )
    restored = self.manager.restore(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()),
    )
    return restored.state, dict(restored.data)

  @staticmethod
  def any_saved(directory: pathlib.Path) -> bool:
    """Whether `directory` holds a saved step (without opening a manager on it)."""
    return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    """The step with the highest validation pass@1 (the earliest of ties), if any was scored."""
    scored = [(s, self.manager.metrics(s)) for s in self.manager.all_steps()]
    scored = [(m[BEST_METRIC], -s) for s, m in scored if m and BEST_METRIC in m]
    return -max(scored)[1] if scored else None

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
