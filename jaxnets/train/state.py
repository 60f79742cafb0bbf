"""The train state: everything a step reads and writes, as one pytree.

A checkpoint of this pytree plus the data position (epoch, batch in epoch)
is all it takes to resume a run exactly: the dropout key of step t is
`fold_in(rng, t)`, so randomness depends on the step, not on how many times
the program was started.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxnets import runtime_options
from jaxnets.train.model_api import Model


@struct.dataclass
class TrainState:
    """Parameters, optimiser state, step, RNG and any model collections.

    Attributes:
      step: <int32>[] optimiser steps taken so far.
      params: the trainable parameters (a pytree).
      opt_state: the optax state (moments, schedule count, ...).
      model_state: non-trainable collections such as batch norm statistics;
        `{}` for most models.
      rng: <uint32>[2] base key; step t draws dropout from fold_in(rng, t).
      model: the `Model` (static: part of the jit cache key, not of the pytree).
      tx: the optax transformation (static).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any
    rng: jax.Array
    model: Model = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    def checkpoint_items(self) -> dict:
        """The arrays a checkpoint holds (static fields excluded)."""
        return {"step": self.step, "params": self.params, "opt_state": self.opt_state,
                "model_state": self.model_state, "rng": self.rng}

    def with_items(self, items: dict) -> "TrainState":
        return self.replace(**items)


def create_state(model: Model, tx: optax.GradientTransformation, batch, seed: int) -> TrainState:
    """A fresh state: parameters initialised from `seed` on the shapes of `batch`.

    One compiled program makes all of it. Run op by op, `tx.init` compiled a small program
    per parameter leaf: 0.35 s of AlexNet's start (experiments/benchmarks/speedups.md).
    """
    make = jax.jit(functools.partial(_state, model, tx), static_argnums=1,
                   compiler_options=runtime_options.init_compiler_options())
    return make(batch, seed)


def abstract_state(model: Model, tx: optax.GradientTransformation, batch) -> TrainState:
    """The shapes and dtypes of `create_state`, computing nothing (for restore)."""
    return jax.eval_shape(lambda b: _state(model, tx, b, 0), batch)


def _state(model: Model, tx: optax.GradientTransformation, batch, seed: int):
    init_key, dropout_key = jax.random.split(jax.random.PRNGKey(seed))
    params, model_state = model.init(init_key, batch)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=tx.init(params), model_state=model_state,
                      rng=dropout_key, model=model, tx=tx)


def count_params(params) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))
