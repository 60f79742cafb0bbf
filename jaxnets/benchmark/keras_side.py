"""The RNN workload in Keras 3 on the JAX backend: the peer that shares jaxnets' compiler.

PyTorch eager pays per-op dispatch on every time step; Keras 3 with `KERAS_BACKEND=jax`
compiles its whole training step with XLA, as jaxnets does, so it is the fairer (and the
stronger) peer for the recurrent model. Same model as `workloads._rnn` (rnn_sentiment's
classifier: embedding 64, dropout 0.3, `SimpleRNN(128)` = h_t = tanh(W_hh h_{t-1} + W_xh x_t
+ b), dropout 0.5, dense to 2 classes: 664,962 parameters at a 10,000-word vocabulary),
same batch, loss (softmax cross-entropy on logits), optimiser (Adam with the preset's b1,
b2, cosine decay and global-norm clipping; optax's eps 1e-8) and accuracy metric, trained
the way a Keras user trains: `model.fit` on numpy arrays, compiled (Keras' default
`jit_compile` on JAX), with `steps_per_execution` set to the preset's steps per call.

Keras gets its best: its SimpleRNN runs without a mask (the benchmark's sequences are all
full length, so the results are those of jaxnets' masked model), which spares it the
masking work jaxnets' RNN does on every step.

Only this module imports Keras, and only inside `keras_run`: jaxnets itself never does.
Optional: `pip install keras` (the `bench` extra).
"""

from __future__ import annotations

import os
import sys
from typing import Callable

BACKEND = "jax"


def available() -> bool:
    """Whether Keras 3 is installed (it is not imported here)."""
    import importlib.util  # pylint: disable=g-import-not-at-top
    return importlib.util.find_spec("keras") is not None


def skip_reason(workload) -> str | None:
    """Why the Keras arm cannot run `workload` (None: it can)."""
    if not available():
        return "Keras not installed (pip install keras: the 'bench' extra)"
    backend = _imported_backend()
    if backend not in (None, BACKEND):
        return (f"Keras was imported on its {backend!r} backend before this arm (e.g. by "
                f"TensorFlow); KERAS_BACKEND={BACKEND} must be set before anything imports it")
    if workload.torch_kind != "rnn" or workload.torch_sizes.get("cell") != "vanilla":
        return "Keras arm: only the vanilla RNN workload"
    if getattr(workload.module, "dtype", None) is not None:
        return "Keras arm: float32 only"
    if workload.config.optimizer != "adam" or workload.config.weight_decay:
        return "Keras arm: the preset's optimiser is not plain Adam"
    return None


def _imported_backend() -> str | None:
    """The backend of an already imported Keras (None: not imported yet)."""
    keras = sys.modules.get("keras")
    try:
        return keras.backend.backend() if keras is not None else None
    except AttributeError:  # a partly imported or an old Keras
        return None


def _import_keras():
    """Keras on the JAX backend; a RuntimeError if it was imported with another backend."""
    os.environ.setdefault("KERAS_BACKEND", BACKEND)
    import keras  # pylint: disable=g-import-not-at-top
    if keras.backend.backend() != BACKEND:
        raise RuntimeError(f"Keras runs on {keras.backend.backend()!r}, not {BACKEND!r}: "
                           f"set KERAS_BACKEND={BACKEND} before anything imports keras")
    return keras


def build_model(workload, steps_per_execution: int = 1):
    """The compiled Keras model of `workload` (see the module docstring)."""
    reason = skip_reason(workload)
    if reason:
        raise ValueError(reason)
    keras = _import_keras()
    sizes, config = workload.torch_sizes, workload.config
    batch, steps = workload.batch["tokens"].shape
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((steps,), batch_size=batch, dtype="int32"),
        layers.Embedding(sizes["vocab"], sizes["embed_dim"]),
        layers.Dropout(sizes.get("embed_dropout", 0.0)),
        layers.SimpleRNN(sizes["hidden_size"]),              # tanh, the final state
        layers.Dropout(sizes.get("dropout", 0.0)),
        layers.Dense(2)])
    schedule = (keras.optimizers.schedules.CosineDecay(config.learning_rate,
                                                       decay_steps=max(config.num_steps, 1))
                if config.schedule == "cosine" else config.learning_rate)
    optimizer = keras.optimizers.Adam(
        schedule, beta_1=config.momentum, beta_2=config.b2, epsilon=1e-8,
        global_clipnorm=config.grad_clip_norm or None)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=steps_per_execution)
    return model


def keras_run(workload, steps_per_execution: int = 1, most: int = 200,
              data_parallel: bool = False) -> Callable[[int], None]:
    """train(n): n training steps of `workload` in Keras (`model.fit` over n copies of the
    batch, at most `most`), waiting for them; compiled by a first call here.

    `data_parallel`: built and trained under `keras.distribution.DataParallel` over every
    JAX device (Keras' own data parallelism; on a CPU split by
    `runtime_options.split_host`)."""
    import contextlib  # pylint: disable=g-import-not-at-top

    import jax  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    scope = (_import_keras().distribution.DataParallel(devices=jax.devices()).scope
             if data_parallel else contextlib.nullcontext)
    with scope():
        model = build_model(workload, steps_per_execution)
    tokens = np.ascontiguousarray(np.tile(workload.batch["tokens"], (most, 1)))
    labels = np.ascontiguousarray(np.tile(workload.batch["label"], most))
    batch = len(workload.batch["label"])

    def train(n):
        if not 1 <= n <= most:
            raise ValueError(f"the Keras arm runs 1..{most} steps per call, not {n}")
        with scope():
            model.fit(tokens[:n * batch], labels[:n * batch], batch_size=batch, epochs=1,
                      shuffle=False, verbose=0)
        jax.block_until_ready([v.value for v in model.trainable_variables])

    train(min(steps_per_execution, most))  # compile, outside any timing
    train.model = model
    return train
