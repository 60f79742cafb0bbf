"""The trainer: one run's state and compiled programs, driven one call at a time.

    trainer = Trainer(model, inputs, config, run)   # fresh, or the run's newest checkpoint
    for item in trainer.batches():                  # placed on the devices, read ahead
        if item is EPOCH_END:
            trainer.end_epoch()
        else:
            trainer.train_on(item)                  # one compiled call: 1 or k steps
    trainer.evaluate(); trainer.save()

`fit` (loop.py) drives it with logging, periodic evaluation and checkpoints; the
benchmarks drive the same object, so what they time is what a run does. Building a
Trainer only reads the workdir (the lock is the caller's: `RunDir.claimed`); a Trainer
without a run trains from a fresh state and saves nothing.

A call's loss and gradients are checked for NaN/Inf one call later (the check waits for
the call to finish; reading the newest call's flag at once would stall the dispatch of the
next); a non-finite one raises NonFiniteError naming the step, and a state is checked
before it is saved, so the last checkpoint is always a good one.
"""

from __future__ import annotations

import collections
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.data import contract
from jaxnets.train import config as config_lib
from jaxnets.train.inputs import EPOCH_END, Inputs, epoch_stream
from jaxnets.train.losses import Metrics
from jaxnets.train.model_api import Model
from jaxnets.train.optim import make_optimizer
from jaxnets.train.placement import Stacked, make_strategy
from jaxnets.train.rundir import RunDir
from jaxnets.train.state import TrainState, abstract_state, count_params, create_state
from jaxnets.train.steps import merge_metrics


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or Inf; the message names the step."""


class Trainer:
    """One run: model, state, data position and the compiled step programs.

    Args:
      model: a `Model` (`model_api.as_model` makes one of a Flax module or a pair).
      inputs: the data, as `inputs.as_inputs` gives it.
      config: a resolved config (`config.resolve`).
      run: the workdir to resume from and save to (held by the caller), or None.

    Attributes:
      state: the TrainState, in the placement strategy's layout.
      step, epoch, batch_in_epoch: the data position (the next batch to train on).
      start_step: where this process started (0, or the checkpoint's step).
      total_steps, steps_per_epoch: the run's length (steps_per_epoch None if unknown).
      strategy: the device placement (placement.py).
      num_params, batch_size: of the model and of each per-process batch.
      train_sums: Metrics summed over the calls since `take_train_metrics`.
    """

    def __init__(self, model: Model, inputs: Inputs, config, run: RunDir | None = None):
        self.model, self.inputs, self.config, self.run = model, inputs, config, run
        self.strategy = make_strategy(config.parallel, config.num_devices,
                                      config.steps_per_call)
        self.steps_per_epoch, self.total_steps = _plan(config, inputs)
        self.tx, self.schedule = make_optimizer(config, self.total_steps)
        latest = self.resumed_from = (run.resume_step(config, jax.process_count())
                                      if run else None)
        self.step, self.epoch, self.batch_in_epoch = (
            self._position(latest) if latest is not None else (0, 0, 0))
        self.start_step = self.step
        self._stream = None  # the run's batches (epoch_stream), opened to shape the state
        self.state = self._initial_state(latest)
        self.train_fn = self.strategy.compile_train()  # a Stacked group when k > 1
        self.step_fn = (self.strategy.compile_train(stacked=False)  # single batches
                        if self.strategy.steps_per_call > 1 else self.train_fn)
        self.eval_fn = self.strategy.compile_eval()
        self.merge_fn = jax.jit(merge_metrics)
        self.params_finite_fn = jax.jit(_all_finite)
        self.train_sums, self.unchecked = Metrics.zeros(), collections.deque()
        self.ckpt = None  # opened by `save`: nothing is written before the run begins

    def _position(self, latest: int) -> tuple[int, int, int]:
        position = self.run.position(latest)
        step, epoch, batch = position["step"], position["epoch"], position["batch_in_epoch"]
        if self.steps_per_epoch:  # data shorter than the run's: that epoch is over
            batch = min(batch, self.steps_per_epoch)
        return step, epoch, batch

    # -- state ------------------------------------------------------------------------

    def _example_batch(self):
        """A batch to shape the state: the next one to train on (kept for training, with
        the run's stream of batches, opened here)."""
        stream = epoch_stream(self.inputs, self.epoch, self.batch_in_epoch,
                              max(0, self.total_steps - self.step))
        peeked = []
        for item in stream:  # past an EPOCH_END when resuming at an epoch's very end
            peeked.append(item)
            if item is not EPOCH_END:
                break
        self._stream = itertools.chain(peeked, stream)
        if peeked and peeked[-1] is not EPOCH_END:
            return peeked[-1]
        for source in (lambda: self.inputs.train_epoch(0, 0), self.inputs.eval_batches):
            batch = next(iter(source()), None) if source else None
            if batch is not None:
                return batch
        raise ValueError("the training data gave no batches: check the data, or its batch_size")

    def _initial_state(self, latest: int | None) -> TrainState:
        """The state in the strategy's layout: fresh, or restored from checkpoint `latest`."""
        batch = self.example_batch = self._example_batch()  # kept to diagnose a NaN stop
        contract.check_numeric(batch, "the first training batch")
        self.batch_size = len(next(iter(batch.values())))
        self.strategy.check_batch(self.batch_size)
        if latest is None:
            state = create_state(self.model, self.tx, batch, self.config.seed)
            self.num_params = count_params(state.params)
            return self.strategy.put_state(state)
        abstract = abstract_state(self.model, self.tx, batch)
        self.num_params = count_params(abstract.params)
        state = self.run.restore(latest, self.strategy.restore_target(abstract))
        assert int(state.step) == self.step, (int(state.step), self.step)
        return self.strategy.replicate(state)

    # -- the step API ---------------------------------------------------------------------

    def batches(self):
        """The run's training batches from the current position to `total_steps`, placed
        on the devices by the strategy's host thread (a `Stacked` group per call when
        steps_per_call > 1), with EPOCH_END between epochs. Once only."""
        if self._stream is None:
            raise RuntimeError("Trainer.batches() gives the run's stream once")
        stream, self._stream = self._stream, None  # lets the pipeline go with the stream
        return self.strategy.prefetch(stream)

    def train_on(self, item) -> tuple[int, int]:
        """One call of the compiled program on a placed item of `batches()` (a batch, or a
        `Stacked` group); returns (examples, steps) it trained on (over all processes).
        Checks the previous call's loss and gradients (NonFiniteError)."""
        stacked = isinstance(item, Stacked)
        program, batch = (self.train_fn, item.batch) if stacked else (self.step_fn, item)
        steps = self.strategy.steps_per_call if stacked else 1
        self.state, metrics, finite = program(self.state, batch)
        first_step = self.step + 1
        self.step += steps
        self.batch_in_epoch += steps
        self.train_sums = self.merge_fn(self.train_sums, metrics)
        self.unchecked.append((first_step, self.epoch, finite))
        self.check_finite(keep=1)  # the previous call; this one may still run (async dispatch)
        return self.strategy.examples(batch, stacked=stacked), steps

    def compile_for(self, item) -> float:
        """Compiles the program that `train_on(item)` runs, ahead of the call; returns the
        seconds it took (the benchmarks time compiling apart from stepping)."""
        stacked = isinstance(item, Stacked)
        started = time.perf_counter()
        if stacked:
            self.train_fn = self.train_fn.lower(self.state, item.batch).compile()
        else:
            self.step_fn = self.step_fn.lower(self.state, item).compile()
        return time.perf_counter() - started

    def end_epoch(self) -> None:
        """Moves the position to the next epoch (at an EPOCH_END of `batches()`)."""
        if self.batch_in_epoch == 0:
            raise ValueError(
                f"epoch {self.epoch} of the training data gave no batches, but the run "
                f"needs {self.total_steps - self.step} more steps: give more data or "
                "lower num_steps (a one-shot iterator gives only one epoch)")
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def take_train_metrics(self) -> dict:
        """The training metrics of the calls since the last take (their mean loss, ...)."""
        self.check_finite()
        metrics, self.train_sums = self.train_sums.compute(), Metrics.zeros()
        return metrics

    def evaluate(self, max_batches: int = 0) -> tuple[dict | None, bool]:
        """(metrics over the eval data or None without any, whether `max_batches` cut it)."""
        if self.inputs.eval_batches is None:
            return None, False
        self.check_finite()
        sums, batches = Metrics.zeros(), 0
        for i, batch in enumerate(self.strategy.prefetch(self.inputs.eval_batches(),
                                                         evaluation=True)):
            if max_batches and i >= max_batches:
                return sums.compute() if batches else None, True
            sums, batches = self.merge_fn(sums, self.eval_fn(self.state, batch)), batches + 1
        return (sums.compute() if batches else None), False  # no batches: "no eval data"

    def unreplicated_state(self) -> TrainState:
        """One copy of the state (what a checkpoint holds and `fit` returns)."""
        return self.strategy.unreplicate(self.state)

    # -- safety ---------------------------------------------------------------------------

    def check_finite(self, keep: int = 0) -> None:
        """Reads the finite flags of all but the newest `keep` calls; raises on a bad one."""
        while len(self.unchecked) > keep:
            first_step, epoch, finite = self.unchecked.popleft()
            finite = np.atleast_1d(jax.device_get(finite))  # one flag per step of the call
            if not finite.all():
                step = first_step + int(np.argmin(finite))
                self._stop(f"non-finite loss or gradient at step {step} (in epoch {epoch + 1})",
                           self._data_hint())

    def _data_hint(self) -> str:
        """After a NaN loss: are the labels classes of the model? (Run only on this path: it
        traces the model once, on the batch that shaped the state.)"""
        generic = "or check the data (a label outside 0..classes-1 makes the loss NaN)"
        batch = self.example_batch
        labels = np.asarray(batch["targets"] if "targets" in batch else batch.get("label", 0))
        try:
            logits = jax.eval_shape(lambda s, b: self.model.apply(
                s.params, s.model_state, b, train=False, rng=None)[0],
                self.unreplicated_state(), batch)
        except Exception:  # pylint: disable=broad-except  # a hint, never a second error
            return generic
        classes, low, high = logits.shape[-1], int(labels.min()), int(labels.max())
        if 0 <= low and high < classes:
            return generic
        return (f"or fix the data or the model: the first batch's labels run {low}..{high}, "
                f"but the model scores {classes} classes (0..{classes - 1})")

    def _stop(self, what: str, or_else: str) -> None:
        latest = self.ckpt.latest_step() if self.ckpt else self.resumed_from
        kept = (f"the last good checkpoint is step {latest} in {self.run.file('checkpoints')}"
                if latest is not None else "no checkpoint had been saved yet")
        raise NonFiniteError(
            f"{what}; run stopped, {kept}. Lower learning_rate, set grad_clip_norm, {or_else}")

    # -- checkpoints ----------------------------------------------------------------------

    def save(self) -> None:
        """Checkpoints the state and the data position, after checking both the steps'
        flags and the parameters themselves (an update can overflow them)."""
        self.check_finite()
        if not bool(self.params_finite_fn(self.state.params)):
            self._stop(f"non-finite parameters after step {self.step} (an update "
                       "overflowed; the loss and gradients were finite)",
                       "or check the data's scale")
        if self.run is None:
            raise ValueError("this Trainer has no workdir to save to: pass a RunDir (run=)")
        if self.ckpt is None:
            self.ckpt = self.run.checkpointer(self.config.keep_checkpoints)
        # process_count: each process reads its own shard, so a position counts batches
        # of that many shards (RunDir.resume_step)
        self.ckpt.save(self.unreplicated_state(), {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "process_count": jax.process_count()})

    def close(self) -> None:
        """Waits for the last checkpoint to be written, then lets orbax's threads go."""
        if self.ckpt is not None:
            try:
                self.ckpt.wait()
            finally:
                self.ckpt.close()
                self.ckpt = None


def _plan(config, inputs: Inputs) -> tuple[int | None, int]:
    """(steps per epoch or None, total steps)."""
    spe = inputs.steps_per_epoch
    if config.num_steps > 0:
        return spe, config.num_steps
    if not spe:
        raise config_lib.ConfigError(
            "the training data does not say how many batches an epoch has: set num_steps, "
            "or pass data with steps_per_epoch or a len()")
    return spe, config.num_epochs * spe


def _all_finite(tree) -> jax.Array:
    """<bool>[]: no NaN or Inf in any floating-point leaf of `tree`."""
    leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)
