"""The training loop: `fit(model, data, config, workdir)`.

    for each batch of each epoch (resuming at the checkpoint's epoch and batch):
        state = train_step(state, batch)          # jitted once, state donated
                                                  # (steps_per_call > 1: k batches a call)
        every log_every_steps:        progress line, metrics.jsonl, TensorBoard
        every eval_every_steps (or at the end of each epoch): padded eval
        every checkpoint_every_steps: orbax checkpoint (state + data position)
    at the end: eval, checkpoint, learning-curve PNG, one-line summary

Data: one stream of batches for the whole run (`inputs.epoch_stream`, EPOCH_END
between epochs), so the host thread that prepares batches reads past an epoch's
end while the loop evaluates.

Devices: `config.parallel` picks a strategy from jaxnets/parallel.py (pmap, or
jit with NamedSharding) on `config.num_devices` devices per process; batches go
to the devices through a double-buffered prefetch. With several processes
(jax.distributed), only process 0 writes logs and config.json; checkpoints are
written together through orbax, one copy of the state.

A step whose loss or gradient is not finite stops the run (NonFiniteError)
at the next call at the latest, naming the step; a state is checked before it is saved, so
the last checkpoint is always a good one. Ctrl-C saves a checkpoint first.
Running `fit` again on the same workdir resumes from the newest checkpoint
and ends with bitwise the same parameters as a run never interrupted (CPU).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import signal
import tempfile
import threading
import time

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxnets import parallel, runtime_options
from jaxnets.train import config as config_lib
from jaxnets.train.checkpoint import Checkpointer, saved_steps
from jaxnets.train.inputs import EPOCH_END, Inputs, as_inputs, epoch_stream
from jaxnets.train.losses import Metrics
from jaxnets.train.model_api import Model, as_model
from jaxnets.train.optim import make_optimizer
from jaxnets.train.reporting import Reporter, Throughput
from jaxnets.train.state import TrainState, abstract_state, count_params, create_state
from jaxnets.train.steps import merge_metrics


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or Inf; the message names the step."""


@dataclasses.dataclass
class Result:
    """What `fit` returns: the final state, the last eval metrics and the summary."""

    state: TrainState
    eval: dict | None
    summary: dict
    summary_line: str


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


def refuse_another_config(workdir: str, config, has_checkpoint: bool | None = None) -> None:
    """Raises ConfigError when `workdir` holds checkpoints of a run with another config
    (`has_checkpoint`: whether it holds any; looked up when None). Called before a run
    writes anything there, so a refused command leaves the old run as it was."""
    if has_checkpoint is None:
        has_checkpoint = bool(saved_steps(os.path.join(workdir, "checkpoints")))
    path = os.path.join(workdir, "config.json")
    if not (has_checkpoint and os.path.exists(path)):
        return
    saved = config_lib.read_json(path, fix=(
        f"delete it to resume with this command's config unchecked, pass a new workdir "
        f"(--workdir), or delete {workdir} to start over"))
    changes = config_lib.diff(saved, json.loads(config.to_json()))
    if changes:
        raise config_lib.ConfigError(
            f"{workdir} holds a run with another config ({'; '.join(changes)}): "
            f"pass a new workdir (--workdir), or delete {workdir} to start over")


def _check_workdir(workdir: str, config, has_checkpoint: bool, primary: bool = True) -> None:
    """Refuses to resume a run whose config differs; writes config.json (process 0)."""
    refuse_another_config(workdir, config, has_checkpoint)
    if not primary:
        return
    path = os.path.join(workdir, "config.json")
    with open(path + ".tmp", "w") as f:  # other processes may be reading it
        json.dump(json.loads(config.to_json()), f, indent=1)
    os.replace(path + ".tmp", path)


def _resumable_position(position: dict, step: int, workdir: str) -> dict:
    """The data position of checkpoint `step`, if this many processes can resume it.

    Each process reads its own shard of the data, so an epoch has as many batches as a
    shard gives: a position counted over another number of shards points elsewhere.
    """
    wrote = position.get("process_count", 1)  # checkpoints from before it was recorded
    if wrote != jax.process_count():
        raise config_lib.ConfigError(
            f"checkpoint step {step} in {workdir} was written by {wrote} process(es), this "
            f"run has {jax.process_count()}: resume it with {wrote} (the launcher's "
            "--num_processes), or pass a new workdir (--workdir)")
    return position


def make_workdir(workdir: str) -> None:
    """Creates `workdir` and checks that files can be written in it, or says in one line
    why not (a file in the way, no permission, a read-only filesystem)."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.TemporaryFile(dir=workdir):
            pass
    except OSError as e:
        why = "a file is in the way" if os.path.isfile(workdir) else e.strerror
        raise config_lib.ConfigError(f"workdir {workdir}: cannot write in it ({why}): "
                                     "give a writable directory (--workdir)") from None


_HELD: set[str] = set()  # workdirs this process holds (train_and_evaluate, then fit)


@contextlib.contextmanager
def only_run_in(workdir: str):
    """Holds an exclusive lock on `workdir` while a run uses it (process 0 takes it, every
    process hears whether it got it): a second run there would interleave its checkpoints,
    logs and model files with the first's. Re-entrant within a process."""
    workdir = os.path.abspath(workdir)
    if workdir in _HELD:
        yield
        return
    with contextlib.ExitStack() as stack:
        holder = _lock(workdir, stack) if parallel.is_primary() else None
        if jax.process_count() > 1:  # the others must stop too, not wait for process 0
            from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
            holder = int(multihost_utils.broadcast_one_to_all(np.int64(holder or 0))) or None
        if holder is not None:
            raise config_lib.ConfigError(
                f"{workdir} is in use by another run (pid {holder if holder > 0 else '?'}): "
                "wait for it to end, or pass another workdir (--workdir)")
        _HELD.add(workdir)
        try:
            yield
        finally:
            _HELD.discard(workdir)


def _lock(workdir: str, stack: contextlib.ExitStack) -> int | None:
    """Locks workdir/.lock until `stack` closes; None, or the pid holding it already."""
    if fcntl is None:  # not POSIX: runs are not locked
        return None
    f = stack.enter_context(open(os.path.join(workdir, ".lock"), "a+"))
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        text = f.read().strip()
        return int(text) if text.isdigit() else -1
    except OSError as e:  # a filesystem without locks (some NFS, FUSE): run unlocked
        logging.warning("cannot lock %s (%s): a second run there would not be refused",
                        workdir, e.strerror)
        return None
    stack.callback(fcntl.flock, f, fcntl.LOCK_UN)
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return None


def _batch_size(batch) -> int:
    return len(next(iter(batch.values())))


def _all_finite(tree) -> jax.Array:
    """<bool>[]: no NaN or Inf in any floating-point leaf of `tree`."""
    leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


class _Trainer:
    """One run: state, data position, periodic actions. `fit` builds and runs it."""

    def __init__(self, model: Model, inputs: Inputs, config, workdir: str, name: str):
        self.model, self.inputs, self.config, self.workdir = model, inputs, config, workdir
        self.name = name
        self.strategy = parallel.make_strategy(config.parallel, config.num_devices,
                                               config.steps_per_call)
        self.steps_per_epoch, self.total_steps = _plan(config, inputs)
        self.tx, self.schedule = make_optimizer(config, self.total_steps)
        self.ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
        try:  # a config or checkpoint that does not fit: release orbax's threads
            latest = self.ckpt.latest_step()
            _check_workdir(workdir, config, latest is not None, parallel.is_primary())
            pos = (_resumable_position(self.ckpt.restore_position(latest), latest, workdir)
                   if latest is not None else {"step": 0, "epoch": 0, "batch_in_epoch": 0})
            self.step, self.epoch = pos["step"], pos["epoch"]
            self.batch_in_epoch = pos["batch_in_epoch"]
            if self.steps_per_epoch:  # data shorter than the run's: that epoch is over
                self.batch_in_epoch = min(self.batch_in_epoch, self.steps_per_epoch)
            self.start_step = self.step
            self._stream = None  # the run's batches (epoch_stream), opened to shape the state
            self.state = self._initial_state(latest)
        except BaseException:
            self.ckpt.close()
            raise
        self.train_fn = self.strategy.compile_train()  # a Stacked group when k > 1
        self.step_fn = (self.strategy.compile_train(stacked=False)  # single batches
                        if self.strategy.steps_per_call > 1 else self.train_fn)
        self.eval_fn = self.strategy.compile_eval()
        self.merge_fn = jax.jit(merge_metrics)
        self.params_finite_fn = jax.jit(_all_finite)
        self.train_sums, self.unlogged, self.unchecked = Metrics.zeros(), 0, collections.deque()
        self.meter, self.examples_seen, self.train_seconds = Throughput(), 0, 0.0
        self.last_eval, self.last_eval_step, self.eval_cut = None, None, False
        self.interrupt_requested = False  # a Ctrl-C, taken between calls (run)
        self.reporter = Reporter(workdir, name, start_step=self.start_step,
                                 progress=config.progress, primary=parallel.is_primary())
        self.periodic = [(config.log_every_steps, self._log),
                         (config.eval_every_steps, self._evaluate),
                         (config.checkpoint_every_steps, self._save)]

    # -- data ---------------------------------------------------------------

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
        self.batch_size = _batch_size(batch)
        self.strategy.check_batch(self.batch_size)
        if latest is None:
            state = create_state(self.model, self.tx, batch, self.config.seed)
            self.num_params = count_params(state.params)
            return self.strategy.put_state(state)
        abstract = abstract_state(self.model, self.tx, batch)
        self.num_params = count_params(abstract.params)
        state = self.ckpt.restore(latest, self.strategy.restore_target(abstract))
        assert int(state.step) == self.step, (int(state.step), self.step)
        return self.strategy.replicate(state)

    # -- the loop -----------------------------------------------------------

    def run(self) -> Result:
        started = time.perf_counter()
        try:
            with self._ctrl_c_between_calls():
                self._announce()
                self.train()
                self._finish_training()
            return self._result(time.perf_counter() - started)
        except KeyboardInterrupt:
            self._save_on_interrupt()
            raise
        finally:
            self.ckpt.close()
            self.reporter.close()

    @contextlib.contextmanager
    def _ctrl_c_between_calls(self):
        """A Ctrl-C that lands while a step runs would lose the state the step was given
        (donated) before its result is kept: the first one is taken after the call (at the
        same step on every process), a second one interrupts at once."""
        self.interrupt_requested = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request(signum, frame):
            if self.interrupt_requested:
                raise KeyboardInterrupt
            self.interrupt_requested = True

        previous = signal.signal(signal.SIGINT, request)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _interrupt_if_requested(self) -> None:
        requested = self.interrupt_requested
        if jax.process_count() > 1:  # all stop after the same call, or their saves differ
            from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
            requested = bool(np.any(multihost_utils.process_allgather(np.int32(requested))))
        if requested:
            raise KeyboardInterrupt

    def train(self, calls: int | None = None) -> None:
        """Trains from the current position to total_steps on one stream of batches, read
        ahead across epoch ends by the strategy's host thread; or only `calls` calls of
        the step program (the startup benchmark times the first). Once only: the stream
        of batches ends with it."""
        items = self.strategy.prefetch(self._stream)
        try:
            while self.step < self.total_steps and calls != 0:
                start = time.perf_counter()
                item = next(items)
                wait = time.perf_counter() - start
                if item is EPOCH_END:
                    self._end_epoch()
                else:
                    self._train_on(item, wait)
                    calls = None if calls is None else calls - 1
                    self._interrupt_if_requested()
        finally:
            items.close()  # stops the read-ahead
            self._stream = None  # and lets the pipeline go with it

    def _train_on(self, item, wait: float) -> None:
        """One call: a batch (one step), or a `Stacked` group (steps_per_call steps)."""
        if isinstance(item, parallel.Stacked):
            self._call(self.train_fn, item.batch, self.strategy.steps_per_call, wait)
        else:
            self._call(self.step_fn, item, 1, wait)

    def _call(self, program, batch, steps: int, wait: float) -> None:
        self.state, metrics, finite = program(self.state, batch)
        first_step = self.step + 1
        self.step += steps
        self.batch_in_epoch += steps
        self.train_sums = self.merge_fn(self.train_sums, metrics)
        self.unlogged += steps
        self.meter.add(self.strategy.examples(batch, stacked=steps > 1), wait, steps)
        self.unchecked.append((first_step, self.epoch, finite))
        self._check_finite(keep=1)  # the previous call; this one may still run (async dispatch)
        if first_step == self.start_step + 1:  # leave compilation out of examples/s
            jax.block_until_ready(self.state.step)
            self.meter.reset()
        for every, action in self.periodic:  # due when this call reached a multiple
            if every > 0 and self.step // every > (self.step - steps) // every:
                action()

    def _end_epoch(self) -> None:
        if self.batch_in_epoch == 0:
            raise ValueError(
                f"epoch {self.epoch} of the training data gave no batches, but the run "
                f"needs {self.total_steps - self.step} more steps: give more data or "
                "lower num_steps (a one-shot iterator gives only one epoch)")
        if self.config.eval_every_steps <= 0:
            self._evaluate()
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def _finish_training(self) -> None:
        if self.unlogged:
            self._log()
        if self.last_eval_step != self.step:
            self._evaluate()
        self._save()
        self.ckpt.wait()

    # -- periodic actions ---------------------------------------------------

    def _check_finite(self, keep: int = 0) -> None:
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
        state = self.strategy.unreplicate(self.state)
        try:
            logits = jax.eval_shape(lambda s, b: self.model.apply(
                s.params, s.model_state, b, train=False, rng=None)[0], state, batch)
        except Exception:  # pylint: disable=broad-except  # a hint, never a second error
            return generic
        classes, low, high = logits.shape[-1], int(labels.min()), int(labels.max())
        if 0 <= low and high < classes:
            return generic
        return (f"or fix the data or the model: the first batch's labels run {low}..{high}, "
                f"but the model scores {classes} classes (0..{classes - 1})")

    def _check_params_finite(self) -> None:
        """Before a save: the flags above cover each step's loss and gradients, but an
        update can still overflow the parameters (a huge learning rate)."""
        if not bool(self.params_finite_fn(self.state.params)):
            self._stop(f"non-finite parameters after step {self.step} (an update "
                       "overflowed; the loss and gradients were finite)",
                       "or check the data's scale")

    def _stop(self, what: str, or_else: str) -> None:
        latest = self.ckpt.latest_step()
        kept = (f"the last good checkpoint is step {latest} in {self.ckpt.directory}"
                if latest is not None else "no checkpoint had been saved yet")
        raise NonFiniteError(
            f"{what}; run stopped, {kept}. Lower learning_rate, set grad_clip_norm, {or_else}")

    def _log(self) -> None:
        self._check_finite()
        metrics = self.train_sums.compute()
        meter = self.meter.read(self.total_steps - self.step)
        self.examples_seen += self.meter.examples
        self.train_seconds += meter["seconds"]
        self.reporter.train(step=self.step, total=self.total_steps, epoch=self._epochs_done(),
                            metrics=metrics, lr=float(self.schedule(max(self.step - 1, 0))),
                            meter=meter)
        self.train_sums, self.unlogged = Metrics.zeros(), 0
        self.meter.reset()

    def _evaluate(self) -> None:
        if self.inputs.eval_batches is None:
            return
        self._check_finite()
        started, limit = time.perf_counter(), self.config.eval_max_batches
        sums, batches = Metrics.zeros(), 0
        placed = self.strategy.prefetch(self.inputs.eval_batches(), evaluation=True)
        for i, batch in enumerate(placed):
            if limit and i >= limit:
                self.eval_cut = True
                break
            sums, batches = self.merge_fn(sums, self.eval_fn(self.state, batch)), batches + 1
        self.meter.start += time.perf_counter() - started  # eval is not training time
        if batches:  # none (e.g. ArrayData without eval arrays): "no eval data", not 0%
            self.last_eval, self.last_eval_step = sums.compute(), self.step
            self.reporter.eval(step=self.step, epoch=self._epochs_done(), metrics=self.last_eval)
            if not np.isfinite(self.last_eval["loss"]):  # eval has no NaN guard: say why
                self.reporter.line(
                    f"[{self.name}] the eval loss is not finite: check the eval data (a label "
                    "outside 0..classes-1, or a NaN or Inf in an input)")

    def _epochs_done(self) -> float:
        """Epochs trained so far, e.g. 2.5 (or the epoch number when its length is unknown)."""
        if self.steps_per_epoch:
            return round(self.step / self.steps_per_epoch, 2)
        return self.epoch + 1

    def _position(self) -> dict:
        # process_count: each process reads its own shard, so a position counts batches
        # of that many shards (_resumable_position)
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "process_count": jax.process_count()}

    def _save(self) -> None:
        self._check_finite()
        self._check_params_finite()  # the last checkpoint is always a good one
        self.ckpt.save(self.strategy.unreplicate(self.state), self._position())

    def _save_on_interrupt(self) -> None:
        try:
            self._save()
            self.ckpt.wait()
            self.reporter.line(f"[{self.name}] interrupted at step {self.step}: checkpoint "
                               "saved; run the same command again to resume")
        except Exception as e:  # noqa: BLE001 - interrupted mid-step: keep the older one
            self.reporter.line(f"[{self.name}] interrupted at step {self.step}; no new "
                               f"checkpoint ({type(e).__name__}: {e})")

    # -- words --------------------------------------------------------------

    def _announce(self) -> None:
        c = self.config
        spe = f" ({self.total_steps / self.steps_per_epoch:.3g} epochs of {self.steps_per_epoch})" \
            if self.steps_per_epoch else ""
        resumed = (f" | resuming at step {self.step} (epoch {self.epoch}, batch "
                   f"{self.batch_in_epoch})" if self.start_step else "")
        self.reporter.line(
            f"[{self.name}] {self.model!r}, {self.num_params:,} params | "
            f"{self.total_steps} steps{spe}, batch {self._batch_words()} | {c.optimizer} lr "
            f"{c.learning_rate:g} {c.schedule} | workdir {self.workdir}{resumed}")
        if c.note:
            self.reporter.line(f"[{self.name}] {c.note}")

    def _batch_words(self) -> str:
        """e.g. '64' on one device, '64 (16 per device; pmap on 4 cpu devices)'."""
        s = self.strategy
        if len(s.devices) == 1:
            return str(self.batch_size)
        total = self.batch_size * jax.process_count()
        return f"{total} ({self.batch_size // s.num_local} per device; {s.describe()})"

    def _result(self, wall: float) -> Result:
        summary = {
            "name": self.name, "step": self.step, "start_step": self.start_step,
            # None: the data does not say how long an epoch is (a function of the epoch)
            "epochs": self.step / self.steps_per_epoch if self.steps_per_epoch else None,
            "eval": self.last_eval, "eval_cut": self.eval_cut, "wall_seconds": wall,
            "examples_per_sec": self.examples_seen / max(self.train_seconds, 1e-9),
            "workdir": self.workdir, "params": self.num_params,
            "devices": [str(d) for d in self.strategy.devices],
            "parallel": self.strategy.describe(),
        }
        line = self.reporter.finish(summary)
        return Result(self.strategy.unreplicate(self.state), self.last_eval, summary, line)


def fit(model, data, config=None, workdir: str = "runs/fit", *, eval_data=None,
        name: str | None = None) -> Result:
    """Trains `model` on `data` with the jaxnets loop, logs and checkpoints.

    Args:
      model: a Flax linen module, an `(init, apply)` pair of pure functions
        (`init(rng, batch) -> params`, `apply(params, batch, *, train, rng) ->
        logits`), or a `jaxnets.train.model_api.Model`.
      data: a dataset with `train_epoch(epoch)`/`eval_batches()` (e.g. from
        `jaxnets.data.get_dataset` or `jaxnets.train.ArrayData`), a function
        `epoch -> batches`, or a list of batch dicts.
      config: a ConfigDict or dict of `jaxnets.train.config.default_config()`
        fields to change (None: the defaults). The data fields (dataset,
        batch_size, ...) matter only to `train_and_evaluate`; here `data`
        already decides them. `parallel` and `num_devices` place the run
        (jaxnets/parallel.py): each batch is split over the devices; in a
        multi-process run, `data` is this process's part of each batch.
      workdir: logs and checkpoints go here; an existing checkpoint resumes.
      eval_data: eval batches when `data` has none of its own.
      name: the run's name in log lines (default: config.preset).

    Returns:
      Result(state, eval metrics, summary dict, summary line); the state is
      one copy, replicated on the run's devices.

    The first call tunes the host for training (`jaxnets.runtime_options.tune_host`: freed
    memory kept for reuse; XLA:CPU programs run on the calling thread if JAX has not
    started yet), as the CLI does at its start; with JAXNETS_NO_HOST_TUNING set in the
    environment, the process is left as it is. A second run on `workdir` while this one
    trains is refused (a lock).

    Raises:
      NonFiniteError: a loss or gradient became NaN/Inf.
      ConfigError: a bad config, or a workdir holding a run with another config.
    """
    runtime_options.tune_host()  # no-op after the CLI's call; a user's script gets it here
    config = config_lib.resolve(config)
    make_workdir(workdir)
    model = as_model(model)
    if model.dtype not in (None, config.dtype):
        raise config_lib.ConfigError(
            f"dtype={config.dtype}, but the model computes in {model.dtype}: fit trains it "
            f"as it was built, so build it with dtype=jnp.{config.dtype} (jaxnets.models "
            "factories take one), or set config.dtype to match")
    if model.dtype is None and config.dtype != "float32":
        logging.warning("config.dtype=%s does not reach this model (it has no dtype): fit "
                        "trains it as it was built", config.dtype)
    with only_run_in(workdir):
        trainer = _Trainer(model, as_inputs(data, eval_data), config,
                           os.path.abspath(workdir), name or config.preset)
        return trainer.run()
