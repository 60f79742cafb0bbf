"""The training loop: `fit(model, data, config, workdir)`.

    for each call of the trainer (resuming at the checkpoint's epoch and batch):
        trainer.train_on(batch)                  # jitted once, state donated
                                                 # (steps_per_call > 1: k batches a call)
        every log_every_steps:        progress line, metrics.jsonl, TensorBoard
        every eval_every_steps (or at the end of each epoch): padded eval
        every checkpoint_every_steps: orbax checkpoint (state + data position)
    at the end: eval, the caller's measures, checkpoint, learning-curve PNG, summary

The loop only schedules: the state, the steps and the NaN guard are the Trainer's
(trainer.py), every file is the RunDir's (rundir.py), the devices are the placement
strategy's (placement.py), the input stall is the StallMeter's (meter.py).

Data: one stream of batches for the whole run (`inputs.epoch_stream`, EPOCH_END
between epochs), so the host thread that prepares batches reads past an epoch's
end while the loop evaluates. With several processes (jax.distributed), only
process 0 writes logs and run files; checkpoints are written together.

Ctrl-C saves a checkpoint first. Running `fit` again on the same workdir resumes from
the newest checkpoint and ends with bitwise the same parameters as a run never
interrupted (CPU). A write the disk refuses (a checkpoint, metrics.jsonl, train.log,
TensorBoard, summary.json, the plot, config.json) stops the run with one WriteError
naming the file and the last good checkpoint; freeing space and running again resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable

import jax

from jaxnets import distributed, runtime_options
from jaxnets.train import checkpoint
from jaxnets.train import config as config_lib
from jaxnets.train.checkpoint import WriteError, write_error
from jaxnets.train.inputs import EPOCH_END, as_inputs
from jaxnets.train.meter import StallMeter
from jaxnets.train.model_api import as_model
from jaxnets.train.reporting import Reporter
from jaxnets.train.rundir import CHECKPOINTS, TENSORBOARD, RunDir
from jaxnets.train.state import TrainState
from jaxnets.train.trainer import NonFiniteError, Trainer  # noqa: F401  (re-exported)

# its "NaN or Inf found in input tensor" repeats the loop's warning without the fix
logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)


@dataclasses.dataclass
class Result:
    """What `fit` returns: the final state, the last eval metrics and the summary."""

    state: TrainState
    eval: dict | None
    summary: dict
    summary_line: str


class _Loop:
    """Drives one Trainer to the end of its run: logs, evaluations, checkpoints, Ctrl-C."""

    def __init__(self, trainer: Trainer, run: RunDir, name: str, measures=None):
        self.trainer, self.run, self.name, self.measures = trainer, run, name, measures
        self.config = trainer.config
        self.meter, self.examples_seen, self.train_seconds = StallMeter(), 0, 0.0
        self.unlogged = 0
        self.last_eval, self.last_eval_step, self.eval_cut = None, None, False
        self.warned_eval_loss = False
        self.interrupt_requested = False  # a Ctrl-C, taken between calls
        self.reporter = Reporter(run, name, start_step=trainer.start_step,
                                 progress=self.config.progress)
        self.periodic = [(self.config.log_every_steps, self._log),
                         (self.config.eval_every_steps, self._evaluate),
                         (self.config.checkpoint_every_steps, self.trainer.save)]

    def run_to_end(self) -> Result:
        started, failed = time.perf_counter(), True
        try:
            with self._ctrl_c_between_calls():
                self._announce()
                self._train()
                extra = self._finish()
            result = self._result(time.perf_counter() - started, extra)
            failed = False
            return result
        except KeyboardInterrupt:
            self._save_on_interrupt()
            raise
        finally:
            self._close(failed)

    def _close(self, failed: bool) -> None:
        """Closes the trainer (waits for the last checkpoint) and the reporter. After a
        failure their errors are dropped: on a full disk they repeat the first one."""
        errors = []
        for close in (self.trainer.close, self.reporter.close):
            try:
                close()
            except OSError as e:
                errors.append(e)
        if errors and not failed:
            raise errors[0]

    def _train(self) -> None:
        t = self.trainer
        items = t.batches()
        try:
            self.meter = StallMeter(items)  # times each next(): the wait for input
            while t.step < t.total_steps:
                item = next(self.meter)
                if item is EPOCH_END:
                    if self.config.eval_every_steps <= 0:
                        self._evaluate()
                    t.end_epoch()
                    continue
                examples, steps = t.train_on(item)
                self.meter.add(examples, steps)
                self.unlogged += steps
                if t.step - steps == t.start_step:  # leave compilation out of examples/s
                    jax.block_until_ready(t.state.step)
                    self.meter.reset()
                for every, action in self.periodic:  # due when this call reached a multiple
                    if every > 0 and t.step // every > (t.step - steps) // every:
                        action()
                self._interrupt_if_requested()
        finally:
            items.close()  # stops the read-ahead

    def _finish(self) -> dict:
        if self.unlogged:
            self._log()
        if self.last_eval_step != self.trainer.step:
            self._evaluate()
        extra = (self.measures(self.trainer.unreplicated_state(), self.last_eval)
                 if self.measures else {})
        self.trainer.save()
        self.trainer.close()  # the last checkpoint is written before the summary says so
        return extra

    # -- Ctrl-C ---------------------------------------------------------------------------

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
        # all stop after the same call, or their saves differ
        if distributed.any_process(self.interrupt_requested):
            raise KeyboardInterrupt

    def _save_on_interrupt(self) -> None:
        step = self.trainer.step
        try:
            self.trainer.save()
            self.trainer.close()
            self.reporter.line(f"[{self.name}] interrupted at step {step}: checkpoint "
                               "saved; run the same command again to resume")
        except Exception as e:  # noqa: BLE001 - interrupted mid-step: keep the older one
            self.reporter.line(f"[{self.name}] interrupted at step {step}; no new "
                               f"checkpoint ({type(e).__name__}: {e})")

    # -- periodic actions -----------------------------------------------------------------

    def _log(self) -> None:
        t = self.trainer
        metrics = t.take_train_metrics()
        meter = self.meter.read(t.total_steps - t.step)
        self.examples_seen += self.meter.examples
        self.train_seconds += meter["seconds"]
        self.reporter.train(step=t.step, total=t.total_steps, epoch=self._epochs_done(),
                            metrics=metrics, lr=float(t.schedule(max(t.step - 1, 0))),
                            meter=meter)
        self.unlogged = 0
        self.meter.reset()

    def _evaluate(self) -> None:
        started = time.perf_counter()
        metrics, cut = self.trainer.evaluate(self.config.eval_max_batches)
        self.meter.exclude(time.perf_counter() - started)  # eval is not training time
        self.eval_cut = self.eval_cut or cut
        if metrics is None:  # e.g. ArrayData without eval arrays: "no eval data", not 0%
            return
        self.last_eval, self.last_eval_step = metrics, self.trainer.step
        self.reporter.eval(step=self.trainer.step, epoch=self._epochs_done(), metrics=metrics)
        if not metrics["loss"] < float("inf"):  # eval has no NaN guard: say why
            text = (f"[{self.name}] step {self.trainer.step}: the eval loss is not finite: "
                    "check the eval data (a label outside 0..classes-1, or a NaN or Inf in "
                    "an input)")
            self.reporter.line(text, show=False)
            if self.run.primary and not self.warned_eval_loss:
                # on the terminal once, progress lines or not; in train.log every time
                print(f"warning: {text}", file=sys.stderr, flush=True)
                self.warned_eval_loss = True

    def _epochs_done(self) -> float:
        """Epochs trained so far, e.g. 2.5 (or the epoch number when its length is unknown)."""
        t = self.trainer
        return round(t.step / t.steps_per_epoch, 2) if t.steps_per_epoch else t.epoch + 1

    # -- words ----------------------------------------------------------------------------

    def _announce(self) -> None:
        c, t = self.config, self.trainer
        spe = f" ({t.total_steps / t.steps_per_epoch:.3g} epochs of {t.steps_per_epoch})" \
            if t.steps_per_epoch else ""
        resumed = (f" | resuming at step {t.step} (epoch {t.epoch}, batch "
                   f"{t.batch_in_epoch})" if t.start_step else "")
        self.reporter.line(
            f"[{self.name}] {t.model!r}, {t.num_params:,} params | "
            f"{t.total_steps} steps{spe}, batch {self._batch_words()} | {c.optimizer} lr "
            f"{c.learning_rate:g} {c.schedule} | workdir {self.run.path}{resumed}")
        if c.note:
            self.reporter.line(f"[{self.name}] {c.note}")

    def _batch_words(self) -> str:
        """e.g. '64' on one device, '64 (16 per device; pmap on 4 cpu devices)'."""
        s, size = self.trainer.strategy, self.trainer.batch_size
        if len(s.devices) == 1:
            return str(size)
        return f"{size * jax.process_count()} ({size // s.num_local} per device; {s.describe()})"

    def _result(self, wall: float, extra: dict) -> Result:
        t = self.trainer
        summary = {
            "name": self.name, "step": t.step, "start_step": t.start_step,
            # None: the data does not say how long an epoch is (a function of the epoch)
            "epochs": t.step / t.steps_per_epoch if t.steps_per_epoch else None,
            "eval": self.last_eval, "eval_cut": self.eval_cut, "wall_seconds": wall,
            "examples_per_sec": self.examples_seen / max(self.train_seconds, 1e-9),
            "workdir": self.run.path, "params": t.num_params,
            "devices": [str(d) for d in t.strategy.devices],
            "parallel": t.strategy.describe(), **extra,
        }
        for key, value in extra.items():  # the caller's measures, one line each
            self.reporter.line(_measure_line(key, value))
        line = self.reporter.finish(summary)
        return Result(t.unreplicated_state(), self.last_eval, summary, line)


def _measure_line(key: str, value) -> str:
    if key == "samples":
        return "samples:\n" + "\n".join(f"  {text!r}" for text in value)
    return f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}"


def fit(model, data, config=None, workdir: str | RunDir = "runs/fit", *, eval_data=None,
        name: str | None = None,
        measures: Callable[[TrainState, dict | None], dict] | None = None) -> Result:
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
        (jaxnets/train/placement.py): each batch is split over the devices; in a
        multi-process run, `data` is this process's part of each batch.
      workdir: logs and checkpoints go here; an existing checkpoint resumes. A
        `RunDir` (already claimed by `train_and_evaluate`) writes its staged files too.
      eval_data: eval batches when `data` has none of its own.
      name: the run's name in log lines (default: config.preset).
      measures: (state, last eval metrics) -> {name: value}, run after the last
        evaluation; printed and added to the summary (the sequence modes' exact match, bits per character).

    Returns:
      Result(state, eval metrics, summary dict, summary line); the state is
      one copy, replicated on the run's devices.

    The first call tunes the host for training (`jaxnets.runtime_options.tune_host`: freed
    memory kept for reuse; XLA:CPU programs run on the calling thread if JAX has not
    started yet), as the CLI does at its start; with JAXNETS_NO_HOST_TUNING set in the
    environment, the process is left as it is. `config.host_devices` = N > 1 splits the
    CPU into N devices first (`runtime_options.split_host`), which needs JAX not started
    yet (or started with N: JAX_NUM_CPU_DEVICES=N). A second run on `workdir` while this one
    trains is refused (a lock). Everything is checked before anything is written: a refused
    command leaves the workdir as it was.

    Raises:
      NonFiniteError: a loss or gradient became NaN/Inf.
      ConfigError: a bad config, or a workdir holding a run with another config.
      WriteError: the disk refused a write (no space left, ...); the message names the
        file and the last good checkpoint, which a rerun resumes from.
    """
    runtime_options.tune_host()  # no-op after the CLI's call; a user's script gets it here
    config = config_lib.resolve(config)
    runtime_options.split_host(config.host_devices)
    run = workdir if isinstance(workdir, RunDir) else RunDir(workdir)
    model = _checked_dtype(as_model(model), config)
    with run.claimed():
        trainer = Trainer(model, as_inputs(data, eval_data), config, run)
        try:
            run.begin(config)  # every check has passed: now the run's files are written
            return _Loop(trainer, run, name or config.preset, measures).run_to_end()
        except OSError as e:
            error = e if isinstance(e, WriteError) else _tensorboard_error(e, run)
            if error is None:
                raise
            raise _stopped_by(error, run) from None


def _stopped_by(error: WriteError, run: RunDir) -> WriteError:
    """`error` with what was kept and what to do: the newest checkpoint that reads (really
    read: a resume starts there) and the fix."""
    fix = "free space" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable"
    kept = checkpoint.newest_readable(run.file(CHECKPOINTS))
    then = (f"the last good checkpoint is step {kept}; {fix}, then run the same command "
            "again to resume from it" if kept is not None else
            f"no checkpoint was saved; {fix}, then run the same command again")
    return WriteError(error.errno, f"{error}: {then}")


def _tensorboard_error(error: OSError, run: RunDir) -> WriteError | None:
    """TensorBoard's writer (tensorboardX) fails with an OSError that names no file."""
    if not any("/tensorboardX/" in frame.filename
               for frame in traceback.extract_tb(error.__traceback__)):
        return None
    return write_error(error, f"{TENSORBOARD}/ in {run.path}")


def _checked_dtype(model, config):
    if model.dtype not in (None, config.dtype):
        raise config_lib.ConfigError(
            f"dtype={config.dtype}, but the model computes in {model.dtype}: fit trains it "
            f"as it was built, so build it with dtype=jnp.{config.dtype} (jaxnets.models "
            "factories take one), or set config.dtype to match")
    if model.dtype is None and config.dtype != "float32":
        logging.warning("config.dtype=%s does not reach this model (it has no dtype): fit "
                        "trains it as it was built", config.dtype)
    return model
