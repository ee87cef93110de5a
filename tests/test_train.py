"""SFT data, the train step, and what it must guarantee."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from conftest import run_with_devices
from wcse_jax.model import Transformer, get_preset
from wcse_jax.train.data import Example, PackedBatches, pack
from wcse_jax.train.step import (
    OptimizerConfig, TrainState, make_optimizer, make_train_step, masked_nll,
)

TINY = get_preset('gemma3-270m').replace(
    name='tiny', num_layers=7, vocab_size=64, embed_dim=32, hidden_dim=64, head_dim=8,
    num_heads=2, num_kv_heads=1, sliding_window=4,
)


def _examples(count=8, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(count):
    prompt, completion = rng.integers(3, 64, rng.integers(3, 6)), rng.integers(3, 64, rng.integers(2, 5))
    tokens = np.concatenate([[2], prompt, completion, [1]]).astype(np.int32)
    out.append(Example(tokens, np.arange(len(tokens)) > len(prompt)))
  return out


def test_packing_keeps_examples_apart():
  a = Example(np.array([2, 5, 6, 1], np.int32), np.array([0, 0, 1, 1], bool))
  b = Example(np.array([2, 7, 1], np.int32), np.array([0, 1, 1], bool))
  c = Example(np.array([2, 8, 9, 10, 1], np.int32), np.array([0, 0, 1, 1, 1], bool))
  batch = pack([a, b, c], seq_len=8)
  np.testing.assert_array_equal(batch.segment_ids, [[1, 1, 1, 1, 2, 2, 2, 0], [1, 1, 1, 1, 1, 0, 0, 0]])
  np.testing.assert_array_equal(batch.positions[0], [0, 1, 2, 3, 0, 1, 2, 0])
  np.testing.assert_array_equal(batch.loss_mask[0], [0, 0, 1, 1, 0, 1, 1, 0])


def test_batches_are_deterministic_and_resume_by_position():
  examples = _examples(12)
  first = PackedBatches(examples, seq_len=16, batch_rows=2, seed=3)
  seen = [next(first).tokens for _ in range(9)]  # crosses an epoch boundary
  assert first.position['epoch'] >= 1
  again = PackedBatches(examples, seq_len=16, batch_rows=2, seed=3)
  for _ in range(4):
    next(again)
  resumed = PackedBatches(examples, seq_len=16, batch_rows=2, seed=3, position=again.position)
  for expected in seen[4:]:
    np.testing.assert_array_equal(next(resumed).tokens, expected)
  other_seed = PackedBatches(examples, seq_len=16, batch_rows=2, seed=4)
  assert not np.array_equal(next(other_seed).tokens, seen[0])


def test_masked_prompt_tokens_carry_no_gradient():
  model = Transformer(TINY, rngs=nnx.Rngs(0))
  batch = pack(_examples(4), seq_len=24)
  tokens, segments = jnp.asarray(batch.tokens), jnp.asarray(batch.segment_ids)
  hidden, _ = model(tokens, jnp.asarray(batch.positions), return_hidden=True)
  grad = jax.grad(
      lambda h: masked_nll(model, h, tokens, segments, jnp.asarray(batch.loss_mask), loss_chunk=5)[0]
  )(hidden)
  norms = np.linalg.norm(np.asarray(grad), axis=-1)[:, :-1]  # position t predicts token t+1
  target = batch.loss_mask[:, 1:] & (batch.segment_ids[:, 1:] == batch.segment_ids[:, :-1])
  assert np.all(norms[~target] == 0.0)
  assert np.all(norms[target] > 0.0)


def _train(model, examples, *, steps, learning_rate, accumulation=1, batch_rows=4, seq_len=32):
  graphdef, params = nnx.split(model)
  params = nnx.to_pure_dict(params)
  optimizer = make_optimizer(OptimizerConfig(learning_rate=learning_rate, total_steps=steps, warmup_steps=0))
  state = TrainState(step=jnp.int32(0), params=params, opt_state=optimizer.init(params))
  step_fn = jax.jit(make_train_step(graphdef, optimizer, remat=True, loss_chunk=8))
  batches = PackedBatches(examples, seq_len=seq_len, batch_rows=batch_rows, seed=0)
  losses = []
  for _ in range(steps):
    batch = next(batches)
    arrays = {
        name: jnp.asarray(getattr(batch, name)).reshape(accumulation, -1, seq_len)
        for name in ('tokens', 'positions', 'segment_ids', 'loss_mask')
    }
    state, metrics = step_fn(state, arrays)
    losses.append((float(metrics['loss']), float(metrics['grad_norm'])))
  return state, losses


def test_tiny_model_overfits_eight_examples():
  examples = _examples(8)
  _, losses = _train(Transformer(TINY, rngs=nnx.Rngs(0)), examples, steps=300, learning_rate=3e-3,
                     batch_rows=2, seq_len=32)
  assert losses[0][0] > 3.0
  assert losses[-1][0] < 0.01, losses[-10:]


def test_accumulation_gives_the_same_loss_and_gradient():
  examples = _examples(16)
  _, whole = _train(Transformer(TINY, rngs=nnx.Rngs(1)), examples, steps=1, learning_rate=1e-3)
  _, split = _train(Transformer(TINY, rngs=nnx.Rngs(1)), examples, steps=1, learning_rate=1e-3, accumulation=2)
  np.testing.assert_allclose(split, whole, rtol=1e-6)


CURVE = '''
import json, sys
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
sys.path.insert(0, 'tests')
from test_train import TINY, _examples
from wcse_jax import parallel
from wcse_jax.finetune import device_batch
from wcse_jax.model import Transformer
from wcse_jax.train.data import PackedBatches
from wcse_jax.train.step import OptimizerConfig, init_state, make_optimizer, make_train_step
mesh = parallel.make_mesh(data={data}, model={model})
graphdef, params = nnx.split(Transformer(TINY, rngs=nnx.Rngs(0)))
params = nnx.to_pure_dict(params)
shardings = parallel.param_shardings(params, mesh, fsdp=True)
params = jax.device_put(params, shardings)
optimizer = make_optimizer(OptimizerConfig(learning_rate=3e-3, total_steps=8, warmup_steps=2))
state = init_state(params, optimizer, mesh)
step_fn = jax.jit(make_train_step(graphdef, optimizer, remat=True, loss_chunk=8), donate_argnums=0,
                  out_shardings=(jax.tree.map(lambda a: a.sharding, state), None))
batches = PackedBatches(_examples(24), seq_len=32, batch_rows=4, seed=0)
losses = []
for _ in range(8):
  b = next(batches)
  state, metrics = step_fn(state, device_batch(b, 1, mesh))
  losses.append(float(metrics['loss']))
sharded = sum('data' in str(a.sharding.spec) for a in jax.tree.leaves(state.params))
print(json.dumps({{'losses': losses, 'fsdp_sharded': sharded}}))
'''


def test_four_devices_give_the_loss_curve_of_one():
  import json  # pylint: disable=g-import-not-at-top

  one = json.loads(run_with_devices(CURVE.format(data=1, model=1), num_devices=1).splitlines()[-1])
  four = json.loads(run_with_devices(CURVE.format(data=2, model=2), num_devices=4).splitlines()[-1])
  assert four['fsdp_sharded'] > 0
  np.testing.assert_allclose(four['losses'], one['losses'], rtol=2e-5)
  assert one['losses'][-1] < one['losses'][0]


def test_checkpoints_keep_the_last_ones_and_the_best(tmp_path, caplog):
  from wcse_jax.train.checkpoints import TrainCheckpoints  # pylint: disable=g-import-not-at-top

  checkpoints = TrainCheckpoints(tmp_path, keep_last=2)
  state = {'w': jnp.arange(3.0)}
  scores = {1: 0.1, 3: 0.5, 5: 0.2}
  for step in range(1, 8):
    metrics = {'val_pass_at_1': scores[step]} if step in scores else None
    checkpoints.save(step, state, {'epoch': 0, 'batch': step}, metrics=metrics)
  checkpoints.wait()
  assert checkpoints.all_steps() == [3, 6, 7]
  assert checkpoints.best_step() == 3
  restored, position = checkpoints.restore(3, state)
  np.testing.assert_array_equal(restored['w'], state['w'])
  assert position == {'epoch': 0, 'batch': 3}
  assert not [r for r in caplog.records if 'metrics' in r.getMessage()]  # unscored saves are normal
