"""Pure train and eval steps. The caller jits them once, donating the state:

    train = jax.jit(train_step, donate_argnums=0)
    eval_ = jax.jit(eval_step)

Both read every hyper-parameter from the state (the optax transformation,
the model) and the batch; nothing is closed over.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxnets.train.losses import Metrics, task_loss
from jaxnets.train.state import TrainState


def train_step(state: TrainState, batch) -> tuple[TrainState, Metrics, jax.Array]:
    """One optimiser step on one batch.

    Args:
      state: the current TrainState (donated by the caller).
      batch: a dict of arrays with `label` (or per-step `targets` and
        `target_mask`), optional `mask`, and the model
        inputs (`image: <float32>[batch, H, W, C]` or `tokens: <int32>[batch,
        time]` with `lengths: <int32>[batch]`).

    Returns:
      (new state, this batch's Metrics sums, finite) where `finite` is a
      <bool>[] that is False when the loss or any gradient is NaN or Inf;
      the loop stops on it before the state can reach a checkpoint.
    """
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
        logits, model_state = state.model.apply(params, state.model_state, batch,
                                                train=True, rng=rng)
        loss, metrics = task_loss(logits, batch)
        return loss, (metrics, model_state)

    (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state=model_state)
    return new_state, metrics, finite


def eval_step(state: TrainState, batch) -> Metrics:
    """Metrics sums of one (possibly padded) eval batch; padding rows have mask 0."""
    logits, _ = state.model.apply(state.params, state.model_state, batch,
                                  train=False, rng=state.rng)
    return task_loss(logits, batch)[1]


def merge_metrics(total: Metrics, new: Metrics) -> Metrics:
    """Sum of two Metrics (jit it: a few adds on device, no host read)."""
    return total.merge(new)
