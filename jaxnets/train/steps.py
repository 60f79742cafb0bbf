"""Pure train and eval steps. The caller jits them once, donating the state:

    train = jax.jit(train_step, donate_argnums=0)
    train_k = jax.jit(train_steps, donate_argnums=0)   # k stacked batches per call
    eval_ = jax.jit(eval_step)

Both read every hyper-parameter from the state (the optax transformation,
the model) and the batch; nothing is closed over. Under `jax.pmap` they take
the axis name, `functools.partial(train_step, axis_name=...)`, and combine the
devices' slices of the batch themselves (jaxnets/train/placement.py decides which).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxnets.train.losses import Metrics, task_loss
from jaxnets.train.state import TrainState


def train_step(state: TrainState, batch, axis_name: str | None = None,
               ) -> tuple[TrainState, Metrics, jax.Array]:
    """One optimiser step on one batch.

    Args:
      state: the current TrainState (donated by the caller).
      batch: a dict of arrays with `label` (or per-step `targets` and
        `target_mask`), optional `mask`, and the model
        inputs (`image: <float32>[batch, H, W, C]` or `tokens: <int32>[batch,
        time]` with `lengths: <int32>[batch]`).
      axis_name: under `jax.pmap`, the mapped axis: `batch` is this device's
        slice; the gradient is that of the loss over all slices (below), the
        metrics are summed over them, model_state (BatchNorm statistics) is
        averaged, and dropout draws from the step's key folded with the
        device's index, so each device drops different units.

    Returns:
      (new state, this batch's Metrics sums, finite) where `finite` is a
      <bool>[] that is False when the loss or any gradient is NaN or Inf;
      the loop stops on it before the state can reach a checkpoint.
    """
    rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:
        rng = jax.random.fold_in(rng, lax.axis_index(axis_name))

    def loss_fn(params):
        logits, model_state = state.model.apply(params, state.model_state, batch,
                                                train=True, rng=rng)
        loss, metrics = task_loss(logits, batch)
        if axis_name is not None:  # this slice's share of the mean over all slices
            loss = loss * metrics.count / jnp.maximum(lax.psum(metrics.count, axis_name), 1.0)
        return loss, (metrics, model_state)

    (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    if axis_name is not None:
        # The shares sum to the loss of the whole batch: psum = a pmean weighted by each
        # slice's count of real examples (or tokens), exact also when the counts differ.
        loss, grads, metrics = lax.psum((loss, grads, metrics), axis_name)
        model_state = jax.tree.map(  # e.g. BatchNorm statistics: the devices' mean
            lambda x: lax.pmean(x, axis_name) if jnp.issubdtype(x.dtype, jnp.inexact) else x,
            model_state)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state=model_state)
    return new_state, metrics, finite


def train_steps(state: TrainState, batches, axis_name: str | None = None,
                ) -> tuple[TrainState, Metrics, jax.Array]:
    """`train_step` on k consecutive batches in one program (config.steps_per_call = k).

    Args:
      state: the current TrainState (donated by the caller).
      batches: the k batches stacked: every array has a leading axis of k steps.
      axis_name: as in `train_step`.

    Returns:
      (state after the k steps, the Metrics sums of all k batches, <bool>[k] finite
      flags, one per step, so the loop can name the step that went bad).
    """
    def one(state, batch):
        state, metrics, finite = train_step(state, batch, axis_name)
        return state, (metrics, finite)

    state, (metrics, finite) = lax.scan(one, state, batches)
    return state, jax.tree.map(lambda x: x.sum(0), metrics), finite


def eval_step(state: TrainState, batch, axis_name: str | None = None) -> Metrics:
    """Metrics sums of one (possibly padded) eval batch; padding rows have mask 0.

    Under `jax.pmap` (`axis_name` set) the sums are over every device's slice.
    """
    logits, _ = state.model.apply(state.params, state.model_state, batch,
                                  train=False, rng=state.rng)
    metrics = task_loss(logits, batch)[1]
    return metrics if axis_name is None else lax.psum(metrics, axis_name)


def merge_metrics(total: Metrics, new: Metrics) -> Metrics:
    """Sum of two Metrics (jit it: a few adds on device, no host read)."""
    return total.merge(new)
