"""The sharded train step: masked next-token loss, accumulation, AdamW.

State is a pytree of arrays that carry their shardings (parameters by the
rules of `wcse_jax.parallel`, FSDP over `data` and tensor parallel over
`model`; the optimizer moments like the parameters), the step donates it, and
the same code runs on one CPU, four fake CPU devices, a GPU or a TPU slice.

A batch arrives as `[accumulation, rows, seq_len]`: the step scans over the
first axis, summing gradients and target counts, so the update is the mean
loss over every target token of the whole batch whatever the accumulation.
The loss never holds `[rows, seq_len, vocab]` logits: it takes the model's
hidden states and turns `loss_chunk` positions at a time into logits, under
`jax.checkpoint`, so a 256k vocabulary costs one chunk of memory.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from jaxtyping import Array, Bool, Float, Int

from wcse_jax.model import Transformer, segment_mask


@flax.struct.dataclass
class TrainState:
  step: Int[Array, '']
  params: nnx.State
  opt_state: optax.OptState


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
  learning_rate: float
  total_steps: int
  warmup_steps: int = 0
  final_learning_rate_ratio: float = 0.1  # cosine decay ends at this share of the peak
  weight_decay: float = 0.0
  max_grad_norm: float = 1.0
  b1: float = 0.9
  b2: float = 0.95


def learning_rate_schedule(config: OptimizerConfig) -> optax.Schedule:
  """Linear warm-up to the peak, then cosine decay to `final_learning_rate_ratio` of it."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=config.learning_rate,
      warmup_steps=config.warmup_steps,
      decay_steps=max(config.total_steps, config.warmup_steps + 1),
      end_value=config.learning_rate * config.final_learning_rate_ratio,
  )


def make_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
  """Clipping by global norm, then AdamW; norm scales are not decayed."""
  return optax.chain(
      optax.clip_by_global_norm(config.max_grad_norm),
      optax.adamw(
          learning_rate_schedule(config), b1=config.b1, b2=config.b2,
          weight_decay=config.weight_decay,
          mask=lambda params: jax.tree.map(lambda p: p.ndim >= 2, params),
      ),
  )


def token_loss(
    model: Transformer,
    tokens: Int[Array, 'B L'],
    positions: Int[Array, 'B L'],
    segment_ids: Int[Array, 'B L'],
    loss_mask: Bool[Array, 'B L'],
    *,
    remat: bool = True,
    loss_chunk: int = 512,
) -> tuple[jax.Array, jax.Array]:
  """(sum of -log p(target), number of targets) of packed rows."""
  hidden, _ = model(
      tokens, positions, attention_mask=segment_mask(positions, segment_ids),
      remat=remat, return_hidden=True,
  )
  return masked_nll(model, hidden, tokens, segment_ids, loss_mask, loss_chunk=loss_chunk)


def masked_nll(
    model: Transformer,
    hidden: Float[Array, 'B L D'],
    tokens: Int[Array, 'B L'],
    segment_ids: Int[Array, 'B L'],
    loss_mask: Bool[Array, 'B L'],
    *,
    loss_chunk: int,
) -> tuple[jax.Array, jax.Array]:
  """Position t predicts token t+1 where that token is a target of the same segment."""
  hidden, targets = hidden[:, :-1], tokens[:, 1:]
  weights = loss_mask[:, 1:] & (segment_ids[:, 1:] == segment_ids[:, :-1])
  length = hidden.shape[1]
  chunk = min(loss_chunk, length)
  pad = -length % chunk

  def chunks(a):  # [B, L-1, ...] -> [chunks, B, chunk, ...]
    a = jnp.pad(a, [(0, 0), (0, pad)] + [(0, 0)] * (a.ndim - 2))
    return jnp.moveaxis(a.reshape(a.shape[0], -1, chunk, *a.shape[2:]), 1, 0)

  @jax.checkpoint
  def chunk_loss(args):
    h, t, w = args
    log_probs = jax.nn.log_softmax(model.logits(h), axis=-1)
    picked = jnp.take_along_axis(log_probs, t[..., None], axis=-1)[..., 0]
    return -jnp.sum(jnp.where(w, picked, 0.0))

  losses = jax.lax.map(chunk_loss, (chunks(hidden), chunks(targets), chunks(weights)))
  return jnp.sum(losses), jnp.sum(weights)


def init_state(params, optimizer: optax.GradientTransformation, mesh) -> TrainState:
  """Step 0: the optimizer state laid out like the parameters, the step replicated."""
  replicated = NamedSharding(mesh, PartitionSpec())
  shardings = optax.tree_map_params(
      optimizer,
      lambda _, sharding: sharding,
      jax.eval_shape(optimizer.init, params),
      jax.tree.map(lambda p: p.sharding, params),
      transform_non_params=lambda _: replicated,
  )
  opt_state = jax.jit(optimizer.init, out_shardings=shardings)(params)
  return TrainState(step=jax.device_put(jnp.int32(0), replicated), params=params, opt_state=opt_state)


def make_train_step(graphdef: nnx.GraphDef, optimizer, *, remat: bool, loss_chunk: int):
  """`train_step(state, batch) -> (state, metrics)`, to be jitted with donation."""

  def loss_of(params, micro):
    model = nnx.merge(graphdef, params)
    return token_loss(
        model, micro['tokens'], micro['positions'], micro['segment_ids'], micro['loss_mask'],
        remat=remat, loss_chunk=loss_chunk,
    )

  grad_fn = jax.value_and_grad(loss_of, has_aux=True)

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    def accumulate(carry, micro):
      grads, loss_sum, count = carry
      (loss, targets), micro_grads = grad_fn(state.params, micro)
      grads = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), grads, micro_grads)
      return (grads, loss_sum + loss, count + targets), None

    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)
    (grads, loss_sum, count), _ = jax.lax.scan(
        accumulate, (zeros, jnp.float32(0), jnp.int32(0)), batch
    )
    denominator = jnp.maximum(count, 1).astype(jnp.float32)
    grads = jax.tree.map(lambda g, p: (g / denominator).astype(p.dtype), grads, state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        'loss': loss_sum / denominator,
        'grad_norm': optax.global_norm(grads),
        'targets': count,
    }
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step
