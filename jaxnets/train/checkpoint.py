"""Checkpoints: the train state plus the data position, with orbax.

Each checkpoint is a directory `<workdir>/checkpoints/<step>/` holding two
items: `state` (step, params, opt_state, model_state, rng; StandardSave) and
`position` (`{"step", "epoch", "batch_in_epoch", "process_count"}`; JSON). Resuming means:
restore both, call the data's `train_epoch(epoch)` and skip `batch_in_epoch`
batches.

Safety: orbax writes a checkpoint to a temporary directory and marks it
complete (`commit_success.txt`/atomic rename) only when every file is
written; a checkpoint killed mid-write is ignored on restore. Old
checkpoints beyond `keep` are deleted only after the new one is committed,
so the last good checkpoint is never lost. The loop checks that a state is
finite before saving it.

Devices and processes: the loop saves one copy of the state, replicated on
its devices (`Strategy.unreplicate` in jaxnets/train/placement.py), and restores into
that layout (`Strategy.restore_target`), so a run may resume under another
strategy or device count, but not another number of processes (each reads
its own shard of the data: the position would point elsewhere; refused by
RunDir.resume_step). With several processes every process calls `save`
and the readers (orbax coordinates them): process 0 writes the metadata and
the position, each array is written once, and all processes must see the
same directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
import warnings

import orbax.checkpoint as ocp

from jaxnets.train.config import ConfigError
from jaxnets.train.state import TrainState


@contextlib.contextmanager
def reader(directory: str):
    """A read-only view of the checkpoints in `directory`: it creates and changes nothing
    there, so a command can look before it decides to write. Yields None when the
    directory does not exist."""
    if not os.path.isdir(directory):
        yield None
        return
    # create=False and no saves: nothing is written (read_only=True would log two warnings)
    options = ocp.CheckpointManagerOptions(create=False, enable_async_checkpointing=False)
    with ocp.CheckpointManager(os.path.abspath(directory), options=options) as manager:
        yield manager


def saved_steps(directory: str) -> list[int]:
    """The steps of the complete checkpoints in `directory` (none if it does not exist)."""
    with reader(directory) as manager:
        return [] if manager is None else list(manager.all_steps())


def read_position(manager, step: int) -> dict:
    """Only the data position of checkpoint `step` (cheap: reads one JSON)."""
    with explained_restore(manager, step):
        restored = manager.restore(step, args=ocp.args.Composite(position=ocp.args.JsonRestore()))
    return dict(restored.position)


def read_state(manager, step: int, abstract: TrainState, resume: str = "resume") -> TrainState:
    """The state of checkpoint `step`, shaped like `abstract` (from abstract_state)."""
    with explained_restore(manager, step, resume):
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract.checkpoint_items())))
    return abstract.with_items(dict(restored.state))


def read_params(manager, step: int):
    """The parameters of checkpoint `step` as saved (prediction: no model state needed)."""
    with explained_restore(manager, step, resume="predict"):
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore()))
    return restored.state["params"]


class Checkpointer:
    """Saves (TrainState, data position) under `directory`; `reader` restores them.

    Args:
      directory: where the step directories go (created if missing).
      keep: how many of the newest checkpoints to keep.
      async_save: write in a background thread; the device arrays are copied
        to host memory before `save` returns, so the caller may donate the
        state to the next step right away.
    """

    def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, state: TrainState, position: dict) -> None:
        """Saves `state` and `position` as the checkpoint of `position['step']`."""
        step = int(position["step"])
        if step in self.manager.all_steps():
            return  # already saved (e.g. the end of a run that was complete)
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state.checkpoint_items()),
            position=ocp.args.JsonSave(dict(position))), force=True)

    def wait(self) -> None:
        """Blocks until every pending write is committed."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


@contextlib.contextmanager
def explained_restore(manager, step: int, resume: str = "resume"):
    """A failed restore of checkpoint `step` (damaged, or another model's shapes and tree)
    as one ConfigError line naming both ways on; errors of the device (out of memory, a
    lost peer) pass as they are."""
    import jax  # pylint: disable=g-import-not-at-top
    _quiet_reads_after_a_failed_restore()
    try:
        yield
    except Exception as e:  # orbax and tensorstore raise many kinds, some plain Exception
        if isinstance(e, (jax.errors.JaxRuntimeError, MemoryError, ConfigError)):
            raise
        directory = str(manager.directory)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        older = [s for s in manager.all_steps() if s < step]
        fix = (f"delete {os.path.join(directory, str(step))} to {resume} from step "
               f"{max(older)}" if older else f"delete {os.path.dirname(directory)} to start over")
        raise ConfigError(
            f"checkpoint step {step} in {directory} cannot be restored "
            f"({type(e).__name__}: {first}): if it is damaged, {fix}; if the workdir holds "
            "another model's run, pass a new workdir (--workdir)") from None


def _quiet_reads_after_a_failed_restore() -> None:
    """When a restore fails, orbax's other reads of that checkpoint are left behind, and
    each reports itself around the one-line error with a traceback: 'Event loop is
    closed' or an unclosed read coroutine (unraisable exceptions), asyncio's '... exception
    was never retrieved' (a log record), 'coroutine ... was never awaited' (a warning).
    Only reports about orbax's reads are dropped; installed once, at the first restore."""
    if _quieted:
        return
    _quieted.append(True)
    previous = sys.unraisablehook

    def hook(unraisable):
        value, where = unraisable.exc_value, getattr(unraisable.object, "__name__", "")
        closed = isinstance(value, RuntimeError) and str(value) == "Event loop is closed"
        if not (closed or where in _READS):
            previous(unraisable)
    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(lambda record: not _about_orbax_reads(record))
    for name in _READS:
        warnings.filterwarnings("ignore", message=f"coroutine '{name}' was never awaited")


def _about_orbax_reads(record: logging.LogRecord) -> bool:
    """An asyncio 'exception was never retrieved' record of one of orbax's reads."""
    text = str(record.msg)
    if "exception was never retrieved" not in text:
        return False
    error = record.exc_info[1] if record.exc_info else None
    frames = traceback.extract_tb(error.__traceback__) if error is not None else []
    return (any("/orbax/" in frame.filename for frame in frames)
            or any(marker in text for marker in (*_READS, "OCDBT", "reading array index")))


_quieted: list = []  # one item once the filters are installed
_READS = ("_read_array_index_and_device_put", "async_deserialize")  # orbax's read coroutines
