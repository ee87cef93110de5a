r"""python -m wcse_jax.finetune: supervised finetuning on sampled solutions.

Reads an SFT set (a sampling run's `sft/<model>.jsonl`, or any JSONL of
question/solution pairs), trains with the sharded train step of
`wcse_jax.train.step`, scores `num_evals` evenly spaced checkpoints by greedy
pass@1 on held-out problems, and exports the best as one of our checkpoints.
By default it writes inside the sampling run whose SFT set it reads
(runs/<run>/finetune/<name>/; runs/finetune/<name>/ for other data):

    <out>/checkpoints/<step>/   Orbax train state + data position
    <out>/best/                 the best model (load_model / evaluate / export)
    <out>/metrics.jsonl         one line per logged step and per validation
    <out>/tensorboard/          the same, for TensorBoard
    <out>/summary.json          best step, validation scores, throughput

Killed at any step (kill -9 included) and started again with the same
command, it resumes from the last checkpoint with the same data order and
loss curve. On SIGTERM (a TPU preemption notice) it saves and exits.

    python -m wcse_jax.finetune --config=configs/finetune.py:local --data=runs/x/sft/wc-gemma3-270m.jsonl
    python -m wcse_jax.finetune --config=configs/finetune.py:wc-wc-high --learning_rate=2e-6
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import signal
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from flax import nnx
from ml_collections import config_flags
from tqdm import tqdm

from wcse_jax import cli, parallel, perf, rundir
from wcse_jax.checkpoints import LoadedModel, load_model, save_model
from wcse_jax.data import load_problems, zero_shot_prompt
from wcse_jax.evaluate import evaluate
from wcse_jax.model import count_params
from wcse_jax.train import data as sft_data
from wcse_jax.train.checkpoints import BEST_METRIC, TrainCheckpoints
from wcse_jax.train.log import MetricsLog
from wcse_jax.train.step import OptimizerConfig, init_state, make_optimizer, make_train_step

_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs' / 'finetune.py'
_CONFIG = config_flags.DEFINE_config_file(
    'config', f'{_CONFIGS}:local', 'Finetuning config (configs/finetune.py:NAME).', lock_config=False
)
_MODEL = flags.DEFINE_string('model', None, 'Model to finetune: preset, path or hub id.')
_DATA = flags.DEFINE_string('data', None, 'SFT JSONL (question/solution or prompt/completion).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Run directory.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', None, 'Peak learning rate.')
_STEPS = flags.DEFINE_integer('steps', None, 'Optimizer steps (0: epochs x batches per epoch).')
_SEED = flags.DEFINE_integer('seed', None, 'Data-order seed.')


def settings() -> dict:
  config = _CONFIG.value.to_dict()
  for name, flag in (('model', _MODEL), ('data', _DATA), ('output_dir', _OUTPUT_DIR),
                     ('learning_rate', _LEARNING_RATE), ('steps', _STEPS), ('seed', _SEED)):
    if flag.value is not None:
      config[name] = flag.value
  config['output_dir'] = config['output_dir'] or str(rundir.finetune_dir(config['data'], config['name']))
  if config['batch_rows'] % config['accumulation']:
    raise rundir.RunError(
        f"batch_rows={config['batch_rows']} is not a multiple of accumulation={config['accumulation']}."
    )
  return config


class Preemption:
  """Turns SIGTERM into a flag the loop checks between steps."""

  def __init__(self):
    self.requested = False
    signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True


def held_out(config: dict):
  """Validation problems: the last `val_count` of the split, never trained on."""
  problems = load_problems(config['dataset'], config['val_split']).problems
  return problems[-config['val_count']:] if config['val_count'] else ()


def training_examples(config: dict, tokenizer, excluded_ids: set[str]):
  """Tokenised examples of the SFT set, without the held-out problems."""
  pairs, held_out_count = sft_data.read_pairs(
      config['data'], config['dataset'], exclude_ids=excluded_ids
  )
  examples, too_long = sft_data.tokenize(pairs, tokenizer, seq_len=config['seq_len'])
  return examples, {'pairs': len(pairs), 'held_out': held_out_count, 'too_long': too_long}


def device_batch(batch: sft_data.Batch, accumulation: int, mesh) -> dict:
  """Host rows to `[accumulation, rows, seq_len]` arrays, rows sharded over `data`.

  Every host builds the same global batch (same data, same seed) and each device
  takes its own slice of it, so this holds when the mesh spans several hosts.
  """
  out = {}
  for name in ('tokens', 'positions', 'segment_ids', 'loss_mask'):
    array = getattr(batch, name)
    array = array.reshape(accumulation, -1, *array.shape[1:])
    sharding = parallel.logical_sharding(('accumulation', 'batch', 'length'), array.shape, mesh)
    out[name] = jax.make_array_from_callback(array.shape, sharding, lambda index, a=array: a[index])
  return out


def main(argv: list[str]) -> None:
  del argv
  config = settings()
  out = rundir.run_path(config['output_dir'])
  # Settings bind a run once it has saved a step; one that stopped before that (too
  # little data, a typo) starts again with the new settings.
  rundir.check_or_write_config(out, config, has_work=TrainCheckpoints.any_saved(out / 'checkpoints'),
                               write=jax.process_index() == 0)

  # Load: float32 master weights, compute in `compute_dtype`, FSDP over data.
  mesh = parallel.make_mesh(model=config['mesh_model'])
  loaded = load_model(
      config['model'], mesh=mesh, dtype=jnp.dtype(config['compute_dtype']),
      param_dtype=jnp.float32, fsdp=config['fsdp'],
  )
  validation = held_out(config)
  examples, counts = training_examples(config, loaded.tokenizer, {p.id for p in validation})
  batches = sft_data.PackedBatches(
      examples, seq_len=config['seq_len'], batch_rows=config['batch_rows'], seed=config['seed']
  )
  total_steps = config['steps'] or config['epochs'] * batches.batches_per_epoch()
  optimizer_config = OptimizerConfig(
      learning_rate=config['learning_rate'], total_steps=total_steps,
      warmup_steps=config['warmup_steps'], weight_decay=config['weight_decay'],
      max_grad_norm=config['max_grad_norm'],
  )
  optimizer = make_optimizer(optimizer_config)
  params = nnx.to_pure_dict(loaded.params)
  state = init_state(params, optimizer, mesh)
  shardings = jax.tree.map(lambda a: a.sharding, state)
  train_step = jax.jit(
      make_train_step(loaded.graphdef, optimizer, remat=config['remat'], loss_chunk=config['loss_chunk']),
      donate_argnums=0, out_shardings=(shardings, None),
  )

  # Resume where a killed run stopped.
  checkpoints = TrainCheckpoints(out / 'checkpoints', keep_last=config['keep_last'])
  if checkpoints.latest_step() is not None:
    state, batches.position = checkpoints.restore(checkpoints.latest_step(), state)
  start = int(state.step)
  # Scored checkpoints; none without held-out problems, and the last step is exported.
  eval_steps = set(np.linspace(0, total_steps, config['num_evals'] + 1).round().astype(int)[1:])
  eval_steps = eval_steps if validation else set()
  if eval_steps and jax.process_count() > 1:
    raise cli.SettingError(
        'Validation during finetuning runs in one process; with several, set --config.num_evals=0 '
        'and score the exported model with python -m wcse_jax.evaluate.'
    )
  log = MetricsLog(out, resume_step=start)
  if log.writes and not log.tensorboard:
    print(f'TensorBoard logs are written for local output directories only; {out}/metrics.jsonl '
          'has the same numbers.', file=sys.stderr)
  preemption = Preemption()
  flops_per_token = 6 * count_params(loaded.config)
  peak = perf.matmul_peak_flops(dtype=jnp.dtype(config['compute_dtype'])) * mesh.devices.size
  print(f"{config['model']}: {len(examples)} examples ({counts}), {total_steps} steps of "
        f"{config['batch_rows']} x {config['seq_len']} tokens, from step {start}", file=sys.stderr)

  # Train.
  bar = tqdm(range(start, total_steps), initial=start, total=total_steps, desc='finetune')
  timer, tokens_seen = time.monotonic(), 0
  for step in bar:
    batch = next(batches)
    state, metrics = train_step(state, device_batch(batch, config['accumulation'], mesh))
    tokens_seen += batch.tokens.size
    done = step + 1
    if done % config['log_every'] == 0 or done == total_steps:
      metrics = jax.device_get(metrics)  # waits for the step: the time below is compute
      elapsed = time.monotonic() - timer
      record = {
          'step': done, 'loss': float(metrics['loss']), 'grad_norm': float(metrics['grad_norm']),
          'tokens_per_s': tokens_seen / elapsed,
          'mfu': flops_per_token * tokens_seen / elapsed / peak,
      }
      log.write(record)
      bar.set_postfix(
          loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}", mfu=f"{record['mfu']:.1%}"
      )
      timer, tokens_seen = time.monotonic(), 0
    saved = done in eval_steps or done % config['save_every'] == 0
    if done in eval_steps:
      score = validate(loaded, state.params, validation, config)
      log.write({'step': done, BEST_METRIC: score})
      checkpoints.save(done, state, batches.position, metrics={BEST_METRIC: score})
    elif saved:
      checkpoints.save(done, state, batches.position)
    if preemption.requested:
      if not saved:  # a step that was just saved on schedule is not saved twice
        checkpoints.save(done, state, batches.position)
      checkpoints.wait()
      print(f'Preempted: saved step {done}; run the same command to resume.', file=sys.stderr)
      sys.exit(143)
    if saved:  # checkpointing and validation are not training time
      jax.block_until_ready(state)
      timer, tokens_seen = time.monotonic(), 0
  checkpoints.wait()

  # Write: the best checkpoint as a loadable model, and the summary.
  best = checkpoints.best_step() or checkpoints.latest_step()
  # The last step is the state in hand; an earlier best is read back.
  best_params = state.params if best == int(state.step) else checkpoints.restore(best, state)[0].params
  nnx.replace_by_pure_dict(loaded.params, best_params)
  save_model(out / 'best', loaded)
  checkpoints.close()
  log.close()
  summary = {'best_step': best, 'total_steps': total_steps, 'examples': len(examples), **counts,
             'validation': log.validations()}
  if jax.process_index() == 0:
    rundir.write_json_atomic(out / 'summary.json', summary)
    print(json.dumps(summary, indent=2))


def validate(loaded: LoadedModel, params, problems, config: dict) -> float:
  """Greedy pass@1 of the current parameters on the held-out problems."""
  result = evaluate(
      dataclasses.replace(loaded, params=params), problems, prompt=zero_shot_prompt(config['dataset']),
      max_new_tokens=config['val_max_new_tokens'],
  )
  return result.pass_at_1


if __name__ == '__main__':
  cli.run(main, multihost=True)
